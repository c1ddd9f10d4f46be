"""The saved search result ``$`` (IMAP4rev2's SEARCH RETURN (SAVE), SEARCHRES): what a
SEARCH saved, FETCH, STORE, COPY and SEARCH use by UID or sequence number alike;
expunged messages drop out of it, a new selection empties it, and SAVE alone answers
no ESEARCH. Spec: RFC 9051 §6.4.4.1, §9 (seq-last-command); RFC 5182 §2."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_account
from .imap_raw import Completion, RawImap
from .server import PostelServer

USER = f"saved@{DOMAIN}"
_UID = re.compile(rb"UID (\d+)")


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("searchres")
    add_account(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _uids(done: Completion) -> list[int]:
    assert done.status == "OK", done
    return sorted(int(m.group(1)) for u in done.untagged if (m := _UID.search(u)))


def test_saved_result(server: PostelServer) -> None:
    with RawImap.tls(server.imaps_port) as client:
        assert client.login(USER, PASSWORD).status == "OK"
        assert b"SEARCHRES" in b" ".join(client.command("CAPABILITY").untagged)
        for n in range(1, 9):
            subject = b"pick" if n % 2 else b"skip"
            message = b"Subject: %s %d\r\n\r\nbody %d\r\n" % (subject, n, n)
            assert client.append("INBOX", message).status == "OK"
        assert client.command("SELECT INBOX").status == "OK"
        empty = client.command("UID FETCH $ (UID)")
        assert empty.status == "OK" and not empty.untagged  # nothing saved yet

        saved = client.command("UID SEARCH RETURN (SAVE) SUBJECT pick")
        assert saved.status == "OK" and not any(b"ESEARCH" in u for u in saved.untagged)
        assert _uids(client.command("UID FETCH $ (UID)")) == [1, 3, 5, 7]
        assert _uids(client.command("FETCH $ (UID)")) == [1, 3, 5, 7]
        found = client.command("UID SEARCH RETURN (ALL) UID $ SUBJECT 5")
        assert any(b"ALL 5" in u for u in found.untagged), found

        assert client.command("UID STORE $ +FLAGS.SILENT (\\Deleted)").status == "OK"
        assert client.command("UID EXPUNGE 3").status == "OK"
        assert _uids(client.command("UID FETCH $ (UID)")) == [1, 5, 7]
        assert client.command("COPY $ Archive").status == "OK"

        minmax = client.command("SEARCH RETURN (SAVE MIN MAX) SUBJECT pick")
        assert any(b"MIN" in u and b"MAX" in u for u in minmax.untagged), minmax
        assert _uids(client.command("UID FETCH $ (UID)")) == [1, 7]

        assert client.command("SELECT Archive").status == "OK"
        assert not client.command("UID FETCH $ (UID)").untagged  # emptied by SELECT
        assert len(_uids(client.command("UID FETCH 1:* (UID)"))) == 3
    assert "Traceback" not in server.log.read_text()
