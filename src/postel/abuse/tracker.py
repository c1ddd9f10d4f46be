"""Per-IP and per-prefix abuse accounting: connection counts and rates, unknown
recipients, protocol errors and authentication failures, with temporary bans.

Every listener asks ``admit()`` before greeting a client and reports what it saw with
``record()``. Counts are kept per address and per network prefix (/32 and /24 for IPv4,
/64 and /48 for IPv6); a prefix gets a larger allowance than one address
(``PREFIX_FACTOR``) for connections, and is banned only when several of its addresses
are, so one misbehaving host never locks out its neighbours.
State is in memory, bounded by ``TRACKED_KEYS_MAX`` keys (oldest dropped first).
Per-account sending limits (``accounts``, see ``accounts.py``) live beside the per-IP
counts and ignore ``exempt``.

Spec: RELIABILITY.md D6; RFC 5321 §4.5.3.2 allows a server to close abusive sessions.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from postel.abuse.accounts import AccountLimiter
from postel.clock import Clock
from postel.config.model import AbuseConfig

log = logging.getLogger(__name__)

TRACKED_KEYS_MAX = 100_000
"""Addresses and prefixes remembered at once; bounds memory (local policy)."""
PREFIX_FACTOR = 4
"""A /24 or /48 prefix may hold this many times the per-address connection allowance,
and is banned when this many of its addresses are banned within the ban period."""
AUTH_DELAY_BASE = 2.0
"""First delay (seconds) after a failed login; doubles per failure (RELIABILITY.md test 10)."""
AUTH_DELAY_MAX = 30.0
"""Longest delay (seconds) after failed logins."""


class AbuseEvent(enum.StrEnum):
    """Things a session reports."""

    UNKNOWN_RECIPIENT = "unknown_recipient"
    PROTOCOL_ERROR = "protocol_error"
    AUTH_FAILURE = "auth_failure"
    RELAY_DENIED = "relay_denied"
    HOST_BANNED = "host_banned"
    """Counted against a prefix when one of its addresses is banned (internal)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """Answer to ``admit()``: ``allowed`` or a reason for refusal (for the log and 421)."""

    allowed: bool
    reason: str = ""


@dataclass(slots=True)
class _Counters:
    connections: int = 0
    opened: deque[float] = field(default_factory=deque)
    events: dict[AbuseEvent, deque[float]] = field(default_factory=dict)
    banned_until: float = 0.0


