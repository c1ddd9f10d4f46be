"""The compiled replacements of dkimpy's RSA verification and key parsing give
dkimpy's own answers (docs/adr/0004-dkimpy-hot-spots.md)."""

from __future__ import annotations

import base64
import hashlib

import dkim.crypto
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

import dkim
from postel.dkim import accel

_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_DER = _PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
RECORD = b"v=DKIM1; k=rsa; p=" + base64.b64encode(_DER)


def _hash(data: bytes) -> dkim.HashThrough:
    h = dkim.HashThrough(hashlib.sha256())
    h.update(data)
    return h


def _signature(data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return _PRIVATE.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_installed_when_postel_dkim_is_imported() -> None:
    assert dkim.RSASSA_PKCS1_v1_5_verify is accel.verify_rsa
    assert dkim.evaluate_pk is accel.evaluate_key


PUBLIC = accel._dkimpy_evaluate_pk("", RECORD)[0]
GOOD = _signature(b"signed data")


@pytest.mark.parametrize(
    "signature",
    [
        GOOD,
        GOOD[:-1] + bytes([GOOD[-1] ^ 1]),  # altered
        GOOD[1:],  # one octet short
        b"\xff" * len(GOOD),  # above the modulus
        b"",
        _signature(b"other data"),
    ],
    ids=["valid", "altered", "short", "above-modulus", "empty", "other-data"],
)
def test_rsa_verification_agrees_with_dkimpy(signature: bytes) -> None:
    expected = accel._dkimpy_verify(_hash(b"signed data"), signature, PUBLIC)
    assert accel.verify_rsa(_hash(b"signed data"), signature, PUBLIC) == expected


MODULUS = PUBLIC["modulus"]
_GOOD_INT = int.from_bytes(GOOD, "big")


@pytest.mark.parametrize(
    "signature",
    [b"\x00" + GOOD, b"\x00\x00" + GOOD, (_GOOD_INT + MODULUS).to_bytes(257, "big")],
    ids=["zero-padded", "two-zeros", "plus-modulus"],
)
def test_a_signature_not_exactly_modulus_long_is_invalid(signature: bytes) -> None:
    """dkimpy reads the signature as an integer and accepts these; RFC 8017 §8.2.2
    step 1 (length k) and §5.2.2 step 1 (s < n) make them invalid."""
    assert accel._dkimpy_verify(_hash(b"signed data"), signature, PUBLIC)
    assert not accel.verify_rsa(_hash(b"signed data"), signature, PUBLIC)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_rsa_verification_agrees_on_any_signature_bytes(signature: bytes) -> None:
    expected = accel._dkimpy_verify(_hash(b"x"), signature, PUBLIC)
    assert accel.verify_rsa(_hash(b"x"), signature, PUBLIC) == expected


@pytest.mark.parametrize(
    "record",
    [
        RECORD,
        RECORD.decode(),
        b"v=DKIM1; k=rsa; p=",
        b"v=DKIM2; p=" + base64.b64encode(_DER),
        b"k=rsa; p=AAAA",
        b"k=rsa; p=" + base64.b64encode(_DER)[:40],
        b"k=foo; p=" + base64.b64encode(_DER),
        b"not a tag list",
        b"",
        None,
    ],
)
def test_key_evaluation_agrees_with_dkimpy(record: bytes | str | None) -> None:
    try:
        expected = accel._dkimpy_evaluate_pk("n", record)
    except Exception as exc:  # dkimpy's error, type and text
        with pytest.raises(type(exc)) as info:
            accel.evaluate_key("n", record)
        assert str(info.value) == str(exc)
        return
    for _ in range(2):  # the second answer comes from the cache
        assert accel.evaluate_key("n", record) == expected


# --- The text steps: same output (or same exception) as dkimpy's own, on any input ---
_FIELD_TEXT = st.lists(
    st.sampled_from(
        [
            b" ",
            b"\t",
            b"\r",
            b"\n",
            b"\r\n",
            b"\r\n ",
            b";",
            b"=",
            b":",
            b"b",
            b"bh",
            b"h",
            b"B",
            b"a",
            b"z",
            b"0",
            b"9",
            b"+",
            b"/",
            b"-",
            b"_",
            b".",
            b"@",
            b"\xc3\xa9",
            b"\x00",
            b"\x0b",
            b"\x0c",
            b"From ",
            b"b=",
            b" b =",
            b";b=",
            b"abc==",
        ]
    ),
    max_size=40,
).map(b"".join)


def _outcome(function: object, *args: object) -> object:
    try:
        return ("ok", function(*args))  # type: ignore[operator]
    except Exception as exc:  # the exception's type and arguments are part of the contract
        return ("raised", type(exc), exc.args)


SIGNATURE_FIELD = (
    b" v=1; a=rsa-sha256; c=relaxed/relaxed; d=s.test;\r\n i=@s.test; s=sel;"
    b" h=from : to;\r\n bh=mbt3I9sKH5shMduWgIh1VwZQJ+W2EXhL2X3LvnqH1Fg=;\r\n"
    b" b=lLieqz+iz5f/5fJP+HSKh8bY01uPWGKOXncpwbmDXDsk8zaTEzajMpdpDVP9ihQUq79Ym\r\n"
    b" mjdfWc+AKJ7STjNwVsVSr3ety/Crsv5ssWTUpihD2G7/GIVrB+0oLBe3iTkhLEbEhTUk9y==\r\n"
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_FIELD_TEXT, st.binary(max_size=80), st.just(SIGNATURE_FIELD)))
def test_b_value_pattern_agrees_with_dkimpy(value: bytes) -> None:
    assert accel.B_VALUE.sub(rb"\1", value) == accel._dkimpy_b_tag.sub(rb"\1", value)


