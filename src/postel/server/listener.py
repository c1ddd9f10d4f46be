"""Listening sockets: accept, admit through the abuse tracker, run one session each.

Every session runs as a task the listener tracks, so shutdown can stop accepting and
then wait for sessions in flight (SIGTERM: finish in-flight transactions, exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from postel.abuse import AbuseTracker
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


SessionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Peer], Awaitable[None]]
"""Runs one session to completion; must not raise (it logs and closes on error)."""
RefuseHandler = Callable[[asyncio.StreamWriter, str], Awaitable[None]]
"""Says goodbye to a refused client (421 for SMTP) and closes."""


def bind_socket(listen: Listen) -> socket.socket:
    """Create, bind and listen on ``listen``'s address (before privileges are dropped).

    Raises:
        ConfigError: one clear line naming the address and the config key to change.
    """
    host = listen.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, listen.port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = {
            errno.EADDRINUSE: "the port is already in use",
            errno.EACCES: "permission denied (ports below 1024 need root)",
            errno.EADDRNOTAVAIL: "the address is not on this machine",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise ConfigError(
            f"cannot listen on {listen.host}:{listen.port} for {listen.service}: {reason} "
            f"(change listen.{listen.service} in the config)"
        ) from exc
    sock.setblocking(False)
    return sock


class Listener:
    """One listening socket serving one protocol.

    Args:
        listen: what to serve where.
        sock: the bound socket (see ``bind_socket``).
        handler: runs a session.
        refuse: answers a client the abuse tracker refuses.
        abuse: the shared tracker.
        ssl_context: set for implicit-TLS ports (RFC 8314).
    """

    def __init__(
        self,
        listen: Listen,
        sock: socket.socket,
        handler: SessionHandler,
        refuse: RefuseHandler,
        abuse: AbuseTracker,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.listen = listen
        self._sock = sock
        self._handler = handler
        self._refuse = refuse
        self._abuse = abuse
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, sock=self._sock, ssl=self._ssl, limit=1 << 16
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("", 0)
        peer = Peer(str(peername[0]), int(peername[1]))
        task = asyncio.current_task()
        admission = self._abuse.admit(peer.ip)
        if not admission.allowed:
            log.info(
                "listener.refused",
                extra={
                    "service": str(self.listen.service),
                    "ip": peer.ip,
                    "reason": admission.reason,
                },
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._refuse(writer, admission.reason), 5)
            return
        if task is not None:
            self._sessions.add(task)
        try:
            await self._handler(reader, writer, peer)
        finally:
            self._abuse.release(peer.ip)
            if task is not None:
                self._sessions.discard(task)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for sessions in flight; cancel the rest.

        Returns the number of sessions cancelled.
        """
        pending = set(self._sessions)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
        else:
            still = set()
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
        return len(still)
