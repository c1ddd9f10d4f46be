"""Trace fields: no injected CR/LF/NUL, folding, loop scan."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.mail import delivered_to_field, received_field, return_path_field, trace_info

WHEN = datetime(2026, 11, 29, 11, 0, 0, tzinfo=UTC)


def _lines(field: bytes) -> list[bytes]:
    assert field.endswith(b"\r\n")
    lines = field[:-2].split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line
        assert len(line) < 998
    for cont in lines[1:]:
        assert cont[:1] in (b" ", b"\t")
    return lines


def test_received_shape() -> None:
    f = received_field(
        "mx.example.net",
        "192.0.2.1",
        "mx.example.net",
        "mail.example.org",
        "ESMTPS",
        "Q123",
        "user@example.org",
        "TLSv1.3 cipher TLS_AES_128_GCM_SHA256",
        WHEN,
    )
    text = b" ".join(x.strip() for x in _lines(f))
    assert text.startswith(b"Received: from mx.example.net (mx.example.net [192.0.2.1]) by")
    assert b"with ESMTPS id Q123 for <user@example.org>; Sun, 29 Nov 2026 11:00:00 +0000" in text


@given(st.text(), st.text(), st.text())
def test_no_injection(helo: str, rcpt: str, tls: str) -> None:
    f = received_field(helo, "192.0.2.1", None, "h", "SMTP", "id", rcpt, tls, WHEN)
    _lines(f)
    _lines(return_path_field(rcpt))
    _lines(delivered_to_field(helo))


def test_injection_examples() -> None:
    evil = "x\r\nBcc: victim@example.com\x00"
    for f in (
        received_field(evil, evil, evil, evil, evil, evil, evil, evil, WHEN),
        return_path_field(evil),
        delivered_to_field(evil),
    ):
        assert b"\r\nBcc" not in f
        _lines(f)


def test_trace_info() -> None:
    block = (
        b"Received: from a by b; x\r\nReceived: from c\r\n by d; y\r\n"
        b"Delivered-To: u@example.org\r\nSubject: s\r\n\r\nReceived: not header\r\n"
    )
    info = trace_info(block)
    assert info.received_count == 2
    assert info.delivered_to == ("u@example.org",)


FORGED_HELO = (
    "trusted.example (trusted.example [192.0.2.1]) by mx.hostile.test with ESMTPS id FAKE "
    "for <alice@hostile.test>; Mon, 1 Jan 2024 00:00:00 +0000 (x"
)


@pytest.mark.parametrize(
    "helo",
    [
        FORGED_HELO,
        "evil\x1b[31m\x0b\x0c\x7f\t\u2028\u0085",
        "x(y)z [192.0.2.1]",
        "a\\)b",
    ],
)
def test_helo_cannot_forge_the_from_clause(helo: str) -> None:
    """Only the first word of EHLO, reduced to domain/address-literal characters, is
    written; the real peer comment follows it unchanged."""
    field = received_field(
        from_helo=helo,
        from_ip="127.0.0.1",
        from_rdns=None,
        by_host="mx.example.org",
        protocol="ESMTP",
        queue_id="Q1",
        recipient="alice@hostile.test",
        tls=None,
        date=datetime(2026, 1, 1, tzinfo=UTC),
    )
    unfolded = field.replace(b"\r\n\t", b" ")
    head = unfolded.split(b" (unknown [127.0.0.1]) by mx.example.org ")[0]
    assert head.startswith(b"Received: from ")
    token = head.removeprefix(b"Received: from ")
    assert re.fullmatch(rb"[A-Za-z0-9.\-_:\[\]]+", token), token
    assert unfolded.count(b"[") == 1 + token.count(b"[")
    assert all(b >= 0x20 or b in b"\r\n\t" for b in field)


def test_control_and_separator_characters_never_reach_trace_fields() -> None:
    path = "x\u2028y\u0085z\x1b@example.org"
    field = return_path_field(path)
    assert field == b"Return-Path: <x?y?z?@example.org>\r\n"
