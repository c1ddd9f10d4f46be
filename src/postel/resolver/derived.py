"""Results computed from DNS answers, kept for as long as those answers are.

An SPF evaluation, a DMARC policy discovery or an iprev check is a function of its
inputs and of the DNS answers it reads. ``DerivedCache`` keeps such a result under its
inputs and hands it out again while every answer it read is still in the resolver's
cache (its TTL not run out, the cache not dropped since): evaluating again would read
the same answers and give the same result, so reusing it changes nothing but the CPU
spent. The computation runs against ``DerivedCache.recording()``, a resolver that
notes each (type, name) asked; ``keep`` then takes the shortest time any of those
answers has left. A result that read no answer, or an answer not cached (TTL 0), is
not kept. Only a resolver that says how long its answers stay (``Expiring``, the
caching ``DnsPythonResolver``) gets a cache; with any other, nothing is kept.

What the caller must not keep: a result that depends on more than its key and the
answers (the current time, a time budget that ran out).

Bounds defined here: none; the caller gives ``max_entries`` (when full, the cache
starts afresh).

Spec: RFC 1035 §7.4 and RFC 2181 §8 (an answer is good for its TTL), RFC 2308 §5
(negative answers likewise).
"""

from __future__ import annotations

from collections.abc import Hashable
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, TypeVar

from postel.clock import Clock
from postel.resolver.api import Expiring, MxAnswer, Resolver

__all__ = ["DerivedCache", "RecordingResolver"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecordingResolver:
    """``resolver`` noting every (type, name) asked in ``asked`` ("PTR" with the
    address as the name), and the cache ``generation`` when it was made."""

    __slots__ = ("_resolver", "asked", "generation")

    def __init__(self, resolver: Resolver, generation: int) -> None:
        self._resolver = resolver
        self.asked: list[tuple[str, str]] = []
        self.generation = generation

    async def txt(self, name: str) -> tuple[bytes, ...]:
        """See ``Resolver.txt``."""
        self.asked.append(("TXT", name))
        return await self._resolver.txt(name)

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        """See ``Resolver.a``."""
        self.asked.append(("A", name))
        return await self._resolver.a(name)

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        """See ``Resolver.aaaa``."""
        self.asked.append(("AAAA", name))
        return await self._resolver.aaaa(name)

    async def mx(self, domain: str) -> MxAnswer:
        """See ``Resolver.mx``."""
        self.asked.append(("MX", domain))
        return await self._resolver.mx(domain)

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        """See ``Resolver.ptr``."""
        self.asked.append(("PTR", str(ip)))
        return await self._resolver.ptr(ip)


class DerivedCache(Generic[K, V]):
    """Results under their keys, each good while the answers it read are cached (see
    the module docstring). ``clock`` must be the resolver's; at most ``max_entries``
    results are kept. ``enabled`` is False (``get`` always misses, ``recording`` is
    None) unless ``resolver`` is ``Expiring``."""

    def __init__(self, resolver: Resolver, clock: Clock, max_entries: int) -> None:
        self._resolver = resolver
        self._expiring = resolver if isinstance(resolver, Expiring) else None
        self._clock = clock
        self._max = max_entries
        self._kept: dict[K, tuple[V, float, int]] = {}

    @property
    def enabled(self) -> bool:
        """Whether anything can be kept (the resolver is ``Expiring``)."""
        return self._expiring is not None

    def get(self, key: K) -> V | None:
        """The result kept under ``key`` if every answer it read is still cached."""
        kept = self._kept.get(key)
        if kept is None or self._expiring is None:
            return None
        value, until, generation = kept
        if until > self._clock.monotonic() and generation == self._expiring.generation:
            return value
        del self._kept[key]
        return None

    def recording(self) -> RecordingResolver | None:
        """A resolver to compute a result to ``keep`` with; None when not ``enabled``
        (compute with the plain resolver)."""
        if self._expiring is None:
            return None
        return RecordingResolver(self._resolver, self._expiring.generation)

    def keep(self, key: K, value: V, recording: RecordingResolver) -> None:
        """Keep ``value``, computed through ``recording``, under ``key`` for as long as
        the shortest-lived answer it read stays cached (not at all if it read none, if
        one is not cached, or if the cache was dropped meanwhile)."""
        expiring = self._expiring
        if expiring is None or not recording.asked or recording.generation != expiring.generation:
            return
        shortest: float | None = None
        for rdtype, name in recording.asked:
            left = expiring.ttl_left(rdtype, name)
            if left is None:
                return
            shortest = left if shortest is None else min(shortest, left)
        assert shortest is not None
        if len(self._kept) >= self._max:
            self._kept.clear()
        self._kept[key] = (value, self._clock.monotonic() + shortest, recording.generation)
