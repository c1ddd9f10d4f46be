"""MX selection (RFC 5321 §5.1, RFC 7505) as pure unit tests over a scripted resolver."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address

import pytest

from postel.delivery import NoRoute, Route, find_route, order_hosts
from postel.resolver import DnsNxDomain, DnsTempError, MxAnswer, MxRecord


class ScriptedResolver:
    """Answers from dicts; a name missing from ``a``/``aaaa`` is NODATA; an exception
    value is raised."""

    def __init__(
        self,
        mx: dict[str, MxAnswer | Exception],
        a: dict[str, tuple[IPv4Address, ...] | Exception] | None = None,
        aaaa: dict[str, tuple[IPv6Address, ...] | Exception] | None = None,
    ) -> None:
        self._mx, self._a, self._aaaa = mx, a or {}, aaaa or {}
        self.asked: list[str] = []

    async def mx(self, domain: str) -> MxAnswer:
        self.asked.append(f"MX {domain}")
        got = self._mx[domain]
        if isinstance(got, Exception):
            raise got
        return got

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        self.asked.append(f"A {name}")
        got = self._a.get(name, ())
        if isinstance(got, Exception):
            raise got
        return got

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        self.asked.append(f"AAAA {name}")
        got = self._aaaa.get(name, ())
        if isinstance(got, Exception):
            raise got
        return got

    async def txt(self, name: str) -> tuple[bytes, ...]:
        raise AssertionError("not used")

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        raise AssertionError("not used")


def mx(domain: str, *records: tuple[int, str], null: bool = False) -> MxAnswer:
    return MxAnswer(domain, tuple(MxRecord(p, h) for p, h in records), null, 300)


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


async def route(
    resolver: ScriptedResolver, domain: str, *, max_hosts: int = 10, max_addresses: int = 10
) -> Route | NoRoute:
    return await find_route(
        domain, resolver, random.Random(1), max_hosts=max_hosts, max_addresses=max_addresses
    )


async def test_hosts_by_preference_then_addresses() -> None:
    resolver = ScriptedResolver(
        {"example.test": mx("example.test", (20, "backup.example.test"), (10, "mx.example.test"))},
        a={
            "mx.example.test": (ip("192.0.2.1"), ip("192.0.2.2")),
            "backup.example.test": (ip("192.0.2.9"),),
        },
        aaaa={"mx.example.test": (IPv6Address("2001:db8::1"),)},
    )
    got = await route(resolver, "example.test")
    assert isinstance(got, Route)
    assert [(t.host, str(t.address), t.preference) for t in got.targets] == [
        ("mx.example.test", "192.0.2.1", 10),
        ("mx.example.test", "192.0.2.2", 10),
        ("mx.example.test", "2001:db8::1", 10),
        ("backup.example.test", "192.0.2.9", 20),
    ]


def test_equal_preferences_are_shuffled_with_the_injected_rng() -> None:
    records = (
        *(MxRecord(10, f"mx{i}.example.test") for i in range(6)),
        MxRecord(5, "first.example.test"),
        MxRecord(50, "last.example.test"),
    )
    orders = set()
    for seed in range(20):
        ordered = order_hosts(records, random.Random(seed))
        assert ordered[0].exchange == "first.example.test"
        assert ordered[-1].exchange == "last.example.test"
        assert sorted(r.exchange for r in ordered[1:-1]) == [
            f"mx{i}.example.test" for i in range(6)
        ]
        orders.add(tuple(r.exchange for r in ordered))
    assert len(orders) > 1  # the order among equals varies with the randomness
    again = [order_hosts(records, random.Random(7)) for _ in range(2)]
    assert again[0] == again[1]  # and is reproducible from the seed


async def test_implicit_mx_is_the_domain_itself() -> None:
    resolver = ScriptedResolver(
        {"plain.test": mx("plain.test")}, a={"plain.test": (ip("192.0.2.10"),)}
    )
    got = await route(resolver, "plain.test")
    assert isinstance(got, Route)
    assert [(t.host, str(t.address), t.preference) for t in got.targets] == [
        ("plain.test", "192.0.2.10", 0)
    ]


async def test_null_mx_fails_at_once_without_address_lookups() -> None:
    resolver = ScriptedResolver({"nomail.test": mx("nomail.test", null=True)})
    got = await route(resolver, "nomail.test")
    assert isinstance(got, NoRoute) and got.permanent
    assert got.reply.startswith("556 5.1.10")
    assert resolver.asked == ["MX nomail.test"]


async def test_nxdomain_is_permanent() -> None:
    resolver = ScriptedResolver({"gone.test": DnsNxDomain("gone.test")})
    got = await route(resolver, "gone.test")
    assert isinstance(got, NoRoute) and got.permanent and got.reply.startswith("550 5.1.2")


async def test_temporary_dns_failure_defers() -> None:
    resolver = ScriptedResolver({"flaky.test": DnsTempError("SERVFAIL")})
    got = await route(resolver, "flaky.test")
    assert isinstance(got, NoRoute) and not got.permanent and got.reply.startswith("451 4.4.3")


async def test_hosts_without_addresses_are_skipped() -> None:
    resolver = ScriptedResolver(
        {"d.test": mx("d.test", (10, "dead.d.test"), (20, "flaky.d.test"), (30, "ok.d.test"))},
        a={
            "dead.d.test": DnsNxDomain("dead.d.test"),
            "flaky.d.test": DnsTempError("x"),
            "ok.d.test": (ip("192.0.2.3"),),
        },
    )
    got = await route(resolver, "d.test")
    assert isinstance(got, Route) and [t.host for t in got.targets] == ["ok.d.test"]


@pytest.mark.parametrize(
    ("flaky", "permanent", "prefix"), [(True, False, "451 4.4.3"), (False, True, "550 5.4.4")]
)
async def test_no_usable_host(flaky: bool, permanent: bool, prefix: str) -> None:
    failure: Exception = DnsTempError("timeout") if flaky else DnsNxDomain("mx.d.test")
    resolver = ScriptedResolver(
        {"d.test": mx("d.test", (10, "mx.d.test"))}, a={"mx.d.test": failure}
    )
    got = await route(resolver, "d.test")
    assert isinstance(got, NoRoute) and got.permanent is permanent and got.reply.startswith(prefix)


async def test_hosts_and_addresses_are_bounded() -> None:
    hosts = [(10 * i, f"mx{i}.b.test") for i in range(1, 9)]
    resolver = ScriptedResolver(
        {"b.test": mx("b.test", *hosts)},
        a={h: (ip(f"192.0.2.{i}"), ip(f"198.51.100.{i}")) for i, (_, h) in enumerate(hosts, 1)},
    )
    got = await route(resolver, "b.test", max_hosts=3, max_addresses=5)
    assert isinstance(got, Route)
    assert [t.host for t in got.targets] == ["mx1.b.test"] * 2 + ["mx2.b.test"] * 2 + ["mx3.b.test"]
    assert not any("mx4" in q for q in resolver.asked)


async def test_address_families_can_be_restricted() -> None:
    resolver = ScriptedResolver(
        {"f.test": mx("f.test", (10, "mx.f.test"))},
        a={"mx.f.test": (ip("192.0.2.1"),)},
        aaaa={"mx.f.test": (IPv6Address("2001:db8::1"),)},
    )
    got = await find_route(
        "f.test", resolver, random.Random(1), max_hosts=5, max_addresses=5, ipv6=False
    )
    assert isinstance(got, Route) and [str(t.address) for t in got.targets] == ["192.0.2.1"]
