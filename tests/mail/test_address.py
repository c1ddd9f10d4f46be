"""Address lists as IMAP ENVELOPE address structures."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail import Address, parse_address_list
from postel.mail.address import ADDRESSES_MAX, MISSING_DOMAIN, MISSING_MAILBOX, _parse


def test_forms() -> None:
    got = parse_address_list(
        b' "Doe, John" <john@example.com>, bbb@ddd.com (John X. Doe),\r\n'
        b" Group: a@b.c, <@r1,@r2:d@e.f>;, eryq, <>"
    )
    assert got == (
        Address(b"Doe, John", None, b"john", b"example.com"),
        Address(b"John X. Doe", None, b"bbb", b"ddd.com"),
        Address(None, None, b"Group", None),
        Address(None, None, b"a", b"b.c"),
        Address(None, b"@r1,@r2", b"d", b"e.f"),
        Address(None, None, None, None),
        Address(None, None, b"eryq", MISSING_DOMAIN),
        Address(None, None, MISSING_MAILBOX, MISSING_DOMAIN),
    )


def test_encoded_words_stay_raw() -> None:
    (a,) = parse_address_list(b"=?utf-8?q?J=C3=B6rg?= <j@example.de>")
    assert a.name == b"=?utf-8?q?J=C3=B6rg?="


def test_garbage_never_raises() -> None:
    for value in (b"<<<", b'"unterminated', b"(((", b"@@@,,;;::", b"\xff\x00<>", b"a@"):
        parse_address_list(value)


def test_bounded() -> None:
    value = b", ".join(b"u%d@example.com" % i for i in range(20_000))
    assert len(parse_address_list(value)) == 10_000


# Pieces that make the simple shapes and every way to step out of them: specials,
# quotes, comments, literals, folding, controls, 8-bit octets.
_ADDRESS_OCTETS = st.sampled_from(
    [
        b"a",
        b"b.c",
        b"x",
        b"@",
        b"<",
        b">",
        b" ",
        b"\t",
        b"\r\n ",
        b",",
        b";",
        b":",
        b'"',
        b"\\",
        b"(",
        b")",
        b"[",
        b"]",
        b".",
        b"\x00",
        b"\x7f",
        b"\xc3\xa9",
        b"#",
        b"=",
    ]
)


@given(parts=st.lists(_ADDRESS_OCTETS, max_size=30), max_addresses=st.integers(0, 3))
@settings(max_examples=3000, deadline=None)
def test_simple_shapes_read_as_the_parser_reads_them(
    parts: list[bytes], max_addresses: int
) -> None:
    value = b"".join(parts)
    assert parse_address_list(value, max_addresses=max_addresses) == _parse(value, max_addresses)


def test_simple_shapes_agree_with_the_parser() -> None:
    for value in (
        b"<a@x>",
        b"a@x",
        b" a.b@c.d \r\n",
        b"Joe  Q\r\n Public <joe@ex.com>",
        b"Name<l@d>",
        b"=?utf-8?q?J=C3=B6rg?= <j@example.de>",
        b"\xc3\xa9t\xc3\xa9 <\xc3\xa9@x>",
    ):
        (got,) = parse_address_list(value)
        assert (got,) == _parse(value, ADDRESSES_MAX)


def test_no_backtracking_on_hostile_fields() -> None:
    """Long runs that almost take the simple shape: each is read in linear time (the
    check before the parser must not try every split). RELIABILITY.md D7."""
    for value in (
        b"a " * 100_000 + b"<a@",
        b"a" * 300_000 + b"@",
        b"<" + b"a" * 300_000,
        b"a\r\n " * 60_000 + b"<a@b>x",
        b" " * 300_000 + b"a@b@c",
    ):
        started = time.process_time()
        parse_address_list(value)
        assert time.process_time() - started < 5.0, value[:20]