def _keys(ip: str) -> tuple[str, ...]:
    """The address itself and its prefixes, e.g. ``('192.0.2.7', '192.0.2.0/24')``."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return (ip,)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return (str(addr), str(ipaddress.ip_network(f"{addr}/24", strict=False)))
    return (
        str(ipaddress.ip_network(f"{addr}/64", strict=False)),
        str(ipaddress.ip_network(f"{addr}/48", strict=False)),
    )


class AbuseTracker:
    """In-memory abuse accounting with sliding windows and temporary bans.

    Not thread-safe; used from the event loop only. Times come from the injected clock
    (``monotonic()`` seconds).
    """

    def __init__(self, config: AbuseConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._state: OrderedDict[str, _Counters] = OrderedDict()
        self._exempt = tuple(ipaddress.ip_network(n, strict=False) for n in config.exempt)
        self.accounts = AccountLimiter(config, clock)
        """Per-account sending limits (submission); never exempted by address."""

    # -- helpers --
    def _exempted(self, ip: str) -> bool:
        if not self._config.enabled:
            return True
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self._exempt)

    def _get(self, key: str) -> _Counters:
        counters = self._state.get(key)
        if counters is None:
            counters = _Counters()
            self._state[key] = counters
            while len(self._state) > TRACKED_KEYS_MAX:
                self._state.popitem(last=False)
        else:
            self._state.move_to_end(key)
        return counters

    def _trim(self, times: deque[float], now: float) -> None:
        horizon = now - self._config.window
        while times and times[0] < horizon:
            times.popleft()

    def _limit(self, index: int, per_ip: int) -> int:
        return per_ip if index == 0 else per_ip * PREFIX_FACTOR

    # -- public API --
    def banned(self, ip: str) -> bool:
        """True while the address or one of its prefixes is banned."""
        if self._exempted(ip):
            return False
        now = self._clock.monotonic()
        return any(
            (c := self._state.get(k)) is not None and c.banned_until > now for k in _keys(ip)
        )

    def admit(self, ip: str) -> Admission:
        """Count a new connection from ``ip`` and say whether to serve it.

        A refused connection is not counted as open; the caller answers 421 (SMTP),
        ``* BYE`` (IMAP) or ``-ERR`` (POP3) and closes.
        """
        if self._exempted(ip):
            return Admission(True)
        if self.banned(ip):
            return Admission(False, "temporarily banned")
        now = self._clock.monotonic()
        keys = _keys(ip)
        for i, key in enumerate(keys):
            c = self._get(key)
            if c.connections >= self._limit(i, self._config.max_connections_per_ip):
                return Admission(False, "too many connections")
            self._trim(c.opened, now)
            if len(c.opened) >= self._limit(i, self._config.max_connection_rate_per_ip):
                return Admission(False, "connection rate exceeded")
        for key in keys:
            c = self._get(key)
            c.connections += 1
            c.opened.append(now)
        return Admission(True)

    def release(self, ip: str) -> None:
        """The connection admitted for ``ip`` has closed."""
        if self._exempted(ip):
            return
        for key in _keys(ip):
            c = self._state.get(key)
            if c is not None and c.connections > 0:
                c.connections -= 1

    def record(self, ip: str, event: AbuseEvent) -> bool:
        """Count ``event`` for ``ip``; return True if this made the address banned.

        Events count against the address (for IPv6 its /64). A prefix (/24, /48) is
        banned only when PREFIX_FACTOR of its addresses have been banned within the ban
        period, so one host's failures never lock out its neighbours (RELIABILITY.md D6).
        """
        if self._exempted(ip):
            return False
        now = self._clock.monotonic()
        key, prefix = _keys(ip)[0], _keys(ip)[-1]
        c = self._get(key)
        if c.banned_until > now:
            return False  # already banned: its session is being closed
        times = c.events.setdefault(event, deque())
        times.append(now)
        self._trim(times, now)
        if len(times) < self._threshold(event):
            return False
        c.banned_until = now + self._config.ban_seconds
        log.warning("abuse.banned", extra={"key": key, "event": str(event), "count": len(times)})
        if prefix != key:
            p = self._get(prefix)
            banned_hosts = p.events.setdefault(AbuseEvent.HOST_BANNED, deque())
            banned_hosts.append(now)
            horizon = now - self._config.ban_seconds
            while banned_hosts and banned_hosts[0] < horizon:
                banned_hosts.popleft()
            if len(banned_hosts) >= PREFIX_FACTOR and p.banned_until <= now:
                p.banned_until = now + self._config.ban_seconds
                log.warning(
                    "abuse.banned", extra={"key": prefix, "banned_hosts": len(banned_hosts)}
                )
        return True

    def auth_delay(self, ip: str) -> float:
        """Seconds to wait before answering a failed login from ``ip``: 0 for the first
        failure in the window, then AUTH_DELAY_BASE doubling up to AUTH_DELAY_MAX."""
        if self._exempted(ip):
            return 0.0
        c = self._state.get(_keys(ip)[0])
        if c is None:
            return 0.0
        times = c.events.get(AbuseEvent.AUTH_FAILURE)
        if not times:
            return 0.0
        self._trim(times, self._clock.monotonic())
        n = len(times)
        if n <= 1:
            return 0.0
        return float(min(AUTH_DELAY_MAX, AUTH_DELAY_BASE * 2 ** (n - 2)))

    def _threshold(self, event: AbuseEvent) -> int:
        match event:
            case AbuseEvent.UNKNOWN_RECIPIENT | AbuseEvent.RELAY_DENIED:
                return self._config.max_unknown_recipients_per_ip
            case AbuseEvent.AUTH_FAILURE:
                return self._config.max_auth_failures_per_ip
            case AbuseEvent.PROTOCOL_ERROR:
                return self._config.max_errors_per_ip
            case AbuseEvent.HOST_BANNED:
                return PREFIX_FACTOR
