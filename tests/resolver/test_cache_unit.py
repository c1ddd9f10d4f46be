"""TtlCache on its own: expiry by the injected clock, LRU bound, TTL 0."""

from __future__ import annotations

import datetime as dt

import pytest

from postel.clock import FixedClock
from postel.resolver.cache import TtlCache

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_expiry_follows_clock() -> None:
    clock = FixedClock(T0)
    cache: TtlCache[str, int] = TtlCache(clock=clock, max_entries=4)
    cache.put("a", 1, 10)
    clock.advance(9.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_least_recently_used_evicted() -> None:
    cache: TtlCache[str, int] = TtlCache(clock=FixedClock(T0), max_entries=2)
    cache.put("a", 1, 10)
    cache.put("b", 2, 10)
    assert cache.get("a") == 1
    cache.put("c", 3, 10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_zero_ttl_and_zero_size_store_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(clock=FixedClock(T0), max_entries=2)
    cache.put("a", 1, 0)
    assert cache.get("a") is None
    off: TtlCache[str, int] = TtlCache(clock=FixedClock(T0), max_entries=0)
    off.put("a", 1, 10)
    assert off.get("a") is None
    with pytest.raises(ValueError):
        TtlCache(clock=FixedClock(T0), max_entries=-1)
