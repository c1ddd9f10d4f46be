"""Per-account sending limits for authenticated submission: messages and recipients per
account in a sliding one-hour window, so a stolen password cannot turn the server into
a spam source.

Limits are per account, never per address: the abuse tracker's ``exempt`` networks
(loopback in the embedded default) do not exempt an account, and neither does
``enabled = false`` (which turns off the per-IP accounting only). Submission asks
``may_send_message`` at MAIL and ``may_add_recipient`` at RCPT, and calls ``record``
once a message is accepted (250 after DATA): refused or abandoned transactions never
count. Two sessions of one account may each pass a check before either records, so the
count can exceed a limit by what those sessions carry in flight.

State is in memory (it starts empty after a restart), at most ``TRACKED_ACCOUNTS_MAX``
accounts (the least recently seen are forgotten first).

Spec: RFC 6409 §5 (an MSA may enforce submission policy); RFC 5321 §4.2.2 (450);
RFC 3463 §3.8 (X.7.1 delivery not authorized).
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from postel.clock import Clock
from postel.config.model import AbuseConfig

ACCOUNT_WINDOW_S = 3600.0
"""The sliding window of the per-account limits: one hour, as the settings' names
(``max_messages_per_hour_per_account``) say."""
TRACKED_ACCOUNTS_MAX = 100_000
"""Accounts whose sending is remembered at once; bounds memory (local policy)."""


class AccountLimit(enum.StrEnum):
    """Which per-account limit refused (for the log line)."""

    MESSAGES = "messages"
    RECIPIENTS = "recipients"


@dataclass(slots=True)
class _Usage:
    messages: deque[float] = field(default_factory=deque)
    """When each accepted message was recorded (monotonic seconds)."""
    recipients: deque[tuple[float, int]] = field(default_factory=deque)
    """(when, how many recipients) per accepted message."""
    recipient_total: int = 0
    """The sum of the counts in ``recipients``."""


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """Messages and recipients an account sent within the current window."""

    messages: int
    recipients: int


class AccountLimiter:
    """Sliding-window counts per account, checked against ``config``'s
    ``max_messages_per_hour_per_account`` and ``max_recipients_per_hour_per_account``.

    Accounts are keyed by address, case-insensitively. Not thread-safe; used from the
    event loop only. Times come from the injected clock's ``monotonic()``.
    """

    def __init__(
        self, config: AbuseConfig, clock: Clock, *, window: float = ACCOUNT_WINDOW_S
    ) -> None:
        self._messages_max = config.max_messages_per_hour_per_account
        self._recipients_max = config.max_recipients_per_hour_per_account
        self._clock = clock
        self._window = window
        self._usage: OrderedDict[str, _Usage] = OrderedDict()

    def usage(self, account: str) -> AccountUsage:
        """What ``account`` sent within the window ending now."""
        usage = self._current(account)
        if usage is None:
            return AccountUsage(0, 0)
        return AccountUsage(len(usage.messages), usage.recipient_total)

    def may_send_message(self, account: str) -> bool:
        """Whether ``account`` may start one more message now (MAIL FROM)."""
        return self.usage(account).messages < self._messages_max

    def may_add_recipient(self, account: str, pending: int = 0) -> bool:
        """Whether ``account`` may name one more recipient now (RCPT TO), with
        ``pending`` recipients already accepted in the transaction under way."""
        return self.usage(account).recipients + pending < self._recipients_max

    def record(self, account: str, recipients: int) -> None:
        """Count one accepted message with ``recipients`` recipients (250 after DATA)."""
        now = self._clock.monotonic()
        key = account.lower()
        usage = self._current(account)
        if usage is None:
            usage = self._usage[key] = _Usage()
            while len(self._usage) > TRACKED_ACCOUNTS_MAX:
                self._usage.popitem(last=False)
        usage.messages.append(now)
        usage.recipients.append((now, recipients))
        usage.recipient_total += recipients

    def _current(self, account: str) -> _Usage | None:
        """The account's usage trimmed to the window (None: nothing in it)."""
        key = account.lower()
        usage = self._usage.get(key)
        if usage is None:
            return None
        self._usage.move_to_end(key)
        horizon = self._clock.monotonic() - self._window
        while usage.messages and usage.messages[0] <= horizon:
            usage.messages.popleft()
        while usage.recipients and usage.recipients[0][0] <= horizon:
            usage.recipient_total -= usage.recipients.popleft()[1]
        if not usage.messages and not usage.recipients:
            del self._usage[key]
            return None
        return usage
