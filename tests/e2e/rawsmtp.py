"""A minimal SMTP client over a raw socket, for bytes no library would send."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

REPLY_TIMEOUT = 10.0
"""Seconds to wait for a reply before the test fails."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[bytes, ...]
    """Each reply line without the code, separator and CRLF."""

    @property
    def text(self) -> bytes:
        return b"\n".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text.decode('latin-1')}"


class RawSmtp:
    """One connection; ``send`` writes bytes as given, ``reply`` reads one reply."""

    def __init__(self, address: tuple[str, int], timeout: float = REPLY_TIMEOUT) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(address, timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSmtp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes | None:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self) -> Reply:
        """Read one (possibly multi-line) reply; raises ConnectionError at EOF."""
        lines: list[bytes] = []
        while True:
            line = self._line()
            if line is None:
                raise ConnectionError(f"connection closed after {lines!r}")
            lines.append(line[4:])
            if line[3:4] != b"-":
                return Reply(int(line[:3]), tuple(lines))

    def replies_until_close(self) -> list[Reply]:
        """Every reply until the server closes the connection."""
        found: list[Reply] = []
        while True:
            try:
                found.append(self.reply())
            except (ConnectionError, TimeoutError):
                return found

    def command(self, line: bytes | str) -> Reply:
        data = line.encode() if isinstance(line, str) else line
        self.send(data + b"\r\n")
        return self.reply()

    def greet(self, name: str = "client.test") -> Reply:
        """Read the 220 greeting and say EHLO; returns the EHLO reply."""
        greeting = self.reply()
        assert greeting.code == 220, greeting
        reply = self.command(f"EHLO {name}")
        assert reply.code == 250, reply
        return reply

    def start_tls(self, settle: float = 0.0) -> None:
        """Wrap the socket in TLS (no certificate check: test servers are self-signed).
        Anything already buffered is an error: it arrived in plaintext.

        ``settle`` waits that many seconds before the ClientHello; tests that are not
        about the handshake itself use it to stay clear of a known server race (see
        test_smtp_wire.test_starttls_handshake_right_after_the_220)."""
        assert not self.buffer, f"plaintext after the 220 to STARTTLS: {self.buffer!r}"
        if settle:
            time.sleep(settle)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        assert isinstance(self.sock, socket.socket)
        self.sock = context.wrap_socket(self.sock, server_hostname="mx.test")

    def transaction(self, sender: str, recipients: list[str], data: bytes) -> Reply:
        """MAIL, RCPT..., DATA with ``data`` sent as given (already dot-stuffed and
        terminated with CRLF.CRLF); returns the reply to the end of data."""
        reply = self.command(f"MAIL FROM:<{sender}>")
        assert reply.code == 250, reply
        for rcpt in recipients:
            reply = self.command(f"RCPT TO:<{rcpt}>")
            assert reply.code == 250, reply
        reply = self.command("DATA")
        assert reply.code == 354, reply
        self.send(data)
        return self.reply()
