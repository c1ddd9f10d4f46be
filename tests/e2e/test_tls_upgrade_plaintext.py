"""Plaintext where the TLS handshake belongs, on every service that upgrades in-band:
after the positive answer to STARTTLS (SMTP, submission, IMAP) or STLS (POP3) the
client sends command lines instead of a TLS ClientHello. The server drops that
connection, logs one line naming the session and the error class (no traceback: a
client can repeat this at will, so it must not flood the log with errors), and goes on
serving others. Spec: RFC 3207 §4.1; RFC 9051 §6.2.1; RFC 2595 §4; RELIABILITY.md
(bad input gets an error, never a traceback).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from postel import limits

from .conftest import ServerFactory
from .server import PostelServer

TIMEOUT_S = 10.0

Done = Callable[[bytes], bool]


def _smtp_reply_ends(code: bytes) -> Done:
    return lambda buf: any(line.startswith(code + b" ") for line in buf.split(b"\r\n"))


UPGRADES: dict[str, tuple[str, str, list[tuple[bytes, Done]]]] = {
    # service: (port attribute, log event prefix, [(line to send, answer complete?)])
    "smtp": (
        "smtp_port",
        "smtp",
        [
            (b"EHLO client.test\r\n", _smtp_reply_ends(b"250")),
            (b"STARTTLS\r\n", _smtp_reply_ends(b"220")),
        ],
    ),
    "submission": (
        "submission_port",
        "smtp",
        [
            (b"EHLO client.test\r\n", _smtp_reply_ends(b"250")),
            (b"STARTTLS\r\n", _smtp_reply_ends(b"220")),
        ],
    ),
    "imap": ("imap_port", "imap", [(b"a STARTTLS\r\n", lambda buf: b"\r\na OK" in buf)]),
    "pop3": ("pop3_port", "pop3", [(b"STLS\r\n", lambda buf: buf.count(b"+OK") >= 2)]),
}


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    running = module_servers("upgrades")
    running.start()
    yield running


def _read_until(sock: socket.socket, buf: bytes, done: Done) -> bytes:
    deadline = time.monotonic() + TIMEOUT_S
    while not done(buf):
        assert time.monotonic() < deadline, f"no complete answer: {buf!r}"
        chunk = sock.recv(4096)
        assert chunk, f"closed early: {buf!r}"
        buf += chunk
    return buf


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes (EOF or reset) within ``seconds``, whatever it sends
    before (a TLS alert)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False
    return False


@pytest.mark.parametrize("service", sorted(UPGRADES))
def test_plaintext_after_the_upgrade_is_dropped_with_one_log_line(
    server: PostelServer, service: str
) -> None:
    attribute, prefix, dialogue = UPGRADES[service]
    port = getattr(server, attribute)
    log_before = len(server.log.read_bytes())
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        buf = _read_until(sock, b"", lambda b: b"\r\n" in b)  # the greeting
        for line, done in dialogue:
            sock.sendall(line)
            buf = _read_until(sock, buf, done)
        sock.sendall(b"NOOP\r\nNOOP\r\nQUIT\r\n")
        assert _closed_within(sock, TIMEOUT_S), "the connection stayed open"
    deadline = time.monotonic() + TIMEOUT_S
    event = f"{prefix}.session.dropped".encode()
    while event not in (tail := server.log.read_bytes()[log_before:]):
        assert time.monotonic() < deadline, f"no {event!r} in the log: {tail[-2000:]!r}"
        time.sleep(0.05)
    assert b"Traceback" not in tail, tail[-4000:]
    assert b"session.failed" not in tail and b"ERROR" not in tail, tail[-4000:]
    assert b"SSLError" in tail
    # the server goes on serving
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as again:
        assert _read_until(again, b"", lambda b: b"\r\n" in b)[:1] in (b"2", b"*", b"+")


def test_a_stalled_handshake_after_starttls_ends_its_session(
    postel_factory: ServerFactory,
) -> None:
    """A client that sends the first octets of a ClientHello after the 220 to STARTTLS
    and then nothing is cut at the handshake timeout, and its session ends then: the
    server holds none of them afterwards (at stop it has none to cancel and stops at
    once). Spec: RFC 3207 §4.2; RELIABILITY.md (every network wait has a timeout)."""
    server = postel_factory("stalls")
    server.start()
    stalled = []
    for attribute in ("smtp_port", "submission_port"):
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", getattr(server, attribute)), 10)
            buf = _read_until(sock, b"", lambda b: b"\r\n" in b)
            sock.sendall(b"EHLO client.test\r\n")
            buf = _read_until(sock, buf, _smtp_reply_ends(b"250"))
            sock.sendall(b"STARTTLS\r\n")
            _read_until(sock, buf, _smtp_reply_ends(b"220"))
            sock.sendall(b"\x16\x03\x01")  # a record header, then silence
            stalled.append(sock)
    try:
        for sock in stalled:
            assert _closed_within(sock, limits.SMTP_TIMEOUT_TLS_HANDSHAKE + 10)
    finally:
        for sock in stalled:
            sock.close()
    began = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - began < 10
    log = server.log.read_text()
    assert "cancelled_sessions=0" in log, log[-2000:]
    assert "Traceback" not in log
