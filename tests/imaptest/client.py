"""A small blocking IMAP client connection for the script runner.

It knows only the response framing: lines ending in CRLF, ``{n}`` / ``~{n}`` literals
announced at the end of a line, and the first word telling untagged (``*``),
continuation (``+``) and tagged replies apart. Commands are sent as given; the caller
splits them at synchronizing literals and waits for ``+`` (see `literal_segments`).
Every socket wait has a timeout. Text is latin-1 so byte counts are kept.

Spec: RFC 9051 §2.2 (commands and responses), §4.3 (literals), §7.5 (continuation).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum

# Bounds on what one server response may hold (defined here, used only by this client).
RESPONSE_LINE_MAX = 1024 * 1024  # one physical line; RFC 9051 §4 sets none, 1 MiB is ample
RESPONSE_LITERAL_MAX = 64 * 1024 * 1024  # one literal; test messages are a few KiB
DEFAULT_TIMEOUT_SECONDS = 10.0

_LITERAL_AT_END_RE = re.compile(rb"~?\{(\d+)\}\r?\n$")
_COMMAND_LITERAL_RE = re.compile(rb"~?\{(\d+)(\+?)\}\r\n")


class ConnectionClosed(ConnectionError):
    """The server closed the connection (possibly after ``* BYE``)."""


class ResponseTooLong(ValueError):
    """A response line or literal exceeded `RESPONSE_LINE_MAX` / `RESPONSE_LITERAL_MAX`."""


class ResponseKind(StrEnum):
    """The three kinds of server responses. Spec: RFC 9051 §2.2.2."""

    UNTAGGED = "untagged"
    TAGGED = "tagged"
    CONTINUATION = "continuation"


@dataclass(frozen=True, slots=True)
class Response:
    """One complete response: ``text`` follows ``* ``, ``+ `` or ``<tag> `` (literals inline)."""

    kind: ResponseKind
    tag: str
    text: str


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a command to send; ``wait`` means wait for ``+`` before the next piece."""

    data: bytes
    wait: bool


def literal_segments(command: bytes) -> tuple[Segment, ...]:
    """Split a command line (without its final CRLF) after each synchronizing literal.

    ``{n}\\r\\n`` and ``~{n}\\r\\n`` end a segment that must wait for a continuation;
    ``{n+}`` literals (RFC 7888) do not. Literal data is skipped over, never scanned.
    Spec: RFC 9051 §4.3, RFC 3516 §4.2 (literal8).
    """
    segments: list[Segment] = []
    start = 0
    pos = 0
    while True:
        match = _COMMAND_LITERAL_RE.search(command, pos)
        if match is None:
            break
        size = int(match.group(1))
        if not match.group(2):
            segments.append(Segment(command[start : match.end()], True))
            start = match.end()
        pos = match.end() + size
    segments.append(Segment(command[start:] + b"\r\n", False))
    return tuple(segments)


class ImapConnection:
    """One client connection over a blocking socket with a per-wait timeout."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        sock.settimeout(timeout)
        self._sock = sock
        self._buffer = bytearray()
        self.closed = False

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        tls: bool = False,
    ) -> ImapConnection:
        """Open a TCP connection (implicit TLS when ``tls``, certificate not checked:
        test servers use self-signed ones). Raises OSError (incl. TimeoutError)."""
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
        return cls(sock, timeout)

    def send(self, data: bytes) -> None:
        """Send raw bytes. Raises `ConnectionClosed` if the peer has gone."""
        try:
            self._sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.closed = True
            raise ConnectionClosed(str(exc)) from exc

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except ConnectionResetError as exc:
            self.closed = True
            raise ConnectionClosed(str(exc)) from exc
        if not chunk:
            self.closed = True
            raise ConnectionClosed("connection closed by server")
        self._buffer += chunk

    def _read_line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > RESPONSE_LINE_MAX:
                raise ResponseTooLong("response line too long")
            self._fill()

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read_raw(self) -> bytes:
        """Read one response with its literals, without the final CRLF."""
        parts: list[bytes] = []
        while True:
            line = self._read_line()
            match = _LITERAL_AT_END_RE.search(line)
            if match is None:
                parts.append(line.removesuffix(b"\n").removesuffix(b"\r"))
                return b"".join(parts)
            size = int(match.group(1))
            if size > RESPONSE_LITERAL_MAX:
                raise ResponseTooLong("literal too large")
            parts.append(line[: match.start()] + match.group(0).rstrip())
            parts.append(b"\r\n" + self._read_exact(size))

    def read_response(self) -> Response:
        """Read and classify one response. Raises `ConnectionClosed`, TimeoutError."""
        text = self.read_raw().decode("latin-1")
        word, _, rest = text.partition(" ")
        if word == "*":
            return Response(ResponseKind.UNTAGGED, "", rest)
        if word == "+":
            return Response(ResponseKind.CONTINUATION, "", rest)
        return Response(ResponseKind.TAGGED, word, rest)
