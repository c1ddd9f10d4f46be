"""OBJECTID over real sockets (imaplib): MAILBOXID on CREATE, SELECT and STATUS, kept
by RENAME and new for a recreated mailbox; EMAILID kept by COPY and MOVE, different
for different content; THREADID NIL. Spec: RFC 8474 §4.1, §4.2, §5.1, §5.2, §7."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from postel.imap.objectid import is_objectid

from .conftest import ServerFactory
from .imap_helpers import add_accounts, imaps, ok
from .server import PostelServer

USER = "oid@oid.test"
_ID = re.compile(rb"MAILBOXID \(([^)]*)\)")
_EMAILID = re.compile(rb"EMAILID \(([^)]*)\)")


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-objectid")
    add_accounts(srv, USER)
    srv.start()
    yield srv


def _found(pattern: re.Pattern[bytes], data: object) -> bytes:
    match = pattern.search(repr(data).encode())
    assert match is not None, data
    return match.group(1)


def test_mailboxid(server: PostelServer) -> None:
    client = imaps(server, USER)
    try:
        assert b"OBJECTID" in ok(client.capability())[0].split()
        typ, data = client.create("Projects")
        assert typ == "OK"
        created = _found(_ID, data)
        assert is_objectid(created.decode())
        status = _found(_ID, ok(client.status("Projects", "(MAILBOXID MESSAGES)")))
        assert status == created
        ok(client.rename("Projects", "Work"))
        assert _found(_ID, ok(client.status("Work", "(MAILBOXID)"))) == created
        typ, _ = client.select("Work")
        assert typ == "OK"
        assert _found(_ID, client.untagged_responses.get("OK")) == created
        ok(client.close())
        ok(client.delete("Work"))
        typ, data = client.create("Work")
        assert _found(_ID, data) != created
        inbox = _found(_ID, ok(client.status("INBOX", "(MAILBOXID)")))
        assert inbox != created
    finally:
        client.logout()


def test_emailid_and_threadid(server: PostelServer) -> None:
    client = imaps(server, USER)
    try:
        ok(client.create("Kept"))
        ok(client.append("INBOX", None, None, b"Subject: one\r\n\r\nfirst\r\n"))
        ok(client.append("INBOX", None, None, b"Subject: two\r\n\r\nsecond\r\n"))
        ok(client.select("INBOX"))
        data = ok(client.fetch("1:2", "(EMAILID THREADID)"))
        first, second = (_found(_EMAILID, d) for d in data)
        assert first != second and is_objectid(first.decode())
        assert b"THREADID NIL" in data[0]
        ok(client.copy("1", "Kept"))
        ok(client._simple_command("MOVE", "2", "Kept"))  # type: ignore[attr-defined]
        ok(client.select("Kept"))
        data = ok(client.fetch("1:2", "(EMAILID)"))
        assert [_found(_EMAILID, d) for d in data] == [first, second]
    finally:
        client.logout()
