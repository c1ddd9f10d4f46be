"""The shared abuse tracker: windows, bans, prefixes, exemptions."""

from __future__ import annotations

import datetime as dt

from postel.abuse import AbuseEvent, AbuseTracker
from postel.clock import FixedClock
from postel.config import AbuseConfig


def make(**kw: object) -> tuple[AbuseTracker, FixedClock]:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return AbuseTracker(AbuseConfig(**kw), clock), clock  # type: ignore[arg-type]


def test_connection_limit_per_ip_and_release() -> None:
    t, _ = make(max_connections_per_ip=2)
    assert t.admit("192.0.2.1").allowed
    assert t.admit("192.0.2.1").allowed
    assert not t.admit("192.0.2.1").allowed
    assert t.admit("192.0.2.2").allowed  # another host of the prefix still served
    t.release("192.0.2.1")
    assert t.admit("192.0.2.1").allowed


def test_connection_rate_window_expires() -> None:
    t, clock = make(max_connection_rate_per_ip=3, window=10.0)
    for _ in range(3):
        assert t.admit("198.51.100.9").allowed
        t.release("198.51.100.9")
    assert not t.admit("198.51.100.9").allowed
    clock.advance(11)
    assert t.admit("198.51.100.9").allowed


def test_unknown_recipients_ban_then_expire() -> None:
    t, clock = make(max_unknown_recipients_per_ip=3, ban_seconds=60.0)
    assert not t.record("203.0.113.5", AbuseEvent.UNKNOWN_RECIPIENT)
    assert not t.record("203.0.113.5", AbuseEvent.UNKNOWN_RECIPIENT)
    assert t.record("203.0.113.5", AbuseEvent.UNKNOWN_RECIPIENT)
    assert t.banned("203.0.113.5")
    assert not t.admit("203.0.113.5").allowed
    assert not t.banned("203.0.113.6")  # neighbour not banned by one host's failures
    clock.advance(61)
    assert not t.banned("203.0.113.5")


def test_prefix_ban_after_several_hosts_are_banned() -> None:
    t, _ = make(max_unknown_recipients_per_ip=2)
    for host in range(8):  # eight hosts, one failure each: nobody banned
        t.record(f"10.1.2.{host}", AbuseEvent.UNKNOWN_RECIPIENT)
    assert not t.banned("10.1.2.200")
    for host in range(3):
        assert t.record(f"10.1.2.{host}", AbuseEvent.UNKNOWN_RECIPIENT)
    assert not t.banned("10.1.2.200")  # three banned hosts: neighbours still served
    assert t.record("10.1.2.3", AbuseEvent.UNKNOWN_RECIPIENT)
    assert t.banned("10.1.2.200")  # the fourth bans the /24


def test_one_host_never_bans_its_neighbours() -> None:
    t, _ = make(max_unknown_recipients_per_ip=20)
    for _ in range(1000):
        t.record("127.0.0.20", AbuseEvent.UNKNOWN_RECIPIENT)
    assert t.banned("127.0.0.20")
    assert not t.banned("127.0.0.21")
    assert t.admit("127.0.0.21").allowed


def test_ipv6_keys_by_prefix() -> None:
    t, _ = make(max_unknown_recipients_per_ip=2)
    t.record("2001:db8::1", AbuseEvent.UNKNOWN_RECIPIENT)
    t.record("2001:db8::2", AbuseEvent.UNKNOWN_RECIPIENT)
    assert t.banned("2001:db8::ffff")  # same /64 counts as one host


def test_auth_delay_grows() -> None:
    t, _ = make(max_auth_failures_per_ip=100)
    delays = []
    for _ in range(6):
        t.record("192.0.2.50", AbuseEvent.AUTH_FAILURE)
        delays.append(t.auth_delay("192.0.2.50"))
    assert delays[0] == 0.0
    assert delays[1:] == sorted(delays[1:]) and delays[1] >= 2.0


def test_exempt_and_disabled() -> None:
    t, _ = make(exempt=("127.0.0.0/8",), max_connections_per_ip=1)
    assert t.admit("127.0.0.1").allowed and t.admit("127.0.0.1").allowed
    t2, _ = make(enabled=False, max_connections_per_ip=1)
    assert t2.admit("192.0.2.1").allowed and t2.admit("192.0.2.1").allowed


def test_garbage_address_does_not_raise() -> None:
    t, _ = make()
    assert t.admit("not-an-ip").allowed
    t.record("not-an-ip", AbuseEvent.PROTOCOL_ERROR)
