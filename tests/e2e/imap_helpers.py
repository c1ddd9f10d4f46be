"""Helpers for the IMAP end-to-end tests: accounts with known passwords, TLS client
contexts that trust the test server's self-signed certificate, logged-in imaplib and
imapclient sessions, mail sent over SMTP, and polling.

Spec: RFC 9051 (IMAP4rev2), RFC 8314 §3 (implicit TLS), RFC 5321 (SMTP).
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from .server import PostelServer
from .stored import queue_id_of

PASSWORD = "Corr3ct-horse-battery"
"""The password of every account the IMAP tests create."""

DOMAIN = "example.test"
"""The domain of the test accounts (RFC 2606 reserves .test)."""

SENDER = "sender@remote.test"
"""MAIL FROM of the messages the tests send over SMTP."""

TIMEOUT = 10.0
"""Seconds a client socket waits for the server."""


def add_account(server: PostelServer, address: str, password: str = PASSWORD) -> str:
    """Create ``address`` (and its domain) on ``server`` with ``password``; returns
    ``address``."""
    add_accounts(server, address, password=password)
    return address


def add_accounts(server: PostelServer, *addresses: str, password: str = PASSWORD) -> None:
    """Create each of ``addresses`` (and its domain, once) on ``server`` with
    ``password``, using ``postel account add --password-file``."""
    secret = server.home / "account-password"
    secret.write_text(password + "\n")
    for domain in sorted({address.rsplit("@", 1)[1] for address in addresses}):
        server.cli("domain", "add", domain, check=False)
    for address in addresses:
        server.cli("account", "add", address, "--password-file", str(secret))


def cert_file(server: PostelServer) -> Path:
    """The server's self-signed certificate (PEM)."""
    return server.data / "tls" / "cert.pem"


def tls_context(server: PostelServer) -> ssl.SSLContext:
    """A client context that verifies the server against its own certificate (the name
    is ``mx.test``, not 127.0.0.1, so the host name is not checked)."""
    context = ssl.create_default_context(cafile=str(cert_file(server)))
    context.check_hostname = False
    return context


def imaps(server: PostelServer, user: str | None = None) -> imaplib.IMAP4_SSL:
    """An imaplib session on the implicit-TLS port, logged in as ``user`` when given."""
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.imaps_port, ssl_context=tls_context(server), timeout=TIMEOUT
    )
    if user is not None:
        typ, _ = client.login(user, PASSWORD)
        assert typ == "OK"
    return client


def imapclient_tls(server: PostelServer, user: str | None = None) -> IMAPClient:
    """An IMAPClient session on the implicit-TLS port, logged in as ``user`` when given."""
    client = IMAPClient(
        "127.0.0.1",
        port=server.imaps_port,
        ssl=True,
        ssl_context=tls_context(server),
        timeout=TIMEOUT,
    )
    if user is not None:
        client.login(user, PASSWORD)
    return client


def ok(result: tuple[str, Sequence[Any]]) -> list[Any]:
    """The data of an imaplib ``(typ, data)`` result, asserting ``typ`` is OK (imaplib
    types the data loosely: bytes, None or (bytes, bytes) for a literal)."""
    typ, data = result
    assert typ == "OK", (typ, data)
    return list(data)


def group(pattern: bytes, data: object) -> bytes:
    """Group 1 of ``pattern`` searched in ``data`` (bytes), asserting it matches."""
    assert isinstance(data, bytes), data
    match = re.search(pattern, data)
    assert match is not None, (pattern, data)
    return match.group(1)


def message(tag: str, n: int = 0, body: str = "") -> bytes:
    """A small RFC 5322 message with CRLF line endings, Subject ``tag n``."""
    return (
        f"From: Sender <{SENDER}>\r\n"
        f"To: someone@{DOMAIN}\r\n"
        f"Subject: {tag} {n}\r\n"
        f"Message-ID: <{tag}.{n}@remote.test>\r\n"
        f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        f"\r\n"
        f"{body or f'Body of {tag} number {n}.'}\r\n"
    ).encode()


def smtp_send(server: PostelServer, rcpt: str, messages: Iterable[bytes]) -> list[str]:
    """Send each of ``messages`` to ``rcpt`` over one SMTP connection; returns the
    queue ids from the 250 replies."""
    ids: list[str] = []
    with smtplib.SMTP(*server.address, timeout=60) as client:
        client.ehlo("client.test")
        for content in messages:
            assert client.mail(SENDER, ["BODY=8BITMIME"])[0] == 250
            assert client.rcpt(rcpt)[0] == 250
            code, text = client.data(content)
            assert code == 250, text
            ids.append(queue_id_of(text))
    return ids


def wait_until(check: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


_LITERAL_TAIL = re.compile(rb"~?\{(\d+)\+?\}\r\n$")


class RawImap:
    """A byte-level IMAP client over TLS (implicit or plain), for exact transcripts.

    ``command(b"a1 NOOP")`` sends the line and returns every line up to and including
    the tagged response, with literals (``{n}`` and ``~{n}``) kept inline.
    """

    def __init__(self, server: PostelServer, *, tls: bool = True) -> None:
        port = server.imaps_port if tls else server.imap_port
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock: socket.socket = (
            tls_context(server).wrap_socket(sock, server_hostname="mx.test") if tls else sock
        )
        self.file = self.sock.makefile("rb")
        self.greeting = self.read_line()

    def read_line(self) -> bytes:
        """One response line with any literals it carries (raises EOFError at EOF)."""
        line = self.file.readline()
        if not line:
            raise EOFError("connection closed")
        while (match := _LITERAL_TAIL.search(line)) is not None:
            line += self.file.read(int(match.group(1)))
            more = self.file.readline()
            if not more:
                raise EOFError("connection closed in a literal")
            line += more
        return line

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def command(self, line: bytes) -> list[bytes]:
        """Send ``line`` + CRLF; return the lines through the tagged response."""
        self.send(line + b"\r\n")
        return self.until_tagged(line.split(b" ", 1)[0])

    def until_tagged(self, tag: bytes) -> list[bytes]:
        """Read lines until the one starting with ``tag``."""
        lines: list[bytes] = []
        while True:
            got = self.read_line()
            lines.append(got)
            if got.startswith(tag + b" "):
                return lines

    def login(self, user: str, password: str = PASSWORD) -> None:
        """LOGIN (on a TLS connection)."""
        lines = self.command(b'L1 LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        assert lines[-1].startswith(b"L1 OK"), lines

    def close(self) -> None:
        """Drop the connection."""
        with contextlib.suppress(OSError):
            self.sock.close()


def tagged_ok(lines: list[bytes]) -> list[bytes]:
    """``lines`` after asserting the last (tagged) one says OK; returns the untagged."""
    assert lines and lines[-1].split(b" ", 2)[1:2] == [b"OK"], lines
    return lines[:-1]
