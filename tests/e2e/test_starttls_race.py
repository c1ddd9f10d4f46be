"""The first command after a STARTTLS handshake is answered, however soon it comes.

A client may send its first command in the same flight as the end of the handshake;
asyncio can hand that decrypted input to the session before ``start_tls`` returns. It
must then be kept for the core, not thrown away as pre-TLS plaintext (which the core
discards, RFC 3207 §4.2). Repeated for SMTP, submission, IMAP and POP3 with an asyncio
client that writes at once after its handshake.

Spec: RFC 3207 §4.2, RFC 2595 §3.1, RFC 9051 §6.2.1.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from .conftest import ServerFactory
from .server import PostelServer

ROUNDS = 15
ANSWER_WITHIN = 5.0


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), ANSWER_WITHIN)


async def _round(port: int, kind: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _line(reader)  # greeting
        if kind == "smtp":
            writer.write(b"EHLO c\r\n")
            while not (await _line(reader)).startswith(b"250 "):
                pass
            writer.write(b"STARTTLS\r\n")
            await _line(reader)
            await writer.start_tls(_context())
            writer.write(b"EHLO c\r\n")  # at once, in the same loop turn
            return await _line(reader)
        if kind == "imap":
            writer.write(b"a STARTTLS\r\n")
            await _line(reader)
            await writer.start_tls(_context())
            writer.write(b"b NOOP\r\n")
            return await _line(reader)
        writer.write(b"STLS\r\n")
        await _line(reader)
        await writer.start_tls(_context())
        writer.write(b"CAPA\r\n")
        return await _line(reader)
    finally:
        writer.close()


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> PostelServer:
    srv = module_servers("starttls-race")
    srv.start()
    return srv


@pytest.mark.parametrize("kind", ["smtp", "submission", "imap", "pop3"])
def test_first_command_after_the_handshake_is_answered(server: PostelServer, kind: str) -> None:
    port = {
        "smtp": server.smtp_port,
        "submission": server.submission_port,
        "imap": server.imap_port,
        "pop3": server.pop3_port,
    }[kind]
    protocol = "smtp" if kind == "submission" else kind

    async def all_rounds() -> list[bytes]:
        return [await _round(port, protocol) for _ in range(ROUNDS)]

    answers = asyncio.run(all_rounds())
    expected = {"smtp": b"250", "imap": b"b OK", "pop3": b"+OK"}[protocol]
    assert all(a.startswith(expected) for a in answers), answers
