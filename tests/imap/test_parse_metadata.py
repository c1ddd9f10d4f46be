"""Parsing GETMETADATA and SETMETADATA, entry-name checks, the METADATA response, and
hostile input (only ProtocolError). Spec: RFC 5464 §3.2, §4.2, §4.3, §4.4, §5."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import ProtocolError
from postel.imap.commands import COMMAND_STATES, parse_command
from postel.imap.grammar import ImapSyntaxError
from postel.imap.parse_metadata import (
    METADATA_ENTRIES_PER_COMMAND_MAX,
    METADATA_NAME_MAX,
    TOOMANY,
    Depth,
    GetMetadata,
    SetMetadata,
    check_entry,
    longentries,
    maxsize,
    metadata_response,
)


def test_getmetadata_forms() -> None:
    assert parse_command([b'a GETMETADATA "" /private/Comment']) == GetMetadata(
        "a", "", ("/private/comment",)
    )
    assert parse_command([b"a GETMETADATA inbox (/shared/a /private/b /shared/a)"]) == (
        GetMetadata("a", "INBOX", ("/shared/a", "/private/b"))
    )
    got = parse_command([b'a GETMETADATA (depth infinity MAXSIZE 1024) "Work" /shared'])
    assert got == GetMetadata("a", "Work", ("/shared",), 1024, Depth.INFINITY)
    got = parse_command([b"a GETMETADATA (DEPTH 1) INBOX {16}", b""], [b"/private/comment"])
    assert got == GetMetadata("a", "INBOX", ("/private/comment",), None, Depth.ONE)
    assert parse_command([b'a GETMETADATA "&AOk-t" /shared/x']) == (
        GetMetadata("a", "\u00e9t", ("/shared/x",))
    )


def test_setmetadata_forms() -> None:
    assert parse_command([b'a SETMETADATA "" (/private/comment "hi" /shared/x NIL)']) == (
        SetMetadata("a", "", (("/private/comment", b"hi"), ("/shared/x", None)))
    )
    got = parse_command([b"a SETMETADATA INBOX (/private/c {3}", b")"], [b"a\r\n"])
    assert got == SetMetadata("a", "INBOX", (("/private/c", b"a\r\n"),))
    # literal8 carries NUL (when the connection lets one through).
    got = parse_command([b"a SETMETADATA INBOX (/private/c ~{2}", b")"], [b"\x00\xff"])
    assert got == SetMetadata("a", "INBOX", (("/private/c", b"\x00\xff"),))
    with pytest.raises(ImapSyntaxError):
        parse_command([b"a SETMETADATA INBOX (/private/c {2}", b")"], [b"\x00x"])
    assert "GETMETADATA" in COMMAND_STATES and "SETMETADATA" in COMMAND_STATES


@pytest.mark.parametrize(
    "name",
    [
        b"/private/a*",
        b"/private/a%b",
        b"/private//a",
        b"/private/a/",
        b"/other/a",
        b"private/a",
        b"/privatex/a",
        b"/private/\xc3\xa9",
        b"/private/a\x01",
        b"/private/a\x7f",
        b"/private/" + b"x" * METADATA_NAME_MAX,
        b"",
    ],
)
def test_bad_entry_names(name: bytes) -> None:
    assert check_entry(name, prefix_only=True) is None


def test_entry_names_and_prefixes() -> None:
    assert check_entry(b"/Shared/Vendor/X-Y.z") == "/shared/vendor/x-y.z"
    assert check_entry(b"/shared") is None
    assert check_entry(b"/shared", prefix_only=True) == "/shared"
    with pytest.raises(ImapSyntaxError):
        parse_command([b'a SETMETADATA "" (/private "x")'])
    with pytest.raises(ImapSyntaxError):
        parse_command([b'a GETMETADATA "" /private/*'])


@pytest.mark.parametrize(
    "line",
    [
        b"a GETMETADATA",
        b'a GETMETADATA ""',
        b'a GETMETADATA "" ()',
        b'a GETMETADATA () "" /private/a',
        b'a GETMETADATA (DEPTH 2) "" /private/a',
        b'a GETMETADATA (DEPTH 1 DEPTH 1) "" /private/a',
        b'a GETMETADATA (MAXSIZE x) "" /private/a',
        b'a GETMETADATA (FOO 1) "" /private/a',
        b'a GETMETADATA "" (/private/a',
        b'a GETMETADATA "" /private/a extra',
        b'a SETMETADATA "" ()',
        b'a SETMETADATA "" (/private/a)',
        b'a SETMETADATA "" /private/a "x"',
        b'a SETMETADATA "" (/private/a "x"',
    ],
)
def test_malformed(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        parse_command([line])


def test_too_many_entries() -> None:
    names = b" ".join(b"/private/%d" % i for i in range(METADATA_ENTRIES_PER_COMMAND_MAX + 1))
    with pytest.raises(ImapSyntaxError):
        parse_command([b'a GETMETADATA "" (' + names + b")"])
    pairs = b" ".join(b"/private/%d NIL" % i for i in range(METADATA_ENTRIES_PER_COMMAND_MAX + 1))
    with pytest.raises(ImapSyntaxError):
        parse_command([b'a SETMETADATA "" (' + pairs + b")"])


def test_responses() -> None:
    assert metadata_response("", "/private/comment", b"hi") == (
        b'* METADATA "" (/private/comment "hi")\r\n'
    )
    assert metadata_response("INBOX", "/shared/x", None) == b"* METADATA INBOX (/shared/x NIL)\r\n"
    assert metadata_response("INBOX", "/shared/x", b"a\x00") == (
        b"* METADATA INBOX (/shared/x ~{2}\r\na\x00)\r\n"
    )
    assert metadata_response("INBOX", "/shared/x", b"a\r\n") == (
        b"* METADATA INBOX (/shared/x {3}\r\na\r\n)\r\n"
    )
    assert maxsize(65536).render() == b"[METADATA MAXSIZE 65536]"
    assert longentries(9).render() == b"[METADATA LONGENTRIES 9]"
    assert TOOMANY.render() == b"[METADATA TOOMANY]"


_atoms = st.sampled_from(
    [
        b"GETMETADATA",
        b"SETMETADATA",
        b" ",
        b"(",
        b")",
        b'"',
        b"DEPTH",
        b"MAXSIZE",
        b"NIL",
        b"/private",
        b"/shared/",
        b"/",
        b"*",
        b"%",
        b"infinity",
        b"0",
        b"1",
        b"{3}",
        b"~{2}",
        b"INBOX",
        b'""',
        b"\\",
        b"\x00",
        b"\xff",
    ]
)


@given(st.lists(_atoms, max_size=20), st.lists(st.binary(max_size=8), max_size=3))
def test_hostile_input_raises_only_protocol_error(pieces: list[bytes], lits: list[bytes]) -> None:
    line = b"a " + b"".join(pieces)
    with contextlib.suppress(ProtocolError):
        parse_command([line, *([b")"] * len(lits))], lits)


@given(st.binary(max_size=200))
def test_hostile_bytes(raw: bytes) -> None:
    for head in (b"a GETMETADATA ", b"a SETMETADATA "):
        with contextlib.suppress(ProtocolError):
            parse_command([head + raw])
