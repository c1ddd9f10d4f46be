"""The shared abuse tracker seen from SMTP clients (RELIABILITY.md D6, test 10).

Each test uses its own loopback source addresses (127.0.0.x) so one test's failures do not
ban the next.
"""

from __future__ import annotations

import socket

import pytest

from .conftest import ServerFactory
from .rawsmtp import RawSmtp
from .server import PostelServer

LIMIT = 5


def connect_from(server: PostelServer, source: str) -> RawSmtp:
    client = RawSmtp.__new__(RawSmtp)
    client.sock = socket.create_connection(server.address, 10, source_address=(source, 0))
    client.buffer = b""
    return client


@pytest.fixture(scope="module")
def guarded(module_servers: ServerFactory) -> PostelServer:
    server = module_servers(
        "abuse",
        abuse={"max_unknown_recipients_per_ip": LIMIT, "max_errors_per_ip": LIMIT},
        processes=1,  # the tracker's counters and bans are per process (docs/adr/0005)
    )
    server.add_accounts("example.test", "kim")
    server.start()
    return server


def test_harvesting_session_is_closed_when_its_address_is_banned(guarded: PostelServer) -> None:
    with connect_from(guarded, "127.0.0.77") as client:
        client.greet()
        assert client.command("MAIL FROM:<a@remote.test>").code == 250
        client.send(b"".join(b"RCPT TO:<nobody%d@example.test>\r\n" % i for i in range(50)))
        replies = client.replies_until_close()
    codes = [r.code for r in replies]
    assert codes == [550] * LIMIT + [421], codes  # the ban ends the session at once
    with connect_from(guarded, "127.0.0.77") as again:
        assert again.reply().code == 421  # banned address: refused at the greeting
    with connect_from(guarded, "127.0.0.78") as neighbour:  # same /24, never locked out
        neighbour.greet()
        reply = neighbour.transaction("a@remote.test", ["kim@example.test"], b"Hi\r\n.\r\n")
        assert reply.code == 250


def test_protocol_errors_ban_too(guarded: PostelServer) -> None:
    with connect_from(guarded, "127.0.0.79") as client:
        client.greet()
        client.send(b"BOGUS\r\n" * 20)
        codes = [r.code for r in client.replies_until_close()]
    assert codes == [500] * LIMIT + [421], codes
