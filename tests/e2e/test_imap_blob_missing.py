"""A message whose bytes are gone (its blob file removed behind the store's back) is
not answered as if it had been expunged: FETCH of its bytes gets a tagged NO
[SERVERBUG] and an ERROR line in the log, and the session and the other messages go
on. Spec: RFC 9051 §6.4.5, §7.1 (SERVERBUG); RFC 2180 §4.1 (an OK without data is for
expunged messages); RELIABILITY.md D2."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postel.limits import BLOB_INLINE_MAX

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_account
from .imap_raw import RawImap
from .server import PostelServer

USER = f"blobs@{DOMAIN}"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("blob-missing")
    add_account(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _large(n: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    return b"Subject: large %d\r\n\r\n" % n + line * (BLOB_INLINE_MAX // len(line) + 10)


def test_fetch_of_a_message_without_its_bytes_is_refused(server: PostelServer) -> None:
    with RawImap.tls(server.imaps_port) as client:
        assert client.login(USER, PASSWORD).status == "OK"
        for n in (1, 2):
            assert client.append("INBOX", _large(n)).status == "OK"
        assert client.command("SELECT INBOX").status == "OK"
        blob_files = [p for p in server.blob_dir.glob("??/*") if p.is_file()]
        assert len(blob_files) == 2
        victim = next(p for p in blob_files if b"large 2" in p.read_bytes())
        victim.unlink()
        for command in ("UID FETCH 2 BODY.PEEK[]", "UID FETCH 1:2 BODY.PEEK[]", "FETCH 2 RFC822"):
            done = client.command(command)
            assert done.status == "NO" and b"[SERVERBUG]" in done.tagged, done
        flags = client.command("UID FETCH 2 FLAGS")
        assert flags.status == "OK"
        one = client.command("UID FETCH 1 BODY.PEEK[]")
        assert one.status == "OK" and any(b"large 1" in u for u in one.untagged)
        assert client.command("NOOP").status == "OK"
    log = server.log.read_text()
    assert "ERROR imap.blob_missing" in log
    assert "Traceback" not in log
