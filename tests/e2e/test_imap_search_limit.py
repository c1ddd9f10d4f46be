"""The bound on the message text one SEARCH, SORT or THREAD reads (`[imap]
search_text_max`), against a real `postel serve`: a command whose BODY and TEXT keys
would scan more is answered NO [LIMIT] (and reads nothing past the bound), one within it
is answered as before, the session goes on either way, and an updating search (RETURN
(UPDATE)) whose re-search would pass the bound ends with NOUPDATE.

OR trees are used on purpose: the full-text index answers only the string keys AND-ed at
the top, so keys under OR are always evaluated on the message text.

Spec: RFC 5530 §3 (LIMIT); RFC 5267 §4.2 (NOUPDATE); RFC 9051 §6.4.4; RELIABILITY.md D7.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_raw import RawImap
from .server import PostelServer

USER = "searcher@example.test"
PASSWORD = "search limit password"
KiB = 1024
LIMIT = 2048 * KiB
"""search_text_max of the test server, octets."""
MESSAGE_OCTETS = 300 * KiB
"""About the size of each of the three stored messages: two text keys over all three
(~1.8 MiB) fit LIMIT, three do not."""


def _message(n: int) -> bytes:
    line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\r\n"
    body = line * (MESSAGE_OCTETS // len(line))
    return b"Subject: large %d\r\nFrom: a@example.org\r\n\r\nneedle%d\r\n" % (n, n) + body


@pytest.fixture(scope="module")
def imap(module_servers: ServerFactory) -> PostelServer:
    server = module_servers("imap-search-limit", imap={"search_text_max": LIMIT})
    server.add_user(USER, PASSWORD)
    server.start()
    with RawImap.tls(server.imaps_port) as client:
        client.login(USER, PASSWORD)
        for n in range(3):
            assert client.append("INBOX", _message(n)).status == "OK"
    return server


@pytest.fixture
def client(imap: PostelServer) -> Iterator[RawImap]:
    with RawImap.tls(imap.imaps_port) as c:
        c.login(USER, PASSWORD)
        assert c.command("SELECT INBOX").status == "OK"
        yield c


@pytest.mark.parametrize(
    "command",
    [
        "SEARCH OR BODY needle0 OR BODY nowhere BODY x",
        "UID SEARCH OR TEXT needle0 OR TEXT nowhere TEXT x",
        "SEARCH NOT OR BODY nowhere OR TEXT elsewhere BODY x",
        "SEARCH RETURN (COUNT) OR BODY needle1 OR BODY a OR BODY b BODY c",
        "SEARCH 1:* OR BODY needle0 OR BODY nowhere BODY x",
        "SORT (SUBJECT) UTF-8 OR BODY needle0 OR BODY nowhere BODY x",
        "THREAD REFERENCES UTF-8 OR BODY needle0 OR BODY nowhere BODY x",
    ],
)
def test_a_search_past_the_bound_is_refused_with_limit(client: RawImap, command: str) -> None:
    done = client.command(command)
    assert done.status == "NO", done
    assert b"[LIMIT]" in done.tagged, done
    assert client.command("NOOP").status == "OK"


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("SEARCH OR BODY needle1 FLAGGED", b"* SEARCH 2"),
        ("SEARCH OR BODY needle0 BODY needle1", b"* SEARCH 1 2"),
        # a sequence set at the top: only the messages in it count
        ("SEARCH 1:2 OR BODY needle0 OR BODY x BODY needle1", b"* SEARCH 1 2"),
        ("UID SEARCH UID 3 OR TEXT nowhere OR TEXT needle2 OR BODY x BODY y", b"* SEARCH 3"),
        ("SORT (SUBJECT) UTF-8 OR TEXT needle2 FLAGGED", b"* SORT 3"),
        # what the rest of the key decides without the text is not read, nor counted
        ("SEARCH SMALLER 10000 OR BODY needle0 OR BODY x BODY y", b"* SEARCH"),
        ("SEARCH OR ALL OR BODY x OR BODY y BODY z", b"* SEARCH 1 2 3"),
        ("SEARCH FLAGGED OR BODY needle0 OR BODY x BODY y", b"* SEARCH"),
    ],
)
def test_a_search_within_the_bound_is_answered(
    client: RawImap, command: str, answer: bytes
) -> None:
    done = client.command(command)
    assert done.status == "OK", done
    assert answer in done.untagged, done


def test_header_keys_count_the_header_section(imap: PostelServer) -> None:
    """HEADER-type keys scan the header section: a 1.2 MiB header field read by two
    of them passes the bound, one fits; repeated keys on one field are answered from
    its value casefolded once."""
    with RawImap.tls(imap.imaps_port) as c:
        c.login(USER, PASSWORD)
        assert c.command("CREATE Headers").status == "OK"
        pad = b"X-Pad: " + b"p" * (1200 * KiB) + b"\r\n"
        assert c.append("Headers", b"Subject: padded\r\n" + pad + b"\r\nbody\r\n").status == "OK"
        assert c.command("SELECT Headers").status == "OK"
        done = c.command("SEARCH NOT HEADER X-Pad zzq")
        assert done.status == "OK" and b"* SEARCH 1" in done.untagged, done
        done = c.command("SEARCH OR HEADER X-Pad zzq NOT SUBJECT zzq")
        assert done.status == "NO" and b"[LIMIT]" in done.tagged, done
        # The rest of the key decides without the header: nothing is read.
        done = c.command("SEARCH DELETED OR HEADER X-Pad zzq NOT SUBJECT zzq")
        assert done.status == "OK" and b"* SEARCH" in done.untagged, done


def test_updating_searches_share_one_allowance_per_sync(imap: PostelServer) -> None:
    """Two updating searches that each fit for a new 800 KiB message but not together:
    the first is brought up to date, the second ends with NOUPDATE."""
    with RawImap.tls(imap.imaps_port) as c, RawImap.tls(imap.imaps_port) as other:
        c.login(USER, PASSWORD)
        other.login(USER, PASSWORD)
        assert c.command("CREATE Updates").status == "OK"
        assert c.command("SELECT Updates").status == "OK"
        tags = []
        for word in ("one", "two"):
            tag = c.tag()
            c.send(f"{tag} SEARCH RETURN (UPDATE) OR BODY {word} BODY {word}x\r\n".encode())
            assert c.until_tagged(tag).status == "OK"
            tags.append(tag)
        body = b"one two\r\n" + b"z" * (800 * KiB)
        assert other.append("Updates", b"Subject: new\r\n\r\n" + body).status == "OK"
        done = c.command("NOOP")
        assert done.status == "OK", done
        noupdate = [line for line in done.untagged if b"[NOUPDATE" in line]
        assert len(noupdate) == 1 and f'"{tags[1]}"'.encode() in noupdate[0], done
        assert any(b"ADDTO" in line and tags[0].encode() in line for line in done.untagged)
        assert c.command(f'CANCELUPDATE "{tags[0]}"').status == "OK"


def test_a_refused_save_empties_the_saved_result(client: RawImap) -> None:
    assert client.command("SEARCH RETURN (SAVE) 1:2").status == "OK"
    done = client.command("SEARCH RETURN (SAVE) OR BODY needle0 OR BODY nowhere BODY x")
    assert done.status == "NO" and b"[LIMIT]" in done.tagged, done
    done = client.command("SEARCH $")
    assert done.status == "OK", done
    assert b"* SEARCH" in done.untagged, done  # $ is empty: no numbers
    assert not any(line.startswith(b"* SEARCH ") for line in done.untagged), done


def test_an_updating_search_whose_research_passes_the_bound_ends_with_noupdate(
    imap: PostelServer, client: RawImap
) -> None:
    tag = client.tag()
    client.send(tag.encode() + b" SEARCH RETURN (UPDATE) OR BODY needle9 BODY nowhere\r\n")
    done = client.until_tagged(tag)
    assert done.status == "OK", done  # 2 keys x ~900 KiB: within the bound
    # A new message: searching it again for the context would read 2 x 1.2 MiB.
    big = _message(9) + b"x" * (1200 * KiB)
    with RawImap.tls(imap.imaps_port) as other:
        other.login(USER, PASSWORD)
        assert other.append("INBOX", big).status == "OK"
    done = client.command("NOOP")
    assert done.status == "OK", done
    noupdate = [line for line in done.untagged if b"[NOUPDATE" in line]
    assert noupdate and noupdate[0].startswith(b"* NO "), done
    assert f'"{tag}"'.encode() in noupdate[0], done
    # The context is gone: CANCELUPDATE no longer knows the tag.
    assert client.command(f'CANCELUPDATE "{tag}"').status == "NO"
    assert other_expunge(client) == "OK"


def other_expunge(client: RawImap) -> str:
    """Remove the large message again, so that the module's other tests see three."""
    assert client.command("STORE 4 +FLAGS (\\Deleted)").status == "OK"
    return client.command("EXPUNGE").status