@pytest.mark.parametrize(
    "value",
    [
        SIGNATURE_FIELD,
        SIGNATURE_FIELD.replace(b"\r\n", b"\n"),
        b"v=1; b= abc \r\n def== ; bh=xyz=",
        b"b=",
        b"bh=abc; b=abc=\r\n",
        b"b=abc;b=def",
        b"\tb\r\n =\r\n a\r\n",
    ],
)
def test_b_value_pattern_agrees_on_signature_fields(value: bytes) -> None:
    assert accel.B_VALUE.sub(rb"\1", value) == accel._dkimpy_b_tag.sub(rb"\1", value)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_FIELD_TEXT, st.binary(max_size=60), st.just(SIGNATURE_FIELD)))
def test_tag_list_parse_agrees_with_dkimpy(value: bytes) -> None:
    assert _outcome(accel.parse_tag_value, value) == _outcome(accel._dkimpy_parse_tag_value, value)


_HEADER_LINE = st.lists(
    st.sampled_from(
        [
            b"From: a@b",
            b"To : x",
            b"Subject:",
            b" folded",
            b"\tfolded",
            b"From x",
            b"bad",
            b": empty name",
            b"X-\xc3\xa9: v",
            b"",
            b"A:b:c",
            b"DKIM-Signature: v=1; b=a",
        ]
    ),
    max_size=8,
)


_LINE_ENDS = st.sampled_from([b"\r\n", b"\n"])


@settings(max_examples=400, deadline=None)
@given(
    _HEADER_LINE,
    st.lists(_LINE_ENDS, min_size=10, max_size=10),
    st.lists(st.sampled_from([b"x", b"\r\n", b"\n", b"\r", b" "]), max_size=10).map(b"".join),
    st.binary(max_size=30),
)
def test_message_parse_agrees_with_dkimpy(
    lines: list[bytes], ends: list[bytes], body: bytes, raw: bytes
) -> None:
    """Every line in CRLF (the direct path) or some in bare LF (the split path), with
    and without the empty line that ends the header."""
    header = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    for message in (header + ends[-1] + body, header + ends[-1] + raw, header, header + body):
        ours, theirs = (
            _outcome(accel.rfc822_parse, message),
            _outcome(accel._dkimpy_rfc822_parse, message),
        )
        if ours[0] == "raised" and theirs[0] == "raised":
            assert ours[1] is theirs[1] and str(ours[2]) == str(theirs[2])
        else:
            assert ours == theirs


def test_a_parsed_tag_list_is_the_caller_s_own() -> None:
    """The parse of a recent list is reused; what a caller does to its dict does not
    reach the next caller."""
    first = accel.parse_tag_value(SIGNATURE_FIELD)
    first[b"d"] = b"changed.test"
    del first[b"b"]
    again = accel.parse_tag_value(SIGNATURE_FIELD)
    assert again == accel._dkimpy_parse_tag_value(SIGNATURE_FIELD)
    assert again is not first


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FIELD_TEXT, _FIELD_TEXT), max_size=6))
def test_relaxed_header_canonicalization_agrees_with_dkimpy(
    fields: list[tuple[bytes, bytes]],
) -> None:
    assert accel.relaxed_headers(fields) == accel._dkimpy_relaxed_headers(fields)


_BODY_PIECES = st.sampled_from([b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"word", b"\x00"])
"""Bodies made of the octets relaxed canonicalization acts on, in any order."""


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(_BODY_PIECES, max_size=40).map(b"".join), st.binary(max_size=80)))
def test_relaxed_body_canonicalization_agrees_with_dkimpy(body: bytes) -> None:
    assert accel.relaxed_body(body) == accel._dkimpy_relaxed_body(body)


@pytest.mark.parametrize(
    "body",
    [b"", b"\r\n", b"\r\n\r\n", b"a", b"a \r\n", b"a\t\tb\r\n", b"one two\r\n\r\n", b" \t \r\n"],
)
def test_relaxed_body_named_cases(body: bytes) -> None:
    assert accel.relaxed_body(body) == accel._dkimpy_relaxed_body(body)


_NAMES = st.sampled_from([b"from", b"to", b"subject", b"date", b"x"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"From", b"from", b"TO", b"Subject", b"Y"]), st.binary(max_size=3)
        ),
        max_size=8,
    ),
    st.lists(_NAMES, max_size=10),
)
def test_signed_field_selection_agrees_with_dkimpy(
    headers: list[tuple[bytes, bytes]], names: list[bytes]
) -> None:
    assert accel.select_headers(headers, names) == accel._dkimpy_select_headers(headers, names)


def test_text_steps_installed() -> None:
    import dkim.canonicalization
    import dkim.util

    assert dkim.RE_BTAG is accel.B_VALUE
    assert dkim.parse_tag_value is dkim.util.parse_tag_value is accel.parse_tag_value
    assert dkim.rfc822_parse is accel.rfc822_parse
    assert dkim.select_headers is accel.select_headers
    assert dkim.canonicalization.Relaxed.canonicalize_headers is accel.relaxed_headers
    assert dkim.canonicalization.Relaxed.canonicalize_body is accel.relaxed_body
