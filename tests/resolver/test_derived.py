"""``DerivedCache``: a result is reused exactly while every DNS answer it read is still
the one cached (pure logic over a stand-in resolver that reports which entry it holds
until when; the real resolver's side is in tests/spf/test_real_dns.py and
tests/pipeline/test_kept_results.py).

Spec: RFC 1035 §7.4, RFC 2181 §8.
"""

from __future__ import annotations

import datetime as dt
from ipaddress import IPv4Address, IPv6Address, ip_address

from hypothesis import given
from hypothesis import strategies as st

from postel.clock import FixedClock
from postel.pipeline.authentication import keepable_from
from postel.resolver import MxAnswer
from postel.resolver.derived import DerivedCache, RecordingResolver

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class _Answers:
    """Answers every lookup with nothing. ``cached`` maps (type, name) to the expiry
    time of the entry held (absent: not cached); changing it stands for the cache
    evicting, expiring or replacing an entry."""

    def __init__(self, clock: FixedClock, ttls: dict[tuple[str, str], float]) -> None:
        self.clock = clock
        self.cached = {key: clock.monotonic() + ttl for key, ttl in ttls.items()}

    def expires_at(self, rdtype: str, name: str) -> float | None:
        expires = self.cached.get((rdtype, name))
        if expires is None or expires <= self.clock.monotonic():
            return None
        return expires

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
    cache: DerivedCache[str, str] = DerivedCache(resolver, 8)
    await _computed(cache, "k", "v", names)
    clock.advance(min(ttls) - 0.5)
    assert cache.get("k") == "v"
    clock.advance(0.5)
    assert cache.get("k") is None


async def test_an_answer_replaced_or_evicted_takes_the_result_with_it() -> None:
    clock = FixedClock(T0)
    resolver = _Answers(clock, {("TXT", "a.test"): 60, ("TXT", "b.test"): 60})
    cache: DerivedCache[str, str] = DerivedCache(resolver, 8)
    await _computed(cache, "replaced", "v", ["a.test"])
    await _computed(cache, "evicted", "v", ["b.test"])
    resolver.cached[("TXT", "a.test")] += 3600  # a newer answer, with a longer TTL
    del resolver.cached[("TXT", "b.test")]  # the cache's size bound dropped it
    assert cache.get("replaced") is None and cache.get("evicted") is None


async def test_an_answer_replaced_while_the_result_was_computed_is_the_one_read() -> None:
    """The first answer read expires and is fetched again (longer TTL) while the
    evaluation waits on another lookup: the result goes with the answer it read."""
    clock = FixedClock(T0)
    resolver = _Answers(clock, {("TXT", "first.test"): 1, ("TXT", "slow.test"): 3600})
    cache: DerivedCache[str, str] = DerivedCache(resolver, 8)
    recording = cache.recording()
    assert recording is not None
    await recording.txt("first.test")
    clock.advance(2)
    resolver.cached[("TXT", "first.test")] = clock.monotonic() + 3600  # refetched
    await recording.txt("slow.test")
    cache.keep("k", "v", recording)
    assert cache.get("k") is None


async def test_nothing_is_kept_without_every_answer_cached() -> None:
    clock = FixedClock(T0)
    cache: DerivedCache[str, str] = DerivedCache(_Answers(clock, {("TXT", "a.test"): 60}), 8)
    await _computed(cache, "uncached", "v", ["a.test", "b.test"])  # b.test: TTL 0
    await _computed(cache, "read-none", "v", [])
    assert cache.get("uncached") is None and cache.get("read-none") is None


async def test_the_cache_is_bounded_and_off_for_a_resolver_without_expiry() -> None:
    clock = FixedClock(T0)
    cache: DerivedCache[str, str] = DerivedCache(_Answers(clock, {("TXT", "a.test"): 60}), 3)
    for i in range(10):
        await _computed(cache, f"k{i}", "v", ["a.test"])
    assert len(cache) <= 3
    plain = RecordingResolver(_Answers(clock, {}), _Answers(clock, {}))  # no expires_at
    off: DerivedCache[str, str] = DerivedCache(plain, 8)  # type: ignore[arg-type]
    assert not off.enabled and off.recording() is None and off.get("k") is None


async def test_the_recording_notes_every_kind_of_lookup() -> None:
    clock = FixedClock(T0)
    kinds = [("TXT", "t.test"), ("A", "a.test"), ("AAAA", "aaaa.test"), ("MX", "mx.test")]
    answers = _Answers(clock, {**dict.fromkeys(kinds, 60), ("PTR", "192.0.2.1"): 60})
    recording = RecordingResolver(answers, answers)
    await recording.txt("t.test")
    await recording.a("a.test")
    await recording.aaaa("aaaa.test")
    await recording.mx("mx.test")
    await recording.ptr(ip_address("192.0.2.1"))
    assert [(t, n) for t, n, _ in recording.read] == [*kinds, ("PTR", "192.0.2.1")]
    assert recording.complete


def test_dmarc_keys_are_bounded_in_fields_and_octets() -> None:
    assert keepable_from([b"<a@example.test>"])
    assert not keepable_from([b"<a@example.test>"] + [b""] * 9_999)  # empty From: fields
    assert not keepable_from([b"x" * 2000])
