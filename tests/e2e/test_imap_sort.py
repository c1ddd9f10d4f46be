"""SORT, THREAD, ESORT and CONTEXT=SEARCH/SORT against a running postel, with imaplib
as a real client and a raw socket where the updates must be read as they come.

Spec: RFC 5256 §3, §4 (SORT, THREAD); RFC 5267 §3 (ESORT), §4 (CONTEXT, PARTIAL);
RFC 5957 (SORT=DISPLAY).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_account, imaps
from .imap_raw import RawImap
from .server import PostelServer

USER = "sorter@sort.test"

MESSAGES = (
    # Subject, From, Date, Message-ID, References
    ("Re: beta", "Zed <z@x.test>", "Mon, 1 Jan 2024 10:00:00 +0000", "<b2@x>", "<b1@x>"),
    ("alpha", "amy <a@x.test>", "Mon, 1 Jan 2024 09:00:00 +0000", "<a1@x>", ""),
    ("beta", "Bob <b@x.test>", "Mon, 1 Jan 2024 08:00:00 +0000", "<b1@x>", ""),
    ("Fwd: alpha", "carl <c@x.test>", "Mon, 1 Jan 2024 11:00:00 +0000", "<a2@x>", "<a1@x>"),
)


def _message(subject: str, sender: str, date: str, msg_id: str, refs: str, pad: int) -> bytes:
    head = f"From: {sender}\r\nTo: u@x.test\r\nSubject: {subject}\r\nDate: {date}\r\n"
    head += f"Message-ID: {msg_id}\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\n" + "x" * pad + "\r\n").encode()


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-sort")
    add_account(srv, USER)
    srv.start()
    client = imaps(srv, USER)
    client.create("Sorted")
    for i, fields in enumerate(MESSAGES):
        assert client.append("Sorted", "", None, _message(*fields, pad=100 * (4 - i)))[0] == "OK"
    client.logout()
    yield srv


def _raw(server: PostelServer) -> RawImap:
    raw = RawImap.tls(server.imaps_port)
    raw.login(USER, PASSWORD)
    assert raw.command('SELECT "Sorted"').status == "OK"
    return raw


def test_capabilities_are_advertised(server: PostelServer) -> None:
    client = imaps(server, USER)
    caps = set(client.capabilities)
    wanted = {"SORT", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"}
    assert wanted | {"CONTEXT=SEARCH", "CONTEXT=SORT"} <= caps
    client.logout()


def test_sort_by_keys_and_uid_sort(server: PostelServer) -> None:
    client = imaps(server, USER)
    client.select("Sorted")
    assert client.sort("(DATE)", "UTF-8", "ALL") == ("OK", [b"3 2 1 4"])
    assert client.sort("(SUBJECT REVERSE DATE)", "US-ASCII", "ALL") == ("OK", [b"4 2 1 3"])
    assert client.sort("(SIZE)", "UTF-8", "ALL") == ("OK", [b"4 3 2 1"])
    assert client.sort("(FROM)", "UTF-8", "ALL") == ("OK", [b"2 3 4 1"])
    assert client.sort("(DISPLAYFROM)", "UTF-8", "ALL") == ("OK", [b"2 3 4 1"])
    assert client.sort("(REVERSE ARRIVAL)", "UTF-8", "NOT SUBJECT alpha") == ("OK", [b"3 1"])
    typ, data = client.uid("SORT", "(DATE)", "UTF-8", "ALL")
    uids = [int(n) for n in data[0].split()]
    typ, fetched = client.fetch("3", "(UID)")
    first = fetched[0]
    assert typ == "OK" and isinstance(first, bytes)
    assert uids[0] == int(re.findall(rb"UID (\d+)", first)[0])
    client.logout()


def test_thread_references_and_orderedsubject(server: PostelServer) -> None:
    client = imaps(server, USER)
    client.select("Sorted")
    assert client.thread("REFERENCES", "UTF-8", "ALL") == ("OK", [b"(3 1)(2 4)"])
    assert client.thread("ORDEREDSUBJECT", "UTF-8", "ALL") == ("OK", [b"(3 1)(2 4)"])
    assert client.thread("REFERENCES", "UTF-8", "SUBJECT nothing-like-it") == ("OK", [b""])
    client.logout()


def test_esort_partial_and_errors(server: PostelServer) -> None:
    raw = _raw(server)
    done = raw.command("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    assert done.status == "OK"
    tag = done.tagged.split()[0].decode()
    assert done.untagged == (f'* ESEARCH (TAG "{tag}") MIN 3 MAX 4 ALL 3,2,1,4 COUNT 4'.encode(),)
    done = raw.command("SORT RETURN (PARTIAL 3:2) (REVERSE DATE) UTF-8 ALL")
    assert done.untagged[0].endswith(b"PARTIAL (2:3 1:2)")
    done = raw.command("SEARCH RETURN (PARTIAL 5:9) ALL")
    assert done.untagged[0].endswith(b"PARTIAL (5:9 NIL)")
    done = raw.command("SEARCH RETURN (PARTIAL -1:-2) ALL")
    assert done.untagged[0].endswith(b"PARTIAL (-1:-2 3:4)")
    assert raw.command("SORT (DATE) KOI8-R ALL").tagged.endswith(b"unsupported charset KOI8-R")
    assert b"BADCHARSET" in raw.command("THREAD REFERENCES KOI8-R ALL").tagged
    for bad in (
        "SORT (NOSUCHKEY) UTF-8 ALL",
        "SORT () UTF-8 ALL",
        "SORT (DATE) UTF-8",
        "SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL",
        "SORT RETURN (ALL PARTIAL 1:2) (DATE) UTF-8 ALL",
        "THREAD FANCY UTF-8 ALL",
        "CANCELUPDATE",
    ):
        assert raw.command(bad).status == "BAD", bad
    raw.close()


def test_sort_context_reports_positions_and_cancelupdate(server: PostelServer) -> None:
    raw, other = _raw(server), _raw(server)
    tag = raw.tag()
    raw.send(f"{tag} SORT RETURN (UPDATE ALL) (DATE) UTF-8 UNSEEN\r\n".encode())
    done = raw.until_tagged(tag)
    assert done.untagged[0] == f'* ESEARCH (TAG "{tag}") ALL 3,2,1,4'.encode()
    # Another session marks message 2 seen: it leaves the result at position 2.
    assert other.command("STORE 2 +FLAGS (\\Seen)").status == "OK"
    noop = raw.command("NOOP")
    assert f'* ESEARCH (TAG "{tag}") REMOVEFROM (2 2)'.encode() in noop.untagged
    # A new message dated first in the sort enters at position 1.
    new = _message("gamma", "g <g@x.test>", "Sun, 31 Dec 2023 00:00:00 +0000", "<g@x>", "", 1)
    assert other.append("Sorted", new).status == "OK"
    noop = raw.command("NOOP")
    assert b"* 5 EXISTS" in noop.untagged
    assert f'* ESEARCH (TAG "{tag}") ADDTO (1 5)'.encode() in noop.untagged
    # Unseen again: back at its place between 3 and 1.
    assert other.command("STORE 2 -FLAGS (\\Seen)").status == "OK"
    noop = raw.command("NOOP")
    assert f'* ESEARCH (TAG "{tag}") ADDTO (3 2)'.encode() in noop.untagged
    # Expunged members leave before the EXPUNGE, numbered as the client knew them.
    assert other.command("STORE 5 +FLAGS (\\Deleted)").status == "OK"
    assert other.command("EXPUNGE").status == "OK"
    noop = raw.command("NOOP")
    removal = f'* ESEARCH (TAG "{tag}") REMOVEFROM (1 5)'.encode()
    assert removal in noop.untagged
    assert noop.untagged.index(removal) < noop.untagged.index(b"* 5 EXPUNGE")
    assert raw.command(f'CANCELUPDATE "{tag}"').status == "OK"
    assert raw.command(f'CANCELUPDATE "{tag}"').status == "NO"
    assert other.command("STORE 1 +FLAGS (\\Seen)").status == "OK"
    assert not [u for u in raw.command("NOOP").untagged if u.startswith(b"* ESEARCH")]
    other.command("STORE 1 -FLAGS (\\Seen)")
    raw.close()
    other.close()


def test_search_context_limit_and_uid_updates(server: PostelServer) -> None:
    raw, other = _raw(server), _raw(server)
    tags = []
    for _ in range(10):
        tag = raw.tag()
        raw.send(f"{tag} UID SEARCH RETURN (UPDATE) FLAGGED\r\n".encode())
        assert raw.until_tagged(tag).status == "OK"
        tags.append(tag)
    done = raw.command("SEARCH RETURN (UPDATE COUNT) ALL")
    assert done.status == "OK"
    assert any(b"NOUPDATE" in u for u in done.untagged), done
    dup = raw.tag()
    raw.send(f"{dup} SEARCH RETURN (UPDATE) ALL\r\n".encode())
    raw.until_tagged(dup)
    typ = other.command("UID FETCH 1:* (UID)")
    first_uid = re.findall(rb"UID (\d+)", typ.untagged[0])[0].decode()
    assert other.command("STORE 1 +FLAGS (\\Flagged)").status == "OK"
    noop = raw.command("NOOP")
    updates = [u for u in noop.untagged if u.startswith(b"* ESEARCH")]
    assert len(updates) == 10
    assert updates[0] == f'* ESEARCH (TAG "{tags[0]}") UID ADDTO (0 {first_uid})'.encode()
    other.command("STORE 1 -FLAGS (\\Flagged)")
    raw.close()
    other.close()
