"""Hypothesis: record parsing raises nothing but ``DmarcRecordError``; From: parsing
and ``evaluate`` over arbitrary DNS data raise nothing at all.

Spec: DMARCbis (draft-ietf-dmarc-dmarcbis-41) §4.8; RELIABILITY.md test 13.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.dmarc import (
    AuthorDomains,
    DmarcRecord,
    DmarcRecordError,
    Result,
    author_domains,
    evaluate,
    parse_record,
)

from .scripted import ScriptedResolver

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_PIECES = [
    "v=DMARC1",
    "v=DMARC1;",
    "V = DMARC1 ;",
    ";",
    " ",
    "\t",
    "=",
    ",",
    ":",
    "!",
    "p=",
    "sp=",
    "np=",
    "t=",
    "psd=",
    "pct=",
    "rf=",
    "ri=",
    "fo=",
    "adkim=",
    "aspf=",
    "rua=",
    "ruf=",
    "none",
    "quarantine",
    "reject",
    "y",
    "n",
    "u",
    "r",
    "s",
    "0",
    "1",
    "d",
    "100",
    "4294967296",
    "mailto:a@example.com",
    "https://x.example/",
    "!10m",
    "\xff",
    "é",
    "\x00",
]
record_text = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join) | st.text(max_size=300)


@FUZZ
@given(record_text)
def test_parse_record_raises_only_its_error(text: str) -> None:
    try:
        record = parse_record(text)
    except DmarcRecordError:
        return
    assert isinstance(record, DmarcRecord)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_record_bytes(data: bytes) -> None:
    with contextlib.suppress(DmarcRecordError):
        parse_record(data)


_FROM = st.lists(
    st.sampled_from(
        [
            *(b"a", b"@", b"<", b">", b",", b";", b":", b'"', b"(", b")", b"[", b"]", b"."),
            *(b" ", b"example.com", b"\xc3\xbc", b"xn--", b"-", b"=?utf-8?q?x?="),
        ]
    ),
    max_size=30,
).map(b"".join)


@FUZZ
@given(st.lists(_FROM | st.binary(max_size=80), max_size=3))
def test_author_domains_never_raises(fields: list[bytes]) -> None:
    found = author_domains(fields)
    assert isinstance(found, AuthorDomains)
    assert (found.problem is None) == bool(found.domains)


@FUZZ
@given(
    _FROM,
    st.dictionaries(
        st.sampled_from(["_dmarc.example.com", "_dmarc.com", "_dmarc.a.example.com"]),
        st.lists(record_text, max_size=3),
        max_size=3,
    ),
    st.lists(st.tuples(st.sampled_from(["pass", "fail"]), _FROM.map(bytes.decode)), max_size=3),
)
async def test_evaluate_never_raises(
    from_value: bytes, records: dict[str, list[str]], dkim: list[tuple[str, str]]
) -> None:
    result = await evaluate(from_value, None, dkim, ScriptedResolver(records))
    assert isinstance(result.result, Result)
