"""A small in-process cache of directory answers for recipient resolution.

Entries (what an address key names, whether a domain is ours, who the admin is) are
kept for ``ttl`` seconds of the injected monotonic clock, at most ``max_entries`` of
them (least recently used dropped first), unknown names included: a dictionary attack
of RCPT TO probes then costs the store one read per new name, and the cache stays
bounded whatever the attacker sends.

Staleness: every answer is dropped as soon as the store reports a new
``directory_version`` (a write through the same store object), so changes made by this
process are seen at once. Changes made by another process (``postel account add`` or
``alias add`` on the same database) are seen after at most ``ttl`` seconds.

Spec: RFC 5321 §3.6.1 (resolution is local policy); RELIABILITY.md D6 (enumeration).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from postel.clock import Clock
from postel.ids import AccountId
from postel.store.api import DirectoryEntry, DirectoryLookup

DIRECTORY_CACHE_TTL_S = 2.0
"""Seconds a directory answer is reused (local policy): the bound on how long a change
made by another process (the CLI) may go unseen."""
DIRECTORY_CACHE_MAX = 10_000
"""Address keys (and, separately, domains) kept at most (local policy; a few MB)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class AdminTarget:
    """The account receiving postmaster@ and abuse@ (``None`` fields: there is none)."""

    account_id: AccountId | None
    address: str | None


class _Lru(Generic[K, V]):
    """At most ``size`` values, each valid until its deadline."""

    __slots__ = ("_items", "_size")

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._size = size

    def get(self, key: K, now: float) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: K, value: V, deadline: float) -> None:
        self._items[key] = (deadline, value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class DirectoryCache:
    """Directory answers by key, for ``ttl`` seconds; ``ttl <= 0`` turns caching off.

    Call ``sync(version)`` with the store's ``directory_version`` before each use.
    Spec: see the module docstring.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        ttl: float = DIRECTORY_CACHE_TTL_S,
        max_entries: int = DIRECTORY_CACHE_MAX,
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: _Lru[str, DirectoryEntry] = _Lru(max_entries)
        self._domains: _Lru[str, bool] = _Lru(max_entries)
        self._admin: _Lru[str, AdminTarget] = _Lru(1)
        self._version: int | None = None

    def __len__(self) -> int:
        """Entries held (address keys and domains)."""
        return len(self._entries) + len(self._domains)

    def sync(self, version: int) -> None:
        """Drop everything when the store's directory changed since the last call."""
        if version != self._version:
            self._entries.clear()
            self._domains.clear()
            self._admin.clear()
            self._version = version

    def entry(self, key: str) -> DirectoryEntry | None:
        """The cached entry of ``key``, or None when it is not cached."""
        return self._entries.get(key, self._clock.monotonic())

    def domain(self, name: str) -> bool | None:
        """Whether ``name`` is ours, or None when it is not cached."""
        return self._domains.get(name, self._clock.monotonic())

    def admin(self) -> AdminTarget | None:
        return self._admin.get("", self._clock.monotonic())

    def put_admin(self, target: AdminTarget) -> None:
        if self._ttl > 0:
            self._admin.put("", target, self._clock.monotonic() + self._ttl)

    def put(self, lookup: DirectoryLookup) -> None:
        """Remember every entry and domain answer of ``lookup``."""
        if self._ttl <= 0:
            return
        deadline = self._clock.monotonic() + self._ttl
        for entry in lookup.entries:
            self._entries.put(entry.key, entry, deadline)
            domain = entry.key.rpartition("@")[2]
            self._domains.put(domain, domain in lookup.domains, deadline)
