"""IMAP METADATA on real sockets: server and mailbox entries set, read (DEPTH, MAXSIZE
with [METADATA LONGENTRIES]) and removed with NIL; values with CR LF and 8-bit octets
sent as literals; [METADATA MAXSIZE] and [METADATA TOOMANY] at the limits; entries move
with RENAME and go with DELETE; one account never sees another's.

Spec: RFC 5464 §3.2, §4.2, §4.3, §4.4.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postel.store.metadata_ops import METADATA_ENTRIES_MAX, METADATA_VALUE_MAX

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts
from .imap_raw import RawImap
from .server import PostelServer

USER = "meta@md.test"
OTHER = "other@md.test"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-metadata")
    add_accounts(srv, USER, OTHER)
    srv.start()
    yield srv


def _login(server: PostelServer, user: str = USER) -> RawImap:
    client = RawImap.tls(server.imaps_port)
    client.login(user, PASSWORD)
    return client


def _set(client: RawImap, mailbox: str, entry: str, value: bytes | None) -> bytes:
    wire = b"NIL" if value is None else b"{%d+}\r\n" % len(value) + value
    done = client.command(f'SETMETADATA "{mailbox}" ({entry} '.encode() + wire + b")")
    return done.tagged


def test_set_get_depth_maxsize_delete(server: PostelServer) -> None:
    with _login(server) as client:
        caps = client.command("CAPABILITY").untagged[0].split()
        assert b"METADATA" in caps and b"METADATA-SERVER" in caps
        assert b"OK" in _set(client, "", "/private/comment", b"server note")
        assert b"OK" in _set(client, "", "/shared/comment", b"shared note")
        binary = b"line one\r\nline two \xff\x01"
        assert b"OK" in _set(client, "INBOX", "/private/vendor/x", binary)
        assert b"OK" in _set(client, "INBOX", "/private/vendor/x/deep", b"d" * 100)
        assert b"OK" in _set(client, "INBOX", "/private/vendor/x/deep/er", b"e")
        done = client.command('GETMETADATA "" /PRIVATE/Comment')
        assert done.status == "OK"
        assert done.untagged == (b'* METADATA "" (/private/comment "server note")',)
        done = client.command('GETMETADATA "" (/shared/comment /private/missing)')
        assert done.untagged == (
            b'* METADATA "" (/shared/comment "shared note")',
            b'* METADATA "" (/private/missing NIL)',
        )
        done = client.command("GETMETADATA INBOX /private/vendor/x")
        assert done.untagged == (
            b"* METADATA INBOX (/private/vendor/x {%d}\r\n" % len(binary) + binary + b")",
        )
        done = client.command("GETMETADATA (DEPTH 1) INBOX /private/vendor/x")
        assert [line.split(b" ")[3] for line in done.untagged] == [
            b"(/private/vendor/x",
            b"(/private/vendor/x/deep",
        ]
        done = client.command("GETMETADATA (DEPTH infinity MAXSIZE 50) INBOX /private")
        assert done.status == "OK" and b"[METADATA LONGENTRIES 100]" in done.tagged, done
        names = [line.split(b" ")[3] for line in done.untagged]
        assert names == [b"(/private/vendor/x", b"(/private/vendor/x/deep/er", b"(/private"]
        assert b"OK" in _set(client, "", "/private/comment", None)
        done = client.command('GETMETADATA "" /private/comment')
        assert done.untagged == (b'* METADATA "" (/private/comment NIL)',)
        done = client.command('GETMETADATA "" /private/vendor/x')
        assert done.untagged == (b'* METADATA "" (/private/vendor/x NIL)',)
        # Bad names and unknown mailboxes.
        assert client.command('SETMETADATA "" (/private/a* "x")').status == "BAD"
        assert client.command('SETMETADATA "" (/private//a "x")').status == "BAD"
        assert client.command('SETMETADATA "" (/private/a/ "x")').status == "BAD"
        assert client.command('SETMETADATA "" (/other/a "x")').status == "BAD"
        done = client.command('SETMETADATA "Nope" (/private/a "x")')
        assert done.status == "NO" and b"[NONEXISTENT]" in done.tagged
        client.command("LOGOUT")
    with _login(server, OTHER) as other:
        done = other.command('GETMETADATA "" /shared/comment')
        assert done.untagged == (b'* METADATA "" (/shared/comment NIL)',)
        other.command("LOGOUT")


def test_limits(server: PostelServer) -> None:
    with _login(server, OTHER) as client:
        tagged = _set(client, "", "/private/big", b"x" * (METADATA_VALUE_MAX + 1))
        assert b"NO [METADATA MAXSIZE %d]" % METADATA_VALUE_MAX in tagged, tagged
        assert b"OK" in _set(client, "", "/private/big", b"x" * METADATA_VALUE_MAX)
        left = METADATA_ENTRIES_MAX - 1
        for start in range(0, left, 200):
            pairs = " ".join(f'/shared/n/{i} "v"' for i in range(start, min(left, start + 200)))
            assert client.command(f'SETMETADATA "" ({pairs})').status == "OK"
        done = client.command('SETMETADATA INBOX (/private/a "1" /private/b "2")')
        assert done.status == "NO" and b"[METADATA TOOMANY]" in done.tagged, done
        done = client.command("GETMETADATA INBOX /private/a")
        assert done.untagged == (b"* METADATA INBOX (/private/a NIL)",)
        # Removing one makes room for one.
        assert b"OK" in _set(client, "", "/private/big", None)
        assert b"OK" in _set(client, "INBOX", "/private/a", b"1")
        client.command("LOGOUT")


def test_entries_follow_rename_and_go_with_delete(server: PostelServer) -> None:
    with _login(server) as client:
        assert client.command('CREATE "Work/Sub"').status == "OK"
        assert b"OK" in _set(client, "Work", "/private/comment", b"w")
        assert b"OK" in _set(client, "Work/Sub", "/shared/comment", b"s")
        assert client.command('RENAME "Work" "Job"').status == "OK"
        done = client.command('GETMETADATA "Job" /private/comment')
        assert done.untagged == (b'* METADATA Job (/private/comment "w")',)
        done = client.command('GETMETADATA "Job/Sub" /shared/comment')
        assert done.untagged == (b'* METADATA Job/Sub (/shared/comment "s")',)
        assert client.command('GETMETADATA "Work" /private/comment').status == "NO"
        assert client.command('DELETE "Job/Sub"').status == "OK"
        assert client.command('CREATE "Job/Sub"').status == "OK"
        done = client.command('GETMETADATA "Job/Sub" /shared/comment')
        assert done.untagged == (b"* METADATA Job/Sub (/shared/comment NIL)",)
        client.command("LOGOUT")


def test_a_value_with_nul_goes_as_literal8(server: PostelServer) -> None:
    """RFC 5464 §5: values may hold any octet; those with NUL travel as literal8, both
    in SETMETADATA and in the METADATA response."""
    value = b"a\x00b\xffc"
    with _login(server) as client:
        wire = b"~{%d+}\r\n" % len(value) + value
        done = client.command(b'SETMETADATA "" (/private/blob ' + wire + b")")
        assert b"OK" in done.tagged, done
        done = client.command('GETMETADATA "" /private/blob')
        assert done.untagged == (
            b'* METADATA "" (/private/blob ~{%d}\r\n' % len(value) + value + b")",
        ), done
        done = client.command(b'SETMETADATA "" (/private/other {3+}\r\na\x00b)')
        assert done.status == "BAD", done
