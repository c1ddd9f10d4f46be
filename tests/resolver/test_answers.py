"""Resolver answers against a real authoritative server (Knot DNS on loopback)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address

import pytest

from dnsserver import DnsServer
from postel.clock import SystemClock
from postel.resolver import (
    DnsNxDomain,
    DnsPermError,
    DnsPythonResolver,
    MxAnswer,
    MxRecord,
)

from .zones import LONG_TXT_STRINGS, SOA_MINIMUM_S, ZONES

DNS_ZONES = ZONES


async def test_mx_sorted_by_preference_ties_kept(dns_resolver: DnsPythonResolver) -> None:
    answer = await dns_resolver.mx("multi.example.test")
    assert answer.domain == "multi.example.test"
    assert [r.preference for r in answer.records] == [10, 10, 20, 30]
    assert {r.exchange for r in answer.records[:2]} == {"mx-a.example.test", "mx-c.example.test"}
    assert answer.records[2:] == (
        MxRecord(20, "mx-b.example.test"),
        MxRecord(30, "mx-d.example.net"),
    )
    assert not answer.null_mx and not answer.nodata
    assert 0 < answer.ttl <= 300


async def test_null_mx(dns_resolver: DnsPythonResolver) -> None:
    answer = await dns_resolver.mx("NullMX.Example.Test.")
    assert answer == MxAnswer("nullmx.example.test", (), True, answer.ttl)
    assert not answer.nodata


async def test_no_mx_is_nodata_with_addresses(dns_resolver: DnsPythonResolver) -> None:
    answer = await dns_resolver.mx("nomx.example.test")
    assert answer.nodata and answer.records == () and not answer.null_mx
    assert 0 < answer.ttl <= SOA_MINIMUM_S
    assert await dns_resolver.a("nomx.example.test") == (IPv4Address("192.0.2.10"),)
    assert await dns_resolver.aaaa("nomx.example.test") == (IPv6Address("2001:db8::10"),)


async def test_nxdomain(dns_resolver: DnsPythonResolver) -> None:
    with pytest.raises(DnsNxDomain) as info:
        await dns_resolver.mx("nope.example.test")
    assert info.value.name == "nope.example.test"
    with pytest.raises(DnsNxDomain):
        await dns_resolver.txt("nope.example.test")


async def test_nodata_for_txt_and_aaaa(dns_resolver: DnsPythonResolver) -> None:
    assert await dns_resolver.txt("nomx.example.test") == ()
    assert await dns_resolver.aaaa("short.example.test") == ()


async def test_txt_strings_joined_per_record(dns_resolver: DnsPythonResolver) -> None:
    records = await dns_resolver.txt("spf.example.test")
    assert sorted(records) == [b"second record", b"v=spf1 ip4:192.0.2.0/24 -all"]


async def test_long_txt_over_255(dns_resolver: DnsPythonResolver) -> None:
    (record,) = await dns_resolver.txt("longtxt.example.test")
    assert record == "".join(LONG_TXT_STRINGS).encode()
    assert len(record) == 513


async def test_ptr_v4_and_v6(dns_resolver: DnsPythonResolver) -> None:
    names = await dns_resolver.ptr(IPv4Address("192.0.2.10"))
    assert sorted(names) == ["alias.example.test", "nomx.example.test"]
    assert await dns_resolver.ptr(IPv6Address("2001:db8::10")) == ("nomx.example.test",)
    with pytest.raises(DnsNxDomain):
        await dns_resolver.ptr(IPv4Address("192.0.2.99"))


async def test_cname_chain_followed(dns_resolver: DnsPythonResolver) -> None:
    assert await dns_resolver.a("alias.example.test") == (IPv4Address("192.0.2.10"),)
    assert (await dns_resolver.mx("alias.example.test")).nodata


async def test_cname_to_missing_name_is_nxdomain(dns_resolver: DnsPythonResolver) -> None:
    with pytest.raises(DnsNxDomain):
        await dns_resolver.a("dangling.example.test")


async def test_u_label_converted_to_a_label(dns_resolver: DnsPythonResolver) -> None:
    assert await dns_resolver.a("bücher.example.test") == (IPv4Address("192.0.2.20"),)
    assert await dns_resolver.a("xn--bcher-kva.example.test") == (IPv4Address("192.0.2.20"),)


async def test_oversized_rrset_rejected_over_tcp(dns_resolver: DnsPythonResolver) -> None:
    # 101 A records exceed the EDNS payload, so this also exercises the TCP retry.
    with pytest.raises(DnsPermError, match="exceed"):
        await dns_resolver.a("many.example.test")


@pytest.mark.parametrize("name", ["", ".", "a..example.test", "x" * 64 + ".example.test"])
async def test_invalid_names_are_perm_errors(dns_resolver: DnsPythonResolver, name: str) -> None:
    with pytest.raises(DnsPermError):
        await dns_resolver.a(name)


async def test_many_concurrent_lookups(dns_server: DnsServer) -> None:
    resolver = DnsPythonResolver(
        [dns_server.nameserver], clock=SystemClock(), timeout=2.0, lifetime=4.0, cache_size=0
    )
    names = ["nomx", "alias", "short", "xn--bcher-kva"] * 50
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(resolver.a(f"{n}.example.test")) for n in names]
    results = [task.result() for task in tasks]
    expected = {
        "nomx": (IPv4Address("192.0.2.10"),),
        "alias": (IPv4Address("192.0.2.10"),),
        "short": (IPv4Address("192.0.2.30"),),
        "xn--bcher-kva": (IPv4Address("192.0.2.20"),),
    }
    assert results == [expected[n] for n in names]
