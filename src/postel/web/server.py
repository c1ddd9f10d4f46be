"""Serving the web app with uvicorn inside postel's own event loop.

``WebServer(app, sock, ssl_context=...)`` takes a socket already bound by the
composition root (before privileges are dropped) and serves HTTP/1.1 on it, over TLS
when ``ssl_context`` is given. ``start()`` returns once the socket accepts
connections; ``stop()`` closes it and lets requests in flight finish for a grace
period. postel keeps its own SIGTERM/SIGINT handling: uvicorn's is not installed.

Every connection is bounded before and between requests (see ``protocol.py``): a
request head must arrive whole within ``WEB_REQUEST_HEAD_TIMEOUT_S`` and be at most
``WEB_HEADER_OCTETS_MAX`` octets (else 431), and connections are capped per client
address and in total, a connection past a cap being closed at once.

Bounds defined here (local policy): ``WEB_KEEP_ALIVE_S``, ``WEB_REQUEST_HEAD_TIMEOUT_S``,
``WEB_CONNECTIONS_MAX``, ``WEB_CONNECTIONS_PER_IP_MAX``, ``WEB_HEADER_OCTETS_MAX``,
``WEB_STOP_GRACE_S``, ``WEB_START_TIMEOUT_S``.

Spec: RFC 9112 (HTTP/1.1); RFC 6585 §5 (431); RFC 8461 §3.3 (the policy is served over
HTTPS).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from postel.web.protocol import ConnectionGate, Network, protocol_class, quiet_client_errors

log = logging.getLogger(__name__)

WEB_KEEP_ALIVE_S = 5
"""Seconds an idle HTTP connection is kept open after a response."""
WEB_REQUEST_HEAD_TIMEOUT_S = 10.0
"""Seconds within which a whole request head must arrive, counted from the connection's
opening or the previous response; a connection that sends nothing or trickles a head
(slow loris) is closed then. Spec: RFC 9112 §9.3 (a server may close a connection)."""
WEB_CONNECTIONS_MAX = 256
"""Connections open at once, idle ones included; a connection past it is closed at
once (each holds a descriptor the mail listeners share: the policy file and health
check need few)."""
WEB_CONNECTIONS_PER_IP_MAX = 32
"""Connections open at once from one client address (unless exempted); one host cannot
take all of ``WEB_CONNECTIONS_MAX``."""
WEB_HEADER_OCTETS_MAX = 16 * 1024
"""Octets of a request head (request line, header fields, empty line), however it
arrives (one read or many, pipelined or not); a larger one gets 431.
Spec: RFC 6585 §5."""
WEB_STOP_GRACE_S = 5.0
"""Seconds ``stop`` waits for requests in flight."""
WEB_START_TIMEOUT_S = 10.0
"""Seconds ``start`` waits for the server to accept connections."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The web listener on ``sock`` (bound and listening), TLS when ``ssl_context``.
    Build before privileges are dropped (the TLS context is already loaded).

    ``connections_per_ip`` caps the connections from one address (e.g. the abuse
    settings' ``max_connections_per_ip``); addresses in the ``exempt`` networks (CIDR
    text, e.g. the abuse settings' ``exempt``: a TLS proxy on loopback) are not capped
    per address. ``head_timeout`` replaces ``WEB_REQUEST_HEAD_TIMEOUT_S`` (tests).
    Raises ValueError for a bad network."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connections_per_ip: int = WEB_CONNECTIONS_PER_IP_MAX,
        exempt: tuple[str, ...] = (),
        head_timeout: float = WEB_REQUEST_HEAD_TIMEOUT_S,
    ) -> None:
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["http/1.1"])
        networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in exempt)
        self.gate = ConnectionGate(
            per_ip=connections_per_ip, total=WEB_CONNECTIONS_MAX, exempt=networks
        )
        """Open connections per address and in total."""
        quiet_client_errors()
        config = uvicorn.Config(
            app,
            http=protocol_class(
                self.gate, head_timeout=head_timeout, head_max=WEB_HEADER_OCTETS_MAX
            ),
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=WEB_KEEP_ALIVE_S,
            timeout_graceful_shutdown=int(WEB_STOP_GRACE_S),
            limit_concurrency=None,  # the gate bounds connections, idle ones included
            h11_max_incomplete_event_size=WEB_HEADER_OCTETS_MAX,
            ssl_context_factory=(lambda _c, _d: ssl_context) if ssl_context is not None else None,
        )
        config.load()
        self._server = _EmbeddedServer(config)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Serve in a task; returns once it accepts connections. Raises RuntimeError
        when the server cannot start."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        async with asyncio.timeout(WEB_START_TIMEOUT_S):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("the web server stopped while starting")
                await asyncio.sleep(0.01)
        host, port = self.address
        log.info("web.listening", extra={"address": f"{host}:{port}"})

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (``WEB_STOP_GRACE_S``), return."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            async with asyncio.timeout(WEB_STOP_GRACE_S + 2):
                await self._task
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
