"""DMARC Policy Record parsing: every tag, defaults, invalid values, the invalid-policy
fallback, the RFC 7489 tags and the bounds.

Spec: DMARCbis (draft-ietf-dmarc-dmarcbis-41) §4.7, §4.8, §4.10.1, §A.6; RFC 7489 §6.3.
"""

from __future__ import annotations

import pytest

from postel.dmarc import (
    DMARC_RECORD_LENGTH_MAX,
    DMARC_REPORT_URIS_MAX,
    AlignmentMode,
    DmarcRecord,
    DmarcRecordError,
    FailureOption,
    Policy,
    PsdFlag,
    ReportUri,
    is_dmarc_record,
    parse_record,
)


def test_defaults_of_a_minimal_record() -> None:
    assert parse_record(b"v=DMARC1; p=none") == DmarcRecord(p=Policy.NONE)
    record = parse_record("v=DMARC1")
    assert record.p is Policy.NONE  # absent p is p=none (§4.7)
    assert record.adkim is AlignmentMode.RELAXED and record.aspf is AlignmentMode.RELAXED
    assert record.psd is PsdFlag.UNKNOWN and not record.testing
    assert record.fo == frozenset({FailureOption.ALL})
    assert record.applies


def test_every_tag() -> None:
    record = parse_record(
        "v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s; aspf=s; t=y; psd=n; "
        "rua=mailto:agg@example.com,mailto:agg@thirdparty.example.net!10m; "
        "ruf=mailto:fail@example.com; fo=d:s; pct=50; rf=afrf; ri=3600"
    )
    assert record == DmarcRecord(
        p=Policy.REJECT,
        sp=Policy.QUARANTINE,
        np=Policy.REJECT,
        adkim=AlignmentMode.STRICT,
        aspf=AlignmentMode.STRICT,
        testing=True,
        psd=PsdFlag.NO,
        rua=(
            ReportUri("mailto:agg@example.com", "mailto"),
            ReportUri("mailto:agg@thirdparty.example.net", "mailto"),
        ),
        ruf=(ReportUri("mailto:fail@example.com", "mailto"),),
        fo=frozenset({FailureOption.DKIM, FailureOption.SPF}),
        pct=50,
        rf=("afrf",),
        ri=3600,
    )


def test_spec_example_records_parse() -> None:
    """The zone-file records of DMARCbis §B.2.1 and §B.2.5 (strings concatenated)."""
    b21 = parse_record("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com")
    assert b21.p is Policy.NONE and b21.rua[0].uri == "mailto:dmarc-feedback@example.com"
    b25 = parse_record(
        "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
        "mailto:tld-test@thirdparty.example.net; t=y"
    )
    assert b25.p is Policy.QUARANTINE and b25.testing and len(b25.rua) == 2


@pytest.mark.parametrize(
    "text",
    [
        "v=DMARC1;p=reject",
        "v = DMARC1 ; p = reject ;",
        "V=DMARC1; P=REJECT",
        "v=DMARC1;\tp=Reject;",
        "v=DMARC1; rua=mailto:a@example.com; p=reject",  # any order after v (§4.8)
        "v=DMARC1; p=reject; p=none",  # first occurrence wins
    ],
)
def test_whitespace_case_and_order(text: str) -> None:
    assert parse_record(text).p is Policy.REJECT


@pytest.mark.parametrize(
    "text",
    [
        "",
        "p=reject; v=DMARC1",  # v must come first
        "v=DMARC2; p=reject",
        "v=dmarc1; p=reject",  # the value is case-sensitive
        "v=DMARC1x; p=reject",
        "v=spf1 -all",
        "p=none",
    ],
)
def test_not_a_dmarc_record(text: str) -> None:
    assert not is_dmarc_record(text)
    with pytest.raises(DmarcRecordError):
        parse_record(text)


def test_length_bound() -> None:
    text = "v=DMARC1; p=reject; x=" + "a" * DMARC_RECORD_LENGTH_MAX
    with pytest.raises(DmarcRecordError, match="longer"):
        parse_record(text)


