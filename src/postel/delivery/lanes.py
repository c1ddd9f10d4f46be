"""Per-destination lanes of the delivery worker: leased mail waiting for a connection
to its domain, and the connections that carry it.

A ``Lane`` holds the leases of one destination (a domain; REQUIRETLS mail has a lane
of its own, whose connections verify the server) in arrival order, the route found for
it and how many connection tasks serve it. A connection takes the lane's next lease
when it is free, and stays open up to ``CONNECTION_IDLE_S`` after the lane runs dry,
so the next leases of the same domain reuse it instead of paying a new TCP connection,
greeting, EHLO (and TLS handshake): the connection cache of Postfix's smtp(8),
``smtp_connection_cache_time_limit``.

Bounds defined here (local policy): ``CONNECTION_IDLE_S``, ``CONNECTION_SPREAD_S``,
``ROUTE_REUSE_S``, ``MESSAGES_PER_CONNECTION_MIN``.

Spec: RFC 5321 §4.5.4.1 (several messages over one connection), §5.1.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from postel.store.queue_api import Lease

from .mx import NoRoute, Route

CONNECTION_IDLE_S = 2.0
"""Seconds a connection with nothing to send waits for more mail to its domain before
QUIT (local policy; Postfix's smtp_connection_cache_time_limit is 2 s). Far below the
server's own idle timeout (RFC 5321 §4.5.3.2.7: 5 minutes)."""
ROUTE_REUSE_S = 60.0
"""Seconds a lane reuses the route it found before looking the domain up again
(local policy: a lane busy for a long time still follows MX changes)."""
CONNECTION_SPREAD_S = 0.05
"""A lane's extra connections start at random within this many seconds rather than in
one burst (local policy: spares the server a burst of handshakes, and keeps parallel
transactions to one server from running in lockstep, so a crash catches fewer of them
between the server's reply and the recorded outcome: RELIABILITY.md D1)."""
MESSAGES_PER_CONNECTION_MIN = 5
"""Leases of one lane per extra parallel connection (local policy: below this, one
connection delivers them in turn, cheaper than another TCP and TLS handshake)."""


@dataclass(eq=False, slots=True)
class Lane:
    """The leases waiting for one destination and the connections serving it.

    ``key``: (domain, requiretls); ``pending``: leases not yet taken by a connection;
    ``work``: set when leases arrive (or an idle connection should look again);
    ``connections``: connection tasks serving the lane (connecting, sending or idle);
    ``route`` and ``routed_at`` (monotonic seconds): the last route found."""

    domain: str
    requiretls: bool
    pending: deque[Lease] = field(default_factory=deque)
    work: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0
    route: Route | NoRoute | None = None
    routed_at: float = 0.0
    routing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> tuple[str, bool]:
        """(domain, requiretls)."""
        return (self.domain, self.requiretls)

    def wanted(self) -> int:
        """Connections this lane's backlog asks for: one per
        ``MESSAGES_PER_CONNECTION_MIN`` pending leases (at least one while any waits),
        counting those already serving it."""
        if not self.pending:
            return 0
        return max(1, -(-len(self.pending) // MESSAGES_PER_CONNECTION_MIN))

    def take_all(self) -> list[Lease]:
        """Empty ``pending`` and return what it held."""
        taken = list(self.pending)
        self.pending.clear()
        return taken

    def route_fresh(self, now: float) -> bool:
        """Whether ``route`` was found less than ``ROUTE_REUSE_S`` before ``now``."""
        return self.route is not None and now - self.routed_at < ROUTE_REUSE_S


__all__ = [
    "CONNECTION_IDLE_S",
    "CONNECTION_SPREAD_S",
    "MESSAGES_PER_CONNECTION_MIN",
    "ROUTE_REUSE_S",
    "Lane",
]
