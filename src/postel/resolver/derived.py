"""Results computed from DNS answers, reused while those very answers are cached.

An SPF evaluation, a DMARC policy discovery or an iprev check is a function of its
inputs and of the DNS answers it reads. ``DerivedCache`` keeps such a result under its
inputs and hands it out again only while every answer it read is still the one in the
resolver's cache: evaluating again would read the same answers and give the same
result, so reusing it changes nothing but the CPU spent.

The computation runs against ``DerivedCache.recording()``, a resolver that notes, as
each answer comes back, which cached entry it was (its expiry time, ``Expiring``);
``get`` then checks that each of those entries is still there and unexpired. So a
result goes with the first of its answers that expires, is evicted from the cache
(its size bound), is replaced by a newer answer, or is dropped with the whole cache;
an answer that was not cached when read (TTL 0, a lookup that failed without being
remembered) keeps the result from being kept at all. Only a resolver that says which
answer it holds until when (``Expiring``, the caching ``DnsPythonResolver``) gets a
cache; with any other, nothing is kept.

What the caller must not keep: a result that depends on more than its key and the
answers (the current time, a time budget that ran out).

Bounds defined here: none; the caller gives ``max_entries`` (when full, the cache
starts afresh) and bounds the size of its keys.

Spec: RFC 1035 §7.4 and RFC 2181 §8 (an answer is good for its TTL), RFC 2308 §5
(negative answers likewise).
"""

from __future__ import annotations

from collections.abc import Hashable
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, TypeVar

from postel.resolver.api import Expiring, MxAnswer, Resolver

__all__ = ["DerivedCache", "RecordingResolver"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_Read = tuple[tuple[str, str, float], ...]
"""(type, name, expiry time of the cached entry) of every answer a result read."""


class RecordingResolver:
    """``resolver`` noting, as each answer comes back (or each lookup fails), the cached
    entry it came from in ``read``; ``complete`` turns False when one was not cached.
    "PTR" is noted with the address as the name."""

    __slots__ = ("_expiring", "_resolver", "complete", "read")

    def __init__(self, resolver: Resolver, expiring: Expiring) -> None:
        self._resolver = resolver
        self._expiring = expiring
        self.read: list[tuple[str, str, float]] = []
        self.complete = True

    def _note(self, rdtype: str, name: str) -> None:
        expires = self._expiring.expires_at(rdtype, name)
        if expires is None:
            self.complete = False
        else:
            self.read.append((rdtype, name, expires))

    async def txt(self, name: str) -> tuple[bytes, ...]:
        """See ``Resolver.txt``."""
        try:
            return await self._resolver.txt(name)
        finally:
            self._note("TXT", name)

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        """See ``Resolver.a``."""
        try:
            return await self._resolver.a(name)
        finally:
            self._note("A", name)

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        """See ``Resolver.aaaa``."""
        try:
            return await self._resolver.aaaa(name)
        finally:
            self._note("AAAA", name)

    async def mx(self, domain: str) -> MxAnswer:
        """See ``Resolver.mx``."""
        try:
            return await self._resolver.mx(domain)
        finally:
            self._note("MX", domain)

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        """See ``Resolver.ptr``."""
        try:
            return await self._resolver.ptr(ip)
        finally:
            self._note("PTR", str(ip))


class DerivedCache(Generic[K, V]):
    """Results under their keys, each good while the answers it read are the ones
    cached (see the module docstring); at most ``max_entries`` of them. ``enabled`` is
    False (``get`` always misses, ``recording`` is None) unless ``resolver`` is
    ``Expiring``."""

    def __init__(self, resolver: Resolver, max_entries: int) -> None:
        self._resolver = resolver
        self._expiring = resolver if isinstance(resolver, Expiring) else None
        self._max = max_entries
        self._kept: dict[K, tuple[V, _Read]] = {}

    @property
    def enabled(self) -> bool:
        """Whether anything can be kept (the resolver is ``Expiring``)."""
        return self._expiring is not None

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: K) -> V | None:
        """The result kept under ``key`` if every answer it read is still the one
        cached (then evaluating again would give it too), else None."""
        kept = self._kept.get(key)
        if kept is None or self._expiring is None:
            return None
        value, read = kept
        expires_at = self._expiring.expires_at
        for rdtype, name, expires in read:
            if expires_at(rdtype, name) != expires:  # gone, or another answer now
                del self._kept[key]
                return None
        return value

    def recording(self) -> RecordingResolver | None:
        """A resolver to compute a result to ``keep`` with; None when not ``enabled``
        (compute with the plain resolver)."""
        if self._expiring is None:
            return None
        return RecordingResolver(self._resolver, self._expiring)

    def keep(self, key: K, value: V, recording: RecordingResolver) -> None:
        """Keep ``value``, computed through ``recording``, under ``key`` (not if it
        read no answer, or an answer that was not cached)."""
        if self._expiring is None or not recording.complete or not recording.read:
            return
        if len(self._kept) >= self._max:
            self._kept.clear()
        self._kept[key] = (value, tuple(recording.read))