def test_unknown_tags_and_junk_are_ignored() -> None:
    record = parse_record("v=DMARC1; p=reject; foo=bar; 9x=1; =; junk; ; adkim=x; aspf=; t=maybe")
    assert record == DmarcRecord(p=Policy.REJECT)


@pytest.mark.parametrize(
    ("tag", "value"),
    [("p", "bogus"), ("sp", "hold"), ("np", "drop"), ("p", "")],
)
def test_invalid_policy_without_rua_applies_no_dmarc(tag: str, value: str) -> None:
    base = {"p": "reject"}
    base[tag] = value
    text = "v=DMARC1; " + "; ".join(f"{k}={v}" for k, v in base.items())
    record = parse_record(text)
    assert record.p is None and not record.applies
    assert not record.policy_fallback


def test_invalid_policy_with_a_valid_rua_acts_as_p_none() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=junk; np=reject; rua=mailto:r@example.com")
    assert record.p is Policy.NONE and record.sp is None and record.np is None
    assert record.policy_fallback and record.applies


def test_invalid_policy_with_only_invalid_rua_applies_no_dmarc() -> None:
    record = parse_record("v=DMARC1; p=rejected; rua=not a uri")
    assert record.p is None and record.rua == ()


def test_report_uris() -> None:
    record = parse_record(
        "v=DMARC1; rua=mailto:a@example.com , https://r.example.net/dmarc, bad uri, "
        "mailto:b@example.com!20k, :nope"
    )
    assert record.rua == (
        ReportUri("mailto:a@example.com", "mailto"),
        ReportUri("https://r.example.net/dmarc", "https"),
        ReportUri("mailto:b@example.com", "mailto"),
    )


def test_report_uri_bound() -> None:
    uris = ",".join(f"mailto:r{i}@example.com" for i in range(DMARC_REPORT_URIS_MAX + 5))
    assert len(parse_record(f"v=DMARC1; ruf={uris}").ruf) == DMARC_REPORT_URIS_MAX


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", {FailureOption.ALL}),
        ("1", {FailureOption.ANY}),
        ("0:d", {FailureOption.ALL, FailureOption.DKIM}),
        ("s:1:d", {FailureOption.ANY, FailureOption.SPF, FailureOption.DKIM}),
        ("0:1", {FailureOption.ALL}),  # exclusive: default
        ("d:d", {FailureOption.ALL}),  # repeated: default
        ("x", {FailureOption.ALL}),
        ("", {FailureOption.ALL}),
    ],
)
def test_failure_options(value: str, expected: set[FailureOption]) -> None:
    assert parse_record(f"v=DMARC1; fo={value}").fo == frozenset(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [("y", PsdFlag.YES), ("N", PsdFlag.NO), ("u", PsdFlag.UNKNOWN)]
)
def test_psd(value: str, expected: PsdFlag) -> None:
    assert parse_record(f"v=DMARC1; psd={value}").psd is expected
    assert parse_record("v=DMARC1; psd=maybe").psd is PsdFlag.UNKNOWN


@pytest.mark.parametrize(
    ("tags", "testing", "pct"),
    [
        ("pct=0", True, 0),  # pct=0 is t=y (§A.6)
        ("pct=100", False, 100),
        ("pct=50", False, 50),  # kept, not applied
        ("pct=0; t=n", False, 0),  # an explicit t wins
        ("t=y; pct=100", True, 100),
        ("pct=101", False, None),
        ("pct=-1", False, None),
        ("pct=abc", False, None),
    ],
)
def test_pct_compatibility(tags: str, testing: bool, pct: int | None) -> None:
    record = parse_record(f"v=DMARC1; p=reject; {tags}")
    assert record.testing is testing
    assert record.pct == pct


def test_legacy_rf_and_ri() -> None:
    record = parse_record("v=DMARC1; rf=AFRF:iodef; ri=86400")
    assert record.rf == ("afrf", "iodef") and record.ri == 86400
    bad = parse_record("v=DMARC1; rf=a b; ri=99999999999")
    assert bad.rf is None and bad.ri is None


def test_bytes_that_are_not_utf8() -> None:
    record = parse_record(b"v=DMARC1; p=reject; rua=mailto:\xff@example.com")
    assert record.p is Policy.REJECT and record.rua == ()
