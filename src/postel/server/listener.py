"""Listening sockets: bind (before privileges are dropped) and serve one protocol each.

Each accepted connection gets its own ``asyncio.Protocol`` from the service's factory;
the service tracks its sessions, so shutdown can stop accepting and then wait for
sessions in flight (SIGTERM: finish in-flight transactions, exit 0).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from postel import limits
from postel.config import Listen
from postel.errors import ConfigError

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
"""Pending connections the kernel queues per listening socket (local policy)."""


@dataclass(frozen=True, slots=True)
class Peer:
    """The remote end of an accepted connection."""

    ip: str
    port: int


def bind_socket(listen: Listen, *, reuse_port: bool = False) -> socket.socket:
    """Create, bind and listen on ``listen``'s address (before privileges are dropped).
    ``reuse_port``: SO_REUSEPORT, so that several processes each listen on their own
    socket of one port and the kernel spreads connections over them (use
    ``bind_group``, which first makes sure nobody else listens there).

    Raises:
        ConfigError: one clear line naming the address and the config key to change.
    """
    host = listen.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, listen.port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise _bind_error(listen, exc) from exc
    sock.setblocking(False)
    return sock


def bind_group(listen: Listen, count: int) -> list[socket.socket]:
    """``count`` SO_REUSEPORT sockets listening on ``listen``'s address, one per
    process of ``[smtp] processes`` (docs/adr/0005).

    The port is first claimed for a moment by a socket without SO_REUSEPORT: the
    kernel lets a socket with SO_REUSEPORT join any group of the same user on that
    port, so without this check a second postel started by mistake would silently
    take a share of the connections (mail committed to another data directory)
    instead of stopping with "the port is already in use".

    Raises:
        ConfigError: the port is in use (also by another group of SO_REUSEPORT
            sockets), or cannot be bound; one line naming the config key.
    """
    bind_socket(listen).close()
    return [bind_socket(listen, reuse_port=True) for _ in range(count)]


def _bind_error(listen: Listen, exc: OSError) -> ConfigError:
    reason = {
        errno.EADDRINUSE: "the port is already in use",
        errno.EACCES: "permission denied (ports below 1024 need root)",
        errno.EADDRNOTAVAIL: "the address is not on this machine",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return ConfigError(
        f"cannot listen on {listen.host}:{listen.port} for {listen.service}: {reason} "
        f"(change listen.{listen.service} in the config)"
    )


class Listener:
    """One listening socket serving one protocol.

    Args:
        listen: what to serve where.
        sock: the bound socket (see ``bind_socket``).
        protocol_factory: makes the ``asyncio.Protocol`` of each connection; it admits
            the client through the abuse tracker itself.
        ssl_context: set for implicit-TLS ports (RFC 8314 §3).
    """

    def __init__(
        self,
        listen: Listen,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.listen = listen
        self._sock = sock
        self._factory = protocol_factory
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory,
            sock=self._sock,
            ssl=self._ssl,
            ssl_handshake_timeout=limits.SMTP_TIMEOUT_TLS_HANDSHAKE if self._ssl else None,
        )

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()


class Drainable(Protocol):
    """A session that ends by itself (``finished``) or on ``abort()``."""

    finished: asyncio.Future[None]

    def abort(self) -> None: ...


async def drain_sessions(sessions: Iterable[Drainable], timeout: float) -> int:
    """Wait up to ``timeout`` seconds for ``sessions`` to end; abort the rest. Returns
    how many were aborted (shutdown, RELIABILITY.md D2)."""
    pending = [s.finished for s in sessions]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    rest = [s for s in sessions if not s.finished.done()]
    for session in rest:
        session.abort()
    return len(rest)
