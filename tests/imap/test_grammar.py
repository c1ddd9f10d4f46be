"""The command cursor: atoms, numbers, strings, literals, dates, nesting bounds."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.grammar import ATOM_SPECIALS, Cursor, ImapSyntaxError


def cur(text: bytes, *literals: bytes, utf8: bool = False) -> Cursor:
    parts = text.split(b"\x00")
    return Cursor(parts, list(literals), utf8=utf8)


def test_tag_and_atom() -> None:
    c = cur(b"a001 login")
    assert c.tag_text() == "a001"
    c.sp()
    assert c.atom() == "login"
    assert c.at_end()


@pytest.mark.parametrize("tag", [b"+a", b"a+b", b"", b"(x", b'"a"'])
def test_bad_tags(tag: bytes) -> None:
    with pytest.raises(ImapSyntaxError) as info:
        cur(tag + b" NOOP").tag_text()
    assert info.value.tag is None


def test_quoted_escapes() -> None:
    assert cur(rb'"a\"b\\c"').quoted() == b'a"b\\c'


@pytest.mark.parametrize("bad", [rb'"abc', rb'"a\b"', b'"a\rb"', b'"a\x00"', '"é"'.encode()])
def test_quoted_rejects(bad: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        Cursor([bad]).quoted()


def test_quoted_utf8_only_in_utf8_mode() -> None:
    assert cur('"é"'.encode(), utf8=True).quoted() == "é".encode()
    with pytest.raises(ImapSyntaxError):
        cur(b'"\xff"', utf8=True).quoted()


def test_literal_and_following_text() -> None:
    c = cur(b"{5}\x00 {3+}\x00", b"hello", b"abc")
    assert c.astring() == b"hello"
    c.sp()
    assert c.astring() == b"abc"
    c.end()


def test_literal8_only_where_binary() -> None:
    with pytest.raises(ImapSyntaxError):
        cur(b"~{3}\x00", b"abc").literal()
    assert cur(b"~{3}\x00", b"a\x00c").literal(binary=True) == b"a\x00c"


def test_literal_refuses_nul() -> None:
    with pytest.raises(ImapSyntaxError):
        cur(b"{3}\x00", b"a\x00c").literal()


def test_astring_allows_right_bracket_atom_does_not() -> None:
    assert cur(b"a]b").astring() == b"a]b"
    assert cur(b"a]b").atom() == "a"


def test_nstring() -> None:
    assert cur(b"NIL").nstring() is None
    assert cur(b'"NIL"').nstring() == b"NIL"


def test_numbers() -> None:
    assert cur(b"4294967295").number() == 4294967295
    with pytest.raises(ImapSyntaxError):
        cur(b"4294967296").number()
    with pytest.raises(ImapSyntaxError):
        cur(b"0").nz_number()
    assert cur(b"9223372036854775807").number64() == 2**63 - 1


def test_sequence_set() -> None:
    assert str(cur(b"1:3,5,7:*").sequence_set()) == "1:3,5,7:*"
    with pytest.raises(ImapSyntaxError):
        cur(b"0:3").sequence_set()


def test_flags() -> None:
    assert cur(b"(\\Seen $Junk)").flag_list() == ("\\Seen", "$Junk")
    assert cur(b"()").flag_list() == ()


def test_dates() -> None:
    assert cur(b"1-Feb-1994").date() == dt.date(1994, 2, 1)
    assert cur(b'"01-feb-1994"').date() == dt.date(1994, 2, 1)
    for bad in (b"31-Feb-1994", b"1-Foo-1994", b"1-Feb-94", b"123-Feb-1994"):
        with pytest.raises(ImapSyntaxError):
            cur(bad).date()


def test_date_time() -> None:
    value = cur(b'" 7-Feb-1994 21:52:25 -0800"').date_time()
    assert value == dt.datetime(1994, 2, 7, 21, 52, 25, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    assert cur(b'"17-Jul-1996 02:44:25 +0000"').date_time().day == 17
    # a one-digit day without its leading space is accepted (common client mistake)
    assert cur(b'"7-Feb-1994 21:52:25 -0800"').date_time().day == 7
    for bad in (b'" 17-Feb-1994 21:52:25 -0800"', b'" 7-Feb-1994 25:52:25 -0800"', b'"x"'):
        with pytest.raises(ImapSyntaxError):
            cur(bad).date_time()


def test_paren_depth_bound() -> None:
    c = Cursor([b"(" * 5], depth_max=4)
    for _ in range(4):
        c.open()
    with pytest.raises(ImapSyntaxError, match="deep"):
        c.open()


def test_list_mailbox_wildcards() -> None:
    assert cur(b"foo/%*").list_mailbox() == b"foo/%*"


def _reference_run(seg: bytes, allowed: frozenset[int] | None, extra: frozenset[int]) -> bytes:
    """RFC 9051 §9 ATOM-CHAR, read one octet at a time: any CHAR except atom-specials
    (those in ``extra`` excepted), limited to ``allowed`` when given."""
    out = bytearray()
    for c in seg:
        if c > 0x7E or (c in ATOM_SPECIALS and c not in extra):
            break
        if allowed is not None and c not in allowed:
            break
        out.append(c)
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.sampled_from(["atom", "astring", "digits", "sequence"]))
def test_atom_runs_match_the_grammar(data: bytes, kind: str) -> None:
    """Every run reader takes exactly the octets the ABNF allows, whatever follows."""
    seg = data.replace(b"\r", b"").replace(b"\n", b"")
    c = Cursor([seg])
    allowed, extra = {
        "atom": (None, frozenset()),
        "astring": (None, frozenset(b"]")),
        "digits": (frozenset(b"0123456789"), frozenset()),
        "sequence": (frozenset(b"0123456789:,$*"), frozenset(b"*")),
    }[kind]
    expected = _reference_run(seg, allowed, extra)
    if kind == "astring":
        got = c.astring_atom()
    else:
        got = c.run(allowed) if extra == frozenset() else c._run(allowed, extra)
    assert got == expected
    assert c.mark() == (0, len(expected))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12), st.sampled_from([b" ", b"(", b"UID", b"body.peek"]))
def test_take_is_case_insensitive_and_exact(data: bytes, token: bytes) -> None:
    c = Cursor([data])
    taken = c.take(token)
    assert taken == (data[: len(token)].upper() == token.upper())
    assert c.mark() == (0, len(token) if taken else 0)


def test_8bit_outside_a_string_is_named() -> None:
    """A client that sends UTF-8 as a bare word (not quoted, not a literal) is told so.
    Spec: RFC 9051 §4.3 (8-bit only in literals and, with UTF8=ACCEPT, quoted strings)."""
    c = cur("a SEARCH SUBJECT Grüße".encode())
    c.tag_text()
    c.sp()
    c.atom()
    c.sp()
    c.atom()
    c.sp()
    c.atom()
    with pytest.raises(ImapSyntaxError, match="8-bit text outside a quoted string or literal"):
        c.end()
