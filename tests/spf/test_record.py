"""SPF record selection and parsing. Spec: RFC 7208 §4.5, §4.6, §5, §6, §12."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

import pytest

from postel.spf import (
    SPF_RECORD_LENGTH_MAX,
    SPF_TERMS_MAX,
    MechanismKind,
    Qualifier,
    SpfSyntaxError,
    is_spf_record,
    parse_record,
)


@pytest.mark.parametrize(
    ("txt", "spf"),
    [
        (b"v=spf1", True),
        (b"V=SpF1 -all", True),
        (b"v=spf1 -all", True),
        (b"v=spf10", False),
        (b"v=spf1mx", False),
        (b"spf1 -all", False),
        (b"", False),
    ],
)
def test_record_selection(txt: bytes, spf: bool) -> None:
    assert is_spf_record(txt) is spf


def test_parse_a_full_record() -> None:
    record = parse_record(
        b"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a/24//64 mx:mail.example.com "
        b"~ptr:example.com ?exists:%{ir}.bl.example.net -include:_spf.example.org "
        b"-all redirect=other.example.com exp=why.example.com x-note=%{d}"
    )
    kinds = [m.kind for m in record.mechanisms]
    assert kinds == [
        MechanismKind.IP4,
        MechanismKind.IP6,
        MechanismKind.A,
        MechanismKind.MX,
        MechanismKind.PTR,
        MechanismKind.EXISTS,
        MechanismKind.INCLUDE,
        MechanismKind.ALL,
    ]
    ip4, ip6, a, mx, ptr, exists, include, all_ = record.mechanisms
    assert ip4.network == IPv4Network("192.0.2.0/24")
    assert ip6.network == IPv6Network("2001:db8::/32")
    assert (a.target, a.cidr4, a.cidr6) == (None, 24, 64)
    assert mx.target is not None and mx.target.text == "mail.example.com"
    assert ptr.qualifier is Qualifier.SOFTFAIL
    assert exists.qualifier is Qualifier.NEUTRAL
    assert include.qualifier is Qualifier.FAIL
    assert all_.qualifier is Qualifier.FAIL
    assert record.redirect is not None and record.redirect.text == "other.example.com"
    assert record.exp is not None and record.exp.text == "why.example.com"
    assert [m.name for m in record.modifiers] == ["x-note"]


@pytest.mark.parametrize(
    "txt",
    [
        "v=spf1 -all.",
        "v=spf1 all:foo",
        "v=spf1 all/8",
        "v=spf1 moo",
        "v=spf1 ip4",
        "v=spf1 ip4:1.2.3",
        "v=spf1 ip4:1.2.3.4/33",
        "v=spf1 ip4:1.2.3.4/032",
        "v=spf1 ip4:1.2.3.4//32",
        "v=spf1 ip4:01.2.3.4",
        "v=spf1 ip6::CAFE::BABE",
        "v=spf1 ip6:fe80::1%eth0",
        "v=spf1 ip6:::1/129",
        "v=spf1 a/24/64",
        "v=spf1 a//129",
        "v=spf1 a:",
        "v=spf1 ptr/0",
        "v=spf1 include",
        "v=spf1 exists",
        "v=spf1 exp=",
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 exp=a.example exp=b.example",
        "v=spf1 1up=foo",
        "v=spf1 =all",
        "v=spf1 foo=%abc",
        "v=spf1 a:ctrl.example.com\rptr",
        "v=spf1 a:é.example.com",
        "v=spf1\t-all",
        "v=spf1 " + "a " * (SPF_TERMS_MAX + 1),
        "v=spf1 " + "x" * SPF_RECORD_LENGTH_MAX,
        "spf1 -all",
    ],
)
def test_syntax_errors(txt: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(txt)


def test_non_ascii_bytes_are_a_syntax_error() -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(b"v=spf1 \x80a -all")


def test_spaces_and_case() -> None:
    record = parse_record("V=SPF1   A  -ALL ")
    assert [m.kind for m in record.mechanisms] == [MechanismKind.A, MechanismKind.ALL]
