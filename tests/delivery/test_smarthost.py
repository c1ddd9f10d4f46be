"""Smarthost routing (RFC 6409 §3) as pure unit tests over a scripted resolver."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from postel.delivery.mx import NoRoute, Route
from postel.delivery.smarthost import (
    Smarthost,
    SmarthostTls,
    parse_smarthost_address,
    smarthost_route,
)
from postel.resolver import DnsTempError

from .test_mx import ScriptedResolver


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relay.example.net", ("relay.example.net", 587)),
        ("relay.example.net:465", ("relay.example.net", 465)),
        ("192.0.2.7:2525", ("192.0.2.7", 2525)),
        ("[2001:db8::1]:587", ("2001:db8::1", 587)),
        ("[2001:db8::1]", ("2001:db8::1", 587)),
        ("2001:db8::1", ("2001:db8::1", 587)),
    ],
)
def test_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_smarthost_address(text) == expected


@pytest.mark.parametrize("text", ["", ":25", "relay:0", "relay:x", "relay:70000", "[::1]x"])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_smarthost_address(text)


def test_credentials_go_together_and_password_is_not_shown() -> None:
    with pytest.raises(ValueError):
        Smarthost("relay.example.net", username="u")
    relay = Smarthost("relay.example.net", username="u", password="secret")
    assert "secret" not in repr(relay)
    assert relay.tls is SmarthostTls.STARTTLS


async def test_every_domain_routes_to_the_smarthost() -> None:
    resolver = ScriptedResolver({}, a={"relay.example.net": (IPv4Address("192.0.2.7"),)})
    relay = Smarthost("relay.example.net")
    for domain in ("a.example", "b.example"):
        route = await smarthost_route(relay, domain, resolver, max_addresses=5)
        assert isinstance(route, Route) and route.domain == domain
        assert [(t.host, str(t.address)) for t in route.targets] == [
            ("relay.example.net", "192.0.2.7")
        ]
    assert not any(q.startswith("MX") for q in resolver.asked)  # no MX lookups at all


async def test_ip_literal_needs_no_dns() -> None:
    resolver = ScriptedResolver({})
    route = await smarthost_route(Smarthost("2001:db8::1"), "x.example", resolver, max_addresses=5)
    assert isinstance(route, Route) and route.targets[0].address == IPv6Address("2001:db8::1")
    assert resolver.asked == []


async def test_relay_trouble_defers_never_fails() -> None:
    """The relay is our configuration: its absence is never the recipient's permanent
    failure. Spec: RFC 3463 (4.4.3, 4.4.4)."""
    down = ScriptedResolver({}, a={"relay.example.net": DnsTempError("timeout")})
    route = await smarthost_route(Smarthost("relay.example.net"), "x", down, max_addresses=5)
    assert isinstance(route, NoRoute) and not route.permanent and "4.4.3" in route.reply
    empty = ScriptedResolver({})
    route = await smarthost_route(Smarthost("relay.example.net"), "x", empty, max_addresses=5)
    assert isinstance(route, NoRoute) and not route.permanent and "4.4.4" in route.reply
