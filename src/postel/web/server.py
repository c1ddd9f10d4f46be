"""Serving the web app with uvicorn inside postel's own event loop.

``WebServer(app, sock, ssl_context=...)`` takes a socket already bound by the
composition root (before privileges are dropped) and serves HTTP/1.1 on it, over TLS
when ``ssl_context`` is given. ``start()`` returns once the socket accepts
connections; ``stop()`` closes it and lets requests in flight finish for a grace
period. postel keeps its own SIGTERM/SIGINT handling: uvicorn's is not installed.

Bounds defined here (local policy): ``WEB_KEEP_ALIVE_S``, ``WEB_CONNECTIONS_MAX``,
``WEB_HEADER_OCTETS_MAX``, ``WEB_STOP_GRACE_S``, ``WEB_START_TIMEOUT_S``.

Spec: RFC 9112 (HTTP/1.1); RFC 8461 §3.3 (the policy is served over HTTPS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

WEB_KEEP_ALIVE_S = 5
"""Seconds an idle HTTP connection is kept open."""
WEB_CONNECTIONS_MAX = 1000
"""Connections served at once; more get 503."""
WEB_HEADER_OCTETS_MAX = 16 * 1024
"""Octets of a request head buffered before the request is refused."""
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
    Build before privileges are dropped (the TLS context is already loaded)."""

    def __init__(
        self, app: ASGIApp, sock: socket.socket, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["http/1.1"])
        config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=WEB_KEEP_ALIVE_S,
            timeout_graceful_shutdown=int(WEB_STOP_GRACE_S),
            limit_concurrency=WEB_CONNECTIONS_MAX,
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
