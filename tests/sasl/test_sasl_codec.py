"""decode_response / encode_challenge: the base64 framing of RFC 4954 §4, RFC 4959 §3,
RFC 5034 §4."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import ProtocolError
from postel.sasl import (
    CANCELLED,
    SASL_LINE_MAX,
    SaslError,
    decode_response,
    encode_challenge,
)


def test_star_cancels() -> None:
    assert decode_response(b"*") is CANCELLED


def test_equals_is_empty_initial_response() -> None:
    assert decode_response(b"=") == b""


def test_empty_line_is_empty_response() -> None:
    assert decode_response(b"") == b""


def test_plain_initial_response_decodes() -> None:
    assert decode_response(b"AHVzZXIAcGVuY2ls") == b"\x00user\x00pencil"


@pytest.mark.parametrize(
    "line",
    [
        b"AHVzZXIAcGVuY2l",  # length not a multiple of four
        b"AHVzZXIAcGVuY2l=",  # not canonical: trailing bits set
        b"QQ=A",  # padding in the middle
        b"QQ===",  # too much padding
        b"QQ",  # missing padding
        b"QUJD RA==",  # space
        b"QUJD\r\n",  # line ending left in
        b"QU-D",  # URL-safe alphabet
        b"QUJD\x00",
        b"**",
        b"==",
        "QUJDé".encode(),
    ],
)
def test_bad_base64_is_a_sasl_error(line: bytes) -> None:
    with pytest.raises(SaslError):
        decode_response(line)


def test_sasl_error_is_a_protocol_error() -> None:
    assert issubclass(SaslError, ProtocolError)


def test_line_length_bound() -> None:
    longest = b"QUJD" * (SASL_LINE_MAX // 4)
    assert decode_response(longest) == b"ABC" * (SASL_LINE_MAX // 4)
    with pytest.raises(SaslError):
        decode_response(longest + b"QUJD")


def test_encode_challenge() -> None:
    assert encode_challenge(b"") == b""
    assert encode_challenge(b"Username:") == b"VXNlcm5hbWU6"


@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    assert decode_response(encode_challenge(data)) == data


@given(st.binary(max_size=100))
def test_arbitrary_lines_decode_or_raise_sasl_error(line: bytes) -> None:
    try:
        result = decode_response(line)
    except SaslError:
        return
    if result is not CANCELLED:
        assert isinstance(result, bytes)
        assert line in (b"", b"=") or base64.b64encode(result) == line
