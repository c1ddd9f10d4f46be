"""Caching against a real server: hits, TTL expiry and negative caching (RFC 2308).

Each test starts its own server and stops it after the first lookups: a later answer
can then only come from the cache, and a lookup after expiry fails as temporary.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from dnsserver import DnsServer
from postel.clock import FixedClock
from postel.resolver import DnsNxDomain, DnsPythonResolver, DnsTempError

from .zones import SOA_MINIMUM_S, ZONES

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SHORT_TTL_S = 30  # "short" in zones.EXAMPLE_TEST


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONES) as running:
        yield running


def _resolver(server: DnsServer, clock: FixedClock, cache_size: int = 16) -> DnsPythonResolver:
    return DnsPythonResolver(
        [server.nameserver], clock=clock, timeout=0.1, lifetime=0.2, cache_size=cache_size
    )


async def test_positive_answer_cached_until_ttl(server: DnsServer) -> None:
    clock = FixedClock(T0)
    resolver = _resolver(server, clock)
    expected = (IPv4Address("192.0.2.30"),)
    assert await resolver.a("short.example.test") == expected
    server.stop()
    clock.advance(SHORT_TTL_S - 1)
    assert await resolver.a("SHORT.example.test.") == expected
    clock.advance(1)
    with pytest.raises(DnsTempError):
        await resolver.a("short.example.test")


async def test_nxdomain_and_nodata_cached_for_negative_ttl(server: DnsServer) -> None:
    clock = FixedClock(T0)
    resolver = _resolver(server, clock)
    with pytest.raises(DnsNxDomain):
        await resolver.a("nope.example.test")
    assert (await resolver.mx("nomx.example.test")).nodata
    server.stop()
    clock.advance(SOA_MINIMUM_S - 1)
    with pytest.raises(DnsNxDomain):
        await resolver.a("nope.example.test")
    assert (await resolver.mx("nomx.example.test")).nodata
    clock.advance(1)
    with pytest.raises(DnsTempError):
        await resolver.a("nope.example.test")
    with pytest.raises(DnsTempError):
        await resolver.mx("nomx.example.test")


async def test_cache_is_bounded_and_can_be_disabled(server: DnsServer) -> None:
    clock = FixedClock(T0)
    bounded = _resolver(server, clock, cache_size=1)
    uncached = _resolver(server, clock, cache_size=0)
    await bounded.a("nomx.example.test")
    await bounded.a("short.example.test")  # evicts nomx
    await uncached.a("nomx.example.test")
    server.stop()
    assert await bounded.a("short.example.test") == (IPv4Address("192.0.2.30"),)
    with pytest.raises(DnsTempError):
        await bounded.a("nomx.example.test")
    with pytest.raises(DnsTempError):
        await uncached.a("nomx.example.test")


async def test_prefetch_fills_the_cache_and_starts_nothing_for_a_cached_answer(
    server: DnsServer,
) -> None:
    clock = FixedClock(T0)
    resolver = _resolver(server, clock)
    resolver.prefetch("TXT", "spf.example.test")
    resolver.prefetch("PTR", "192.0.2.10")
    resolver.prefetch("A", "missing.example.test")
    resolver.prefetch("SOA", "example.test")  # not a type it fetches: ignored
    resolver.prefetch("PTR", "not an address")  # ignored, no exception
    for _ in range(100):  # the lookups run in the background
        await asyncio.sleep(0.01)
        if not resolver._pending:
            break
    server.stop()  # from here on only the cache answers
    assert len(await resolver.txt("spf.example.test")) == 2
    names = await resolver.ptr(IPv4Address("192.0.2.10"))
    assert set(names) == {"nomx.example.test", "alias.example.test"}
    with pytest.raises(DnsNxDomain):
        await resolver.a("missing.example.test")
    resolver.prefetch("TXT", "spf.example.test")  # cached: nothing is started
    assert not resolver._pending
