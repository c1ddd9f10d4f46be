"""Macro parsing and expansion: the worked examples of RFC 7208 §7.4 and the grammar
rules of §7.1.

Spec: RFC 7208 §7.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from postel.spf import (
    SPF_DOMAIN_NAME_MAX,
    MacroContext,
    SpfSyntaxError,
    expand,
    expand_domain,
    expand_explanation,
    parse_domain_spec,
    parse_macro_string,
)

CTX4 = MacroContext(
    sender="strong-bad@email.example.com",
    local_part="strong-bad",
    sender_domain="email.example.com",
    domain="email.example.com",
    ip=IPv4Address("192.0.2.3"),
    helo="mx.example.org",
    validated_domain="mx.example.org",
    receiver="mx.receiver.example",
    timestamp=1700000000,
)
CTX6 = MacroContext(
    sender=CTX4.sender,
    local_part=CTX4.local_part,
    sender_domain=CTX4.sender_domain,
    domain=CTX4.domain,
    ip=IPv6Address("2001:db8::cb01"),
    helo=CTX4.helo,
)


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ("%{p}.%{h}", "mx.example.org.mx.example.org"),
        ("%%%_%-", "% %20"),
        ("%{S}", "strong-bad%40email.example.com"),
    ],
)
def test_rfc7208_examples_ipv4(macro: str, expansion: str) -> None:
    assert expand(parse_macro_string(macro), CTX4) == expansion


def test_rfc7208_example_ipv6() -> None:
    macro = parse_domain_spec("%{ir}.%{v}._spf.%{d2}")
    assert expand(macro, CTX6) == (
        "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com"
    )


def test_unvalidated_p_is_unknown() -> None:
    assert expand(parse_macro_string("%{p}"), CTX6) == "unknown"


def test_explanation_letters_only_in_explain_strings() -> None:
    text = parse_macro_string("%{c} at %{t} via %{r}: %{i}", explain=True)
    assert (
        expand_explanation(text, CTX4)
        == "192.0.2.3 at 1700000000 via mx.receiver.example: 192.0.2.3"
    )
    for letter in "crt":
        with pytest.raises(SpfSyntaxError):
            parse_domain_spec(f"%{{{letter}}}.example.com")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example",
        "example.",
        "example.com:8080",
        "abc.123",
        "example.-com",
        "foo%.example.com",
        "foo%(ir).example.com",
        "%{a}.example.com",
        "%{d0}.example.com",
        "%{d",
        "exa mple.com",
        "example.com\x00",
    ],
)
def test_bad_domain_specs(text: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_domain_spec(text)


@pytest.mark.parametrize(
    "text",
    ["example.com", "example.com.", "%{d}", "%{d}%%", "foo:bar/baz.example.com", "x.xn--zckzah"],
)
def test_good_domain_specs(text: str) -> None:
    assert parse_domain_spec(text).text == text


def test_long_names_lose_labels_on_the_left() -> None:
    ctx = MacroContext(
        sender="a@" + "x" * 60 + ".example.com",
        local_part="a",
        sender_domain="x" * 60 + ".example.com",
        domain="example.com",
        ip=IPv4Address("192.0.2.1"),
        helo="h.example",
    )
    spec = parse_domain_spec("%{o}.%{o}.%{o}.%{o}.example.com.")
    full = expand(spec, ctx)[:-1]
    name = expand_domain(spec, ctx)
    assert len(full) > SPF_DOMAIN_NAME_MAX >= len(name)
    assert full.endswith("." + name)
    assert len(full.split(".")) - len(name.split(".")) == 1  # 307 -> 246 characters


def test_explanation_is_printable_ascii() -> None:
    ctx = MacroContext(
        sender="jö\r\n@example.com",
        local_part="jö\r\n",
        sender_domain="example.com",
        domain="example.com",
        ip=IPv4Address("192.0.2.1"),
        helo="h.example",
    )
    text = parse_macro_string("sender %{l} refused", explain=True)
    assert expand_explanation(text, ctx) == "sender j??? refused"
