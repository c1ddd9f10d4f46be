"""MTA-STS policy files, TXT records and MX patterns (RFC 8461 §3.1, §3.2, §4.1),
parsed from real bytes, plus postel's own published policy."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import MtaStsError, ProtocolError
from postel.mtasts import (
    MAX_AGE_MAX,
    POLICY_SIZE_MAX,
    Policy,
    PolicyMode,
    StsRecord,
    mx_matches,
    own_policy,
    parse_policy,
    parse_sts_record,
    select_sts_record,
)

RFC_EXAMPLE = (
    b"version: STSv1\r\n"
    b"mode: enforce\r\n"
    b"mx: mail.example.com\r\n"
    b"mx: *.example.net\r\n"
    b"mx: backupmx.example.com\r\n"
    b"max_age: 604800\r\n"
)


# -- policy files ---------------------------------------------------------------------
def test_the_rfc_example_parses() -> None:
    policy = parse_policy(RFC_EXAMPLE)
    assert policy == Policy(
        PolicyMode.ENFORCE,
        ("mail.example.com", "*.example.net", "backupmx.example.com"),
        604800,
    )


def test_lf_line_ends_and_a_missing_last_newline_are_accepted() -> None:
    text = RFC_EXAMPLE.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert parse_policy(text) == parse_policy(RFC_EXAMPLE)


def test_unknown_keys_are_ignored_and_the_first_of_a_repeated_key_counts() -> None:
    text = (
        b"version: STSv1\r\nmode: testing\r\nmode: enforce\r\nfuture_key: some value\r\n"
        b"mx: MX.Example.COM.\r\nmax_age: 86400\r\nmax_age: 1\r\n"
    )
    assert parse_policy(text) == Policy(PolicyMode.TESTING, ("mx.example.com",), 86400)


def test_whitespace_after_the_colon_is_optional() -> None:
    text = b"version:STSv1\nmode:\tnone\nmax_age:0\n"
    assert parse_policy(text) == Policy(PolicyMode.NONE, (), 0)


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
        b"mode: enforce\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: ENFORCE\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: %d\n" % (MAX_AGE_MAX + 1),
        b"version: STSv1\nmode: enforce\nmax_age: 1\n",
        b"version: STSv1\nmode: testing\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: bad_host!\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nno colon here\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n: empty key\n",
        b"version: STSv1\nmode: enforce\nmx: a.ex\x00ample\nmax_age: 1\n",
        b"\xff\xfe version: STSv1\n",
        b"<html><body>not a policy</body></html>",
    ],
)
def test_invalid_policies_are_refused(text: bytes) -> None:
    with pytest.raises(MtaStsError):
        parse_policy(text)


def test_max_age_at_the_bound_is_accepted() -> None:
    text = b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: %d\n" % MAX_AGE_MAX
    assert parse_policy(text).max_age == MAX_AGE_MAX


def test_a_policy_over_64_kib_is_refused_before_parsing() -> None:
    padding = b"x-pad: " + b"a" * 100 + b"\n"
    text = RFC_EXAMPLE + padding * (POLICY_SIZE_MAX // len(padding) + 1)
    assert len(text) > POLICY_SIZE_MAX
    with pytest.raises(MtaStsError, match="larger"):
        parse_policy(text)


def test_to_text_round_trips() -> None:
    policy = parse_policy(RFC_EXAMPLE)
    assert parse_policy(policy.to_text().encode()) == policy


def test_mtasts_error_is_a_protocol_error() -> None:
    assert issubclass(MtaStsError, ProtocolError)


@given(st.binary(max_size=400))
def test_parse_policy_raises_only_mtasts_error(data: bytes) -> None:
    with contextlib.suppress(MtaStsError):
        parse_policy(data)


@given(
    st.lists(
        st.sampled_from(
            ["version", "mode", "mx", "max_age", "x", "STSv1", "enforce", "*.", "a.b", "1", ":"]
        ),
        max_size=30,
    ).map(lambda words: " ".join(words).replace(" : ", ": ").encode())
)
def test_parse_policy_on_near_valid_lines_raises_only_mtasts_error(data: bytes) -> None:
    with contextlib.suppress(MtaStsError):
        parse_policy(data.replace(b"  ", b"\n"))


# -- TXT records ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "record_id"),
    [
        (b"v=STSv1; id=20160831085700Z", "20160831085700Z"),
        (b"v=STSv1;id=1", "1"),
        (b"v=STSv1; id=abc;", "abc"),
        (b"v=STSv1 ;\tid=abc ; ext=value", "abc"),
        (b"v=STSv1; ext-1=x; id=A1b2", "A1b2"),
        (b"v=STSv1; id=first; id=second", "first"),
    ],
)
def test_txt_records_parse(text: bytes, record_id: str) -> None:
    assert parse_sts_record(text) == StsRecord(record_id)


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"v=STSv1",
        b"v=STSv1;",
        b"v=STSv2; id=1",
        b"id=1; v=STSv1",
        b"v=STSv1; id=",
        b"v=STSv1; id=has-dash",
        b"v=STSv1; id=" + b"a" * 33,
        b"v=STSv1; id=1; broken",
        b"v=STSv1; id=1; =x",
        b"v=STSv1; id=\xc3\xa9",
        b"v=STSv1; id=1; pad=" + b"a" * 2000,
    ],
)
def test_invalid_txt_records_are_refused(text: bytes) -> None:
    with pytest.raises(MtaStsError):
        parse_sts_record(text)


def test_select_drops_other_txt_records() -> None:
    records = (b"v=spf1 -all", b"v=STSv1; id=42", b"google-site-verification=x")
    assert select_sts_record(records) == StsRecord("42")


@pytest.mark.parametrize(
    "records",
    [
        (),
        (b"v=spf1 -all",),
        (b"v=STSv1; id=1", b"v=STSv1; id=2"),  # several: no policy (RFC 8461 §3.1)
        (b"v=STSv1; id=bad-id",),
        (b"v=STSv1",),
    ],
)
def test_select_finds_no_record(records: tuple[bytes, ...]) -> None:
    assert select_sts_record(records) is None


@given(st.binary(max_size=200))
def test_parse_sts_record_raises_only_mtasts_error(data: bytes) -> None:
    with contextlib.suppress(MtaStsError):
        parse_sts_record(data)


# -- MX patterns ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.Example.com.", True),
        ("mail.example.com.", "mail.example.com", True),
        ("mail.example.com", "other.example.com", False),
        ("mail.example.com", "a.mail.example.com", False),
        ("*.example.net", "mx1.example.net", True),
        ("*.example.net", "MX1.EXAMPLE.NET.", True),
        ("*.example.net", "example.net", False),  # exactly one label (RFC 8461 §4.1)
        ("*.example.net", "a.b.example.net", False),
        ("*.example.net", ".example.net", False),
        ("*.example.net", "mx1.example.org", False),
        ("*.example.net", "mx1.xexample.net", False),
        ("*.example.net", "*.example.net", False),
        ("", "example.net", False),
        ("example.net", "", False),
    ],
)
def test_mx_matching(pattern: str, host: str, matches: bool) -> None:
    assert mx_matches(pattern, host) is matches


def test_policy_matches_any_of_its_patterns() -> None:
    policy = parse_policy(RFC_EXAMPLE)
    assert policy.matches("backupmx.example.com")
    assert policy.matches("x.example.net")
    assert not policy.matches("evil.example.org")


# -- our own policy, read back by the parser -------------------------------------------
def test_own_policy_parses_back() -> None:
    own = own_policy("enforce", 86400, ["MX.Example.ORG."])
    assert own.text.endswith("\r\n")
    assert parse_policy(own.text.encode()) == Policy(PolicyMode.ENFORCE, ("mx.example.org",), 86400)
    assert parse_sts_record(own.txt_record.encode()) == StsRecord(own.id)


def test_own_policy_id_changes_with_the_policy() -> None:
    a = own_policy("testing", 86400, ["mx.example.org"])
    b = own_policy("enforce", 86400, ["mx.example.org"])
    assert a.id != b.id
    assert a.id == own_policy("testing", 86400, ["mx.example.org"]).id


@pytest.mark.parametrize(
    ("mode", "max_age", "hosts"),
    [("strict", 1, ["a.example"]), ("enforce", MAX_AGE_MAX + 1, ["a.example"]), ("none", 1, [])],
)
def test_own_policy_refuses_bad_settings(mode: str, max_age: int, hosts: list[str]) -> None:
    with pytest.raises(ValueError):
        own_policy(mode, max_age, hosts)
