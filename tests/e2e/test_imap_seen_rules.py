"""A FETCH that sets \\Seen sets it only on the messages whose data it returns: a BINARY
item of a part with an unknown Content-Transfer-Encoding is answered NO [UNKNOWN-CTE]
and that message stays unseen; a decodable one is marked and its new FLAGS sent, in a
single-message FETCH and in a batch. Spec: RFC 9051 §6.4.5 (\\Seen set when the body
is returned); RFC 3516 §4.2, §4.3 (UNKNOWN-CTE)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_account
from .imap_raw import RawImap
from .server import PostelServer

USER = f"seen@{DOMAIN}"


def _message(encoding: str, n: int) -> bytes:
    return (
        b"Subject: part %d\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: %s\r\n\r\n"
        b"hello\r\n--b--\r\n"
    ) % (n, encoding.encode())


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("seen-rules")
    add_account(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _seen(client: RawImap, uid: int) -> bool:
    done = client.command(f"UID FETCH {uid} (FLAGS)")
    assert done.status == "OK"
    return any(b"\\Seen" in line for line in done.untagged)


def test_unknown_encoding_leaves_the_message_unseen(server: PostelServer) -> None:
    with RawImap.tls(server.imaps_port) as client:
        assert client.login(USER, PASSWORD).status == "OK"
        for n, encoding in enumerate(("x-weird", "base64", "x-weird", "7bit"), 1):
            assert client.append("INBOX", _message(encoding, n)).status == "OK"
        assert client.command("SELECT INBOX").status == "OK"
        one = client.command("UID FETCH 1 (BINARY[1])")
        assert one.status == "NO" and b"[UNKNOWN-CTE]" in one.tagged, one
        assert not _seen(client, 1)
        good = client.command("UID FETCH 2 (BINARY[1])")
        assert good.status == "OK" and any(b"\\Seen" in u for u in good.untagged), good
        batch = client.command("UID FETCH 3:4 (BINARY.SIZE[1] BODY[TEXT])")
        assert batch.status == "NO" and b"[UNKNOWN-CTE]" in batch.tagged, batch
        assert not _seen(client, 3)
        assert _seen(client, 4)
    assert "Traceback" not in server.log.read_text()
