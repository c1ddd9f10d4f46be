"""Content-Transfer-Encoding decoding (postel.imap.decode)."""

from __future__ import annotations

import base64
import binascii
import quopri

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import ProtocolError
from postel.imap.decode import (
    TransferEncoding,
    UnknownTransferEncoding,
    decode_base64,
    decode_quoted_printable,
    decode_transfer,
    transfer_encoding,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, TransferEncoding.SEVEN_BIT),
        (b"7bit", TransferEncoding.SEVEN_BIT),
        (b"8BIT", TransferEncoding.EIGHT_BIT),
        (b" Binary ", TransferEncoding.BINARY),
        (b"Base64", TransferEncoding.BASE64),
        (b"base64 (comment)", TransferEncoding.BASE64),
        (b"Quoted-Printable", TransferEncoding.QUOTED_PRINTABLE),
        (b"", TransferEncoding.SEVEN_BIT),
    ],
)
def test_transfer_encoding_names(value: bytes | None, expected: TransferEncoding) -> None:
    assert transfer_encoding(value) is expected


@pytest.mark.parametrize("value", [b"x-uuencode", b"chunked", b"base-64", b"quoted"])
def test_unknown_encoding_is_a_protocol_error(value: bytes) -> None:
    with pytest.raises(UnknownTransferEncoding) as info:
        decode_transfer(b"data", value)
    assert isinstance(info.value, ProtocolError)
    assert info.value.encoding == value


def test_identity_encodings_keep_octets() -> None:
    raw = b"caf\xe9\x00\r\nline =3D\r\n"
    for cte in (None, b"7bit", b"8bit", b"binary"):
        assert decode_transfer(raw, cte) == raw


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"SGVsbG8sIHdvcmxkIQ==", b"Hello, world!"),
        (b"SGVs\r\nbG8s\r\nIHdv\r\ncmxk\r\nIQ==\r\n", b"Hello, world!"),
        (b"  SGVs bG8s\tIHdvcmxkIQ==  ", b"Hello, world!"),
        (b"SGVs!bG8*sIHd~vcmxkIQ==", b"Hello, world!"),  # garbage is ignored
        (b"SGVsbG8sIHdvcmxkIQ", b"Hello, world!"),  # missing padding
        (b"SGVsbG8sIHdvcmxkIQ=", b"Hello, world!"),  # short padding
        (b"QQ==\r\nQkM=\r\n", b"A"),  # data after the padding is not decoded
        (b"QUI=\r\n\r\n-- \r\nfooter\r\n", b"AB"),
        (b"QUJDR", b"ABC"),  # a lone sixth-bit character is dropped
        (b"", b""),
        (b"====", b""),
        (b"AA==", b"\x00"),
    ],
)
def test_base64_lenient(encoded: bytes, decoded: bytes) -> None:
    assert decode_base64(encoded) == decoded
    assert decode_transfer(encoded, b"BASE64") == decoded


@given(st.binary(max_size=600))
def test_base64_round_trip(data: bytes) -> None:
    assert decode_base64(base64.encodebytes(data).replace(b"\n", b"\r\n")) == data


@given(st.binary(max_size=300))
def test_base64_never_raises(data: bytes) -> None:
    decode_base64(data)


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"caf=C3=A9", b"caf\xc3\xa9"),
        (b"caf=c3=a9", b"caf\xc3\xa9"),  # lower-case hex accepted
        (b"soft =\r\nbreak", b"soft break"),
        (b"soft =  \r\nbreak", b"soft break"),  # whitespace after the soft break '='
        (b"hard  \r\nbreak\t\r\n", b"hard\r\nbreak\r\n"),  # trailing whitespace deleted
        (b"keep=20\r\n", b"keep \r\n"),
        (b"a=ZZb", b"a=ZZb"),  # malformed escape kept
        (b"a==3D", b"a=="),
        (b"100% =", b"100% "),  # '=' at the very end: soft break
        (b"bare=\nLF", b"bareLF"),
        (b"x=3", b"x=3"),
        (b"", b""),
        (b"line1\r\nline2", b"line1\r\nline2"),
    ],
)
def test_quoted_printable(encoded: bytes, decoded: bytes) -> None:
    assert decode_quoted_printable(encoded) == decoded
    assert decode_transfer(encoded, b"quoted-printable") == decoded


@given(st.binary(max_size=400))
def test_quoted_printable_round_trip(data: bytes) -> None:
    # quopri encodes trailing whitespace, so the round trip is exact; its line breaks
    # are LF, so compare with LF data only.
    data = data.replace(b"\r", b"")
    encoded = quopri.encodestring(data, quotetabs=False)
    assert decode_quoted_printable(encoded) == data


@given(st.binary(max_size=400))
def test_quoted_printable_matches_binascii_on_wellformed_input(data: bytes) -> None:
    encoded = binascii.b2a_qp(data, istext=False)
    assert decode_quoted_printable(encoded) == binascii.a2b_qp(encoded)
