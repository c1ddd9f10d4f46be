"""Per-account sending limits: a sliding one-hour window of messages and recipients."""

from __future__ import annotations

import datetime as dt

from postel.abuse import ACCOUNT_WINDOW_S, AbuseTracker, AccountLimiter, AccountUsage
from postel.clock import FixedClock
from postel.config import AbuseConfig
from postel.config.model import LOOPBACK_NETWORKS


def make(**kw: object) -> tuple[AccountLimiter, FixedClock]:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return AccountLimiter(AbuseConfig(**kw), clock), clock  # type: ignore[arg-type]


def test_messages_per_hour_slide() -> None:
    limiter, clock = make(max_messages_per_hour_per_account=3)
    for _ in range(3):
        assert limiter.may_send_message("alice@example.org")
        limiter.record("alice@example.org", 1)
        clock.advance(600)
    assert not limiter.may_send_message("alice@example.org")
    assert limiter.may_send_message("bob@example.org")  # another account is unaffected
    clock.advance(ACCOUNT_WINDOW_S - 3 * 600 + 1)  # the first message leaves the window
    assert limiter.may_send_message("alice@example.org")
    assert limiter.usage("alice@example.org") == AccountUsage(2, 2)


def test_recipients_count_the_transaction_under_way() -> None:
    limiter, clock = make(max_recipients_per_hour_per_account=5)
    limiter.record("alice@example.org", 3)
    assert limiter.may_add_recipient("alice@example.org", pending=1)
    assert not limiter.may_add_recipient("alice@example.org", pending=2)
    clock.advance(ACCOUNT_WINDOW_S + 1)
    assert limiter.may_add_recipient("alice@example.org", pending=4)
    assert limiter.usage("alice@example.org") == AccountUsage(0, 0)


def test_accounts_are_case_insensitive() -> None:
    limiter, _ = make(max_messages_per_hour_per_account=1)
    limiter.record("Alice@Example.org", 1)
    assert not limiter.may_send_message("alice@example.org")


def test_only_recorded_messages_count() -> None:
    limiter, _ = make(max_messages_per_hour_per_account=1)
    for _ in range(10):  # checks alone (refused or abandoned transactions) count nothing
        assert limiter.may_send_message("alice@example.org")
        assert limiter.may_add_recipient("alice@example.org", pending=0)


def test_exempt_networks_and_disabled_tracker_do_not_exempt_accounts() -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    config = AbuseConfig(
        enabled=False, exempt=LOOPBACK_NETWORKS, max_messages_per_hour_per_account=1
    )
    tracker = AbuseTracker(config, clock)
    tracker.accounts.record("alice@example.org", 1)
    assert not tracker.accounts.may_send_message("alice@example.org")


def test_embedded_default_limits_are_generous() -> None:
    config = AbuseConfig()
    assert config.max_messages_per_hour_per_account >= 100
    assert config.max_recipients_per_hour_per_account >= config.max_messages_per_hour_per_account
