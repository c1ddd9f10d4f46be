"""``DerivedCache``: a result is reused exactly while every DNS answer it read is still
cached (pure logic over a stand-in resolver that reports TTLs; the real resolver's
side is in tests/spf/test_real_dns.py and tests/pipeline/test_kept_results.py).

Spec: RFC 1035 §7.4, RFC 2181 §8.
"""

from __future__ import annotations

import datetime as dt
from ipaddress import IPv4Address, IPv6Address, ip_address

from hypothesis import given
from hypothesis import strategies as st

from postel.clock import FixedClock
from postel.resolver import MxAnswer
from postel.resolver.derived import DerivedCache, RecordingResolver

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class _Answers:
    """Answers every lookup with nothing; ``ttls`` says what stays cached how long
    (seconds from the clock's start); absent means not cached."""

    def __init__(self, clock: FixedClock, ttls: dict[tuple[str, str], float]) -> None:
        self.clock = clock
        self.ttls = ttls
        self.start = clock.monotonic()
        self.generation = 0

    def ttl_left(self, rdtype: str, name: str) -> float | None:
        ttl = self.ttls.get((rdtype, name))
        if ttl is None:
            return None
        left = self.start + ttl - self.clock.monotonic()
        return left if left > 0 else None

    async def txt(self, name: str) -> tuple[bytes, ...]:
        return ()

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        return ()

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        return ()

    async def mx(self, domain: str) -> MxAnswer:
        return MxAnswer(domain, (), False, 60)

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        return ()


async def _computed(cache: DerivedCache[str, str], key: str, value: str, asks: list[str]) -> None:
    recording = cache.recording()
    assert recording is not None
    for name in asks:
        await recording.txt(name)
    cache.keep(key, value, recording)


@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=5))
async def test_a_result_lives_as_long_as_its_shortest_lived_answer(ttls: list[int]) -> None:
    clock = FixedClock(T0)
    names = [f"n{i}.test" for i in range(len(ttls))]
    resolver = _Answers(clock, {("TXT", n): t for n, t in zip(names, ttls, strict=True)})
    cache: DerivedCache[str, str] = DerivedCache(resolver, clock, 8)
    await _computed(cache, "k", "v", names)
    clock.advance(min(ttls) - 0.5)
    assert cache.get("k") == "v"
    clock.advance(0.5)
    assert cache.get("k") is None


async def test_nothing_is_kept_without_every_answer_cached() -> None:
    clock = FixedClock(T0)
    cache: DerivedCache[str, str] = DerivedCache(_Answers(clock, {("TXT", "a.test"): 60}), clock, 8)
    await _computed(cache, "uncached", "v", ["a.test", "b.test"])  # b.test: TTL 0
    await _computed(cache, "read-none", "v", [])
    assert cache.get("uncached") is None and cache.get("read-none") is None


async def test_a_dropped_resolver_cache_drops_the_results() -> None:
    clock = FixedClock(T0)
    resolver = _Answers(clock, {("TXT", "a.test"): 60})
    cache: DerivedCache[str, str] = DerivedCache(resolver, clock, 8)
    await _computed(cache, "k", "v", ["a.test"])
    resolver.generation += 1
    assert cache.get("k") is None
    recording = cache.recording()
    assert recording is not None
    await recording.txt("a.test")
    resolver.generation += 1  # dropped while the result was computed
    cache.keep("k", "v", recording)
    assert cache.get("k") is None


async def test_the_cache_is_bounded_and_off_for_a_resolver_without_ttls() -> None:
    clock = FixedClock(T0)
    cache: DerivedCache[str, str] = DerivedCache(_Answers(clock, {("TXT", "a.test"): 60}), clock, 3)
    for i in range(10):
        await _computed(cache, f"k{i}", "v", ["a.test"])
    assert sum(cache.get(f"k{i}") is not None for i in range(10)) <= 3
    plain = RecordingResolver(_Answers(clock, {}), 0)  # has no ttl_left
    off: DerivedCache[str, str] = DerivedCache(plain, clock, 8)  # type: ignore[arg-type]
    assert not off.enabled and off.recording() is None and off.get("k") is None


async def test_the_recording_notes_every_kind_of_lookup() -> None:
    clock = FixedClock(T0)
    recording = RecordingResolver(_Answers(clock, {}), 0)
    await recording.txt("t.test")
    await recording.a("a.test")
    await recording.aaaa("aaaa.test")
    await recording.mx("mx.test")
    await recording.ptr(ip_address("192.0.2.1"))
    assert recording.asked == [
        ("TXT", "t.test"),
        ("A", "a.test"),
        ("AAAA", "aaaa.test"),
        ("MX", "mx.test"),
        ("PTR", "192.0.2.1"),
    ]
