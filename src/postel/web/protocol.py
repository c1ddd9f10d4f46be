"""uvicorn's h11 protocol with the bounds postel's web listener needs on every
connection, before and between requests:

* a request head must be complete within ``head_timeout`` seconds of the moment one is
  awaited (the connection opened, or the previous response was sent): an idle or
  trickling client (slow loris) is cut, whatever it sends meanwhile;
* a request head (request line, header fields and the empty line, counted as
  received) of more than ``head_max`` octets is refused with 431, whether it came in
  one read or in many, pipelined or not;
* connections are counted per client address and in total (``ConnectionGate``): past
  either bound a new connection is closed at once, before anything is read.

Spec: RFC 9112 §2.2, §9.3 (persistent connections may be closed), RFC 6585 §5 (431);
RFC 9110 §15.6.4 (503).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

UVICORN_LOGGER = "uvicorn.error"
"""The logger uvicorn's protocol writes to."""
CLIENT_ERROR_MESSAGES = frozenset(
    {
        "Invalid HTTP request received.",
        "Exceeded concurrency limit.",
        "Unsupported upgrade request.",
    }
)
"""uvicorn's per-request warnings that any client can cause at will: logged at DEBUG."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConnectionGate:
    """Open web connections per client address and in total, for one server.

    ``admit(ip)`` counts a new connection and says whether to serve it: False past
    ``per_ip`` for that address (addresses in ``exempt`` are not limited per address)
    or past ``total`` for all; ``release(ip)`` forgets an admitted one. Addresses that
    do not parse (e.g. a Unix socket's) count under their text. Event loop only.
    """

    def __init__(self, *, per_ip: int, total: int, exempt: tuple[Network, ...] = ()) -> None:
        self._per_ip = per_ip
        self._total = total
        self._exempt = exempt
        self._open: dict[str, int] = {}
        self._count = 0

    @property
    def open(self) -> int:
        """Connections admitted and not yet released."""
        return self._count

    def admit(self, ip: str) -> bool:
        """Count a new connection from ``ip``; False (and not counted) past a bound."""
        if self._count >= self._total:
            return False
        held = self._open.get(ip, 0)
        if held >= self._per_ip and not self._exempted(ip):
            return False
        self._open[ip] = held + 1
        self._count += 1
        return True

    def release(self, ip: str) -> None:
        """An admitted connection from ``ip`` has closed."""
        held = self._open.get(ip, 0)
        if held <= 0:
            return
        self._count -= 1
        if held == 1:
            del self._open[ip]
        else:
            self._open[ip] = held - 1

    def _exempted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self._exempt)


class HeadBoundedConnection(h11.Connection):
    """h11's server side refusing a request head of more than ``head_max`` octets as
    received (h11 itself only bounds a head still incomplete after a read), and
    calling ``on_head`` for each request head accepted. ``refusal`` is the status of
    the last refusal (431 for a head too large, else h11's hint, usually 400).
    Spec: RFC 9112 §2.2; RFC 6585 §5."""

    def __init__(self, head_max: int, on_head: Callable[[], None]) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=head_max)
        self._head_max = head_max
        self._on_head = on_head
        self.refusal = 400

    def next_event(self) -> Any:
        """h11's next event; raises h11.RemoteProtocolError (hint 431) for a head
        over the bound."""
        before = len(self._receive_buffer)
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal = exc.error_status_hint
            raise
        if isinstance(event, h11.Request):
            if before - len(self._receive_buffer) > self._head_max:
                self.refusal = 431
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            self._on_head()
        return event


class BoundedH11Protocol(H11Protocol):
    """uvicorn's ``H11Protocol`` with the bounds of the module docstring. Build with
    ``protocol_class``, which binds the per-server settings."""

    gate: ConnectionGate
    head_timeout: float
    head_max: int

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = HeadBoundedConnection(self.head_max, self._head_received)
        self._head_timer: asyncio.TimerHandle | None = None
        self._admitted: str | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Admit the connection through the gate (else close it) and await a head."""
        super().connection_made(transport)
        ip = self.client[0] if self.client else str(transport.get_extra_info("peername"))
        if not self.gate.admit(ip):
            log.debug("web.connection_refused", extra={"client": ip})
            transport.close()
            return
        self._admitted = ip
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the gate's count and the head timer."""
        self._cancel_head_timer()
        if self._admitted is not None:
            self.gate.release(self._admitted)
            self._admitted = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """A response was sent: the next head is awaited (keep-alive or pipelined)."""
        if not self.transport.is_closing():
            self._arm_head_timer()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """Refuse the request with the status the parser gave (400 or 431), then close.
        Spec: RFC 9112 §2.2; RFC 6585 §5."""
        status = self.conn.refusal if isinstance(self.conn, HeadBoundedConnection) else 400
        if status not in (400, 431):
            status = 400
        body = b"Request Header Fields Too Large" if status == 431 else msg.encode("ascii")
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        try:
            for event in (
                h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            pass  # a response was already under way: just close
        self.transport.close()

    def _head_received(self) -> None:
        self._cancel_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.debug("web.request_head_timeout", extra={"client": self._admitted})
            self.transport.close()


def protocol_class(
    gate: ConnectionGate, *, head_timeout: float, head_max: int
) -> type[BoundedH11Protocol]:
    """A ``BoundedH11Protocol`` subclass bound to one server's ``gate`` and bounds, to
    pass as ``uvicorn.Config(http=...)``."""
    return type(
        "WebH11Protocol",
        (BoundedH11Protocol,),
        {"gate": gate, "head_timeout": head_timeout, "head_max": head_max},
    )


class ClientErrorsToDebug(logging.Filter):
    """Turns uvicorn's warnings about bad requests (``CLIENT_ERROR_MESSAGES``), which
    any client can cause at will, into DEBUG records: dropped unless the logger is
    enabled for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a demoted record that DEBUG logging would not show."""
        if record.levelno != logging.WARNING or record.msg not in CLIENT_ERROR_MESSAGES:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_client_errors() -> None:
    """Install ``ClientErrorsToDebug`` on uvicorn's logger (once)."""
    logger = logging.getLogger(UVICORN_LOGGER)
    if not any(isinstance(f, ClientErrorsToDebug) for f in logger.filters):
        logger.addFilter(ClientErrorsToDebug())
