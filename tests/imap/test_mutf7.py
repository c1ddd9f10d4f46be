"""Modified UTF-7 mailbox names: RFC 3501 §5.1.3 examples, strictness, round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.imap.mutf7 import MUtf7Error, decode, encode

EXAMPLES = [
    ("INBOX", "INBOX"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("&", "&-"),
    ("a&b&", "a&-b&-"),
    ("Ä Ö", "&AMQ- &ANY-"),
    ("😀", "&2D3eAA-"),
    ("", ""),
]


@pytest.mark.parametrize(("name", "wire"), EXAMPLES)
def test_examples(name: str, wire: str) -> None:
    assert encode(name) == wire
    assert decode(wire) == name
    assert decode(wire.encode("ascii")) == name


@pytest.mark.parametrize(
    "bad",
    [
        "&AGE-",  # "a" shifted: printable ASCII must stand for itself
        "&",  # unterminated
        "abc&AOQ",  # unterminated
        "&AOQ-&AOQ-",  # two adjacent shifted runs instead of one
        "&A-",  # truncated BASE64
        "&AOR-",  # non-zero padding bits
        "&2D0-",  # lone high surrogate
        "&AO*-",  # not modified BASE64
        "&AO/k-",  # "/" instead of ","
        "Entwürfe",  # 8-bit
        "a\tb",  # control character
    ],
)
def test_strict_rejects(bad: str) -> None:
    with pytest.raises(MUtf7Error):
        decode(bad)


def test_rejects_8bit_bytes() -> None:
    with pytest.raises(MUtf7Error):
        decode("Entwürfe".encode())


@given(st.text())
def test_round_trip(name: str) -> None:
    wire = encode(name)
    assert wire.isascii()
    assert decode(wire) == name


@given(st.binary(max_size=40))
def test_decode_never_raises_other_errors(data: bytes) -> None:
    try:
        name = decode(data)
    except MUtf7Error:
        return
    assert encode(name) == data.decode("ascii")
