"""Address lists as IMAP ENVELOPE address structures."""

from __future__ import annotations

from postel.mail import Address, parse_address_list
from postel.mail.address import MISSING_DOMAIN, MISSING_MAILBOX


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
