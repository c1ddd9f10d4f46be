"""A bounded, TTL-respecting answer cache with an injected clock.

Entries expire ``ttl`` seconds after they are stored (by ``Clock.monotonic``); the
least recently used entry is dropped when the cache is full. Callers choose the TTL,
already capped (RFC 2308 §5 for negative answers, RFC 8767 §4 for positive ones).

Spec: RFC 1035 §7.4, RFC 2308 §5.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from postel.clock import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    expires: float
    value: V


class TtlCache(Generic[K, V]):
    """Maps keys to values for at most their TTL; holds at most ``max_entries`` entries.

    ``max_entries`` 0 disables caching. ``get`` returns None for a missing or expired
    entry. Spec: RFC 1035 §7.4, RFC 2308 §5.
    """

    def __init__(self, *, clock: Clock, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value under ``key``, or None. Spec: RFC 1035 §7.4."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def expires_at(self, key: K) -> float | None:
        """The clock's monotonic time at which the live entry under ``key`` goes, or
        None when there is none (a look that does not count as use). Two looks giving
        the same time saw the same entry."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock.monotonic():
            return None
        return entry.expires

    def put(self, key: K, value: V, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (not stored when ``ttl`` <= 0).

        Spec: RFC 2181 §8 (TTL 0 means do not cache).
        """
        if self._max == 0 or ttl <= 0:
            return
        self._entries[key] = _Entry(self._clock.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
