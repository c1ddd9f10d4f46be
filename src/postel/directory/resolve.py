"""Recipient resolution: which local accounts an envelope recipient reaches.

Lookup order for ``local@domain`` when ``domain`` is one of ours (first hit wins):

1. the alias ``local@domain`` (exact, local part case-insensitive);
2. the account ``local@domain``;
3. subaddressing: ``user+detail@domain`` → the alias, then the account, ``user@domain``
   (RFC 5233; separator ``+``);
4. ``postmaster@`` and ``abuse@`` of every domain → the admin account (RFC 5321 §4.5.1,
   RFC 2142 §4-5) when no alias or account of that name exists;
5. the catch-all alias ``@domain``.

Alias targets are resolved by the same rules, recursively, up to
``limits.ALIAS_EXPANSION_DEPTH_MAX`` hops and ``limits.ALIAS_EXPANSION_TARGETS_MAX``
addresses; an alias reached twice (a loop, or two paths to one alias) adds nothing the
second time, and each account appears once. Targets outside our domains are remote
forward addresses (``local@domain`` with the domain in A-label form, each once); they
count against the same bounds. A recipient that reaches accounts (and perhaps remote
addresses too) resolves to ``LocalRecipients``; one that reaches only remote addresses
to ``Forwarded``. The bare ``postmaster`` (no domain) reaches the admin.

Spec: RFC 5321 §3.6.1 (no relaying by local-part tricks), §4.5.1; RFC 5233; RFC 2142.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from postel import limits
from postel.clock import Clock, SystemClock
from postel.directory.addresses import LOCAL_PART_MAX, SUBADDRESS_SEPARATOR, split_recipient
from postel.directory.cache import (
    DIRECTORY_CACHE_MAX,
    DIRECTORY_CACHE_TTL_S,
    AdminTarget,
    DirectoryCache,
)
from postel.errors import PermanentFailure
from postel.ids import AccountId
from postel.store.api import Account, DirectoryEntry, DirectoryLookup

log = logging.getLogger(__name__)

ADMIN_LOCAL_PARTS = frozenset({"postmaster", "abuse"})
"""Role addresses every domain must accept. Spec: RFC 5321 §4.5.1, RFC 2142 §4-5."""


class DirectoryStore(Protocol):
    """The part of ``postel.store.Store`` the directory reads."""

    async def lookup_addresses(self, keys: Sequence[str]) -> DirectoryLookup: ...
    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]: ...
    @property
    def directory_version(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """One account a recipient reaches; ``address`` is the account's primary address."""

    account_id: AccountId
    address: str


@dataclass(frozen=True, slots=True)
class LocalRecipients:
    """The recipient is ours: deliver to each account (at least one, no duplicates), and
    forward to each ``remote`` address (an alias with targets outside our domains;
    empty for most recipients). Spec: RFC 5321 §3.9.1 (aliases)."""

    accounts: tuple[LocalTarget, ...]
    remote: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The recipient is ours (an alias), but every address it reaches is remote: forward
    to each of ``remote`` (at least one, ``local@a-label-domain``, no duplicates).
    Spec: RFC 5321 §3.9.1 (aliases), §3.9 (forwarding)."""

    remote: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotLocal:
    """The domain is not one of ours: relay (authenticated submission only), otherwise
    550 5.7.1. Spec: RFC 5321 §3.6.1, RFC 3463 (5.7.1)."""

    domain: str


@dataclass(frozen=True, slots=True)
class UnknownRecipient:
    """Our domain, but nobody by that name: 550 5.1.1. Spec: RFC 3463 (5.1.1)."""

    address: str


Resolution = LocalRecipients | Forwarded | NotLocal | UnknownRecipient


def _plausible_local_part(local: str) -> bool:
    """False for local parts no account or alias can have: longer than 64 octets
    (RFC 5321 §4.5.3.1.1), not encodable as UTF-8, or with control characters."""
    try:
        encoded = local.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(encoded) <= LOCAL_PART_MAX and not any(c < 0x20 or c == 0x7F for c in encoded)


class AliasExpansionError(PermanentFailure):
    """An alias expands deeper or wider than the limits allow (a configuration error;
    answer 550 5.4.6, routing loop / RFC 3463 §3.5)."""


@dataclass(slots=True)
class _Expansion:
    """State of one resolution: what was seen, what was found, what the store said."""

    visited: set[str] = field(default_factory=set)
    accounts: dict[AccountId, LocalTarget] = field(default_factory=dict)
    remote: dict[str, str] = field(default_factory=dict)
    """Remote forward addresses by lookup key (local part lower-cased)."""
    domains: dict[str, bool] = field(default_factory=dict)
    entries: dict[str, DirectoryEntry] = field(default_factory=dict)


def _candidates(local: str, domain: str) -> list[str]:
    """Lookup keys for ``local@domain`` in order: the exact address, then the
    subaddress base (RFC 5233)."""
    key = f"{local.lower()}@{domain}"
    base, sep, _detail = local.lower().partition(SUBADDRESS_SEPARATOR)
    return [key, f"{base}@{domain}"] if sep and base else [key]


def _add_remote(local: str, domain: str, expansion: _Expansion) -> None:
    """Note the remote forward address ``local@domain`` once; it counts against
    ``limits.ALIAS_EXPANSION_TARGETS_MAX`` like every address visited."""
    key = f"{local.lower()}@{domain}"
    if key in expansion.visited:
        return
    expansion.visited.add(key)
    if len(expansion.visited) > limits.ALIAS_EXPANSION_TARGETS_MAX:
        raise AliasExpansionError(
            f"alias expansion exceeds {limits.ALIAS_EXPANSION_TARGETS_MAX} addresses"
        )
    expansion.remote[key] = f"{local}@{domain}"


class Directory:
    """Resolves envelope recipients against the store's domains, accounts and aliases.

    ``admin_address`` (``Config.admin_address``) names the account receiving postmaster@
    and abuse@; when it is None or does not exist, the first admin account is used.

    Each resolution asks the store once for everything one address needs (its domain,
    the alias and account of the address and of its subaddress base, the catch-all), and
    once per alias for all of its targets. Answers, unknown names included, are cached
    for ``cache_ttl`` seconds of ``clock`` (``DirectoryCache``; default 2 s, ``0`` turns
    the cache off): writes through the same store are seen at once, writes by another
    process (the CLI) within ``cache_ttl``. ``clock`` defaults to the system clock.
    """

    def __init__(
        self,
        store: DirectoryStore,
        admin_address: str | None,
        *,
        clock: Clock | None = None,
        cache_ttl: float = DIRECTORY_CACHE_TTL_S,
        cache_max: int = DIRECTORY_CACHE_MAX,
    ) -> None:
        self._store = store
        self._admin_address = admin_address
        self._cache = DirectoryCache(
            clock if clock is not None else SystemClock(), ttl=cache_ttl, max_entries=cache_max
        )

    @property
    def cache(self) -> DirectoryCache:
        """The answers cache (for metrics and tests)."""
        return self._cache

    async def resolve(self, address: str) -> Resolution:
        """Resolve one RCPT TO address (without angle brackets).

        Raises AliasExpansionError when an alias exceeds the expansion limits, and the
        store's errors. Spec: see the module docstring.
        """
        self._cache.sync(self._store.directory_version)
        if "@" not in address:
            return await self._bare(address)
        split = split_recipient(address)
        if split is None:
            return NotLocal(address.rpartition("@")[2])
        local, domain = split
        if not _plausible_local_part(local):
            return UnknownRecipient(address)  # no such local part can exist
        expansion = _Expansion()
        await self._fetch([*_candidates(local, domain), f"@{domain}"], expansion)
        if not expansion.domains.get(domain, False):
            return NotLocal(domain)
        await self._expand(local, domain, 0, expansion)
        remote = tuple(expansion.remote.values())
        if not expansion.accounts:
            return Forwarded(remote) if remote else UnknownRecipient(address)
        return LocalRecipients(tuple(expansion.accounts.values()), remote)

    async def is_local_domain(self, domain: str) -> bool:
        """True when ``domain`` (any case, U- or A-labels) is one of ours."""
        self._cache.sync(self._store.directory_version)
        split = split_recipient(f"x@{domain}")
        if split is None:
            return False
        expansion = _Expansion()
        await self._fetch([f"@{split[1]}"], expansion)
        return expansion.domains.get(split[1], False)

    async def has_own_entry(self, address: str) -> bool:
        """Whether ``address`` is reached by an entry of its own, not by the catch-all:
        an account or alias at the address or at its subaddress base, or a role address
        (postmaster@, abuse@). What ``alias add`` asks of a local target, so the alias
        does not end up naming nothing when the catch-all goes.
        Spec: RFC 5233 §2; RFC 5321 §4.5.1; RFC 2142."""
        self._cache.sync(self._store.directory_version)
        split = split_recipient(address)
        if split is None:
            return False
        candidates = _candidates(*split)
        if candidates[-1].rpartition("@")[0] in ADMIN_LOCAL_PARTS:
            return True
        expansion = _Expansion()
        await self._fetch(candidates, expansion)
        return any(
            entry.alias_targets is not None or entry.account_id is not None
            for entry in (expansion.entries[key] for key in candidates)
        )

    async def _bare(self, address: str) -> Resolution:
        """``<postmaster>`` without a domain. Spec: RFC 5321 §4.5.1."""
        if address.lower() == "postmaster":
            admin = await self._admin()
            if admin is not None:
                return LocalRecipients((admin,))
        return UnknownRecipient(address)

    async def _fetch(self, keys: Sequence[str], expansion: _Expansion) -> None:
        """Make ``expansion`` know every key of ``keys`` and its domain: from the cache,
        or else in one store read for all that are missing."""
        missing: list[str] = []
        for key in keys:
            if key in expansion.entries:
                continue
            domain = key.rpartition("@")[2]
            entry = self._cache.entry(key)
            known = self._cache.domain(domain)
            if entry is None or known is None:
                missing.append(key)
                continue
            expansion.entries[key] = entry
            expansion.domains[domain] = known
        if not missing:
            return
        lookup = await self._store.lookup_addresses(missing)
        self._cache.put(lookup)
        for entry in lookup.entries:
            expansion.entries[entry.key] = entry
        for key in missing:
            domain = key.rpartition("@")[2]
            expansion.domains[domain] = domain in lookup.domains
            expansion.entries.setdefault(key, DirectoryEntry(key))

    async def _expand(self, local: str, domain: str, depth: int, expansion: _Expansion) -> None:
        """Add the accounts ``local@domain`` reaches (domain already known to be ours)."""
        candidates = _candidates(local, domain)
        key = candidates[0]
        if key in expansion.visited:
            # Met again in its own expansion (alice@ -> alice@, bob@ to keep a copy, or
            # a loop back to it): not expanded again, but delivered to its own account
            # when it has one, as Postfix's virtual alias expansion does.
            log.debug("directory.alias.revisited", extra={"address": key})
            for candidate in candidates:
                entry = expansion.entries.get(candidate)
                if entry is not None and entry.account_id is not None and entry.account_address:
                    target = LocalTarget(entry.account_id, entry.account_address)
                    expansion.accounts.setdefault(entry.account_id, target)
                    return
            return
        expansion.visited.add(key)
        if len(expansion.visited) > limits.ALIAS_EXPANSION_TARGETS_MAX:
            raise AliasExpansionError(
                f"alias expansion exceeds {limits.ALIAS_EXPANSION_TARGETS_MAX} addresses"
            )
        catch_all = f"@{domain}"
        await self._fetch([*candidates, catch_all], expansion)
        for candidate in candidates:
            entry = expansion.entries[candidate]
            if entry.alias_targets is not None:
                await self._via_alias(candidate, entry.alias_targets, depth, expansion)
                return
            if entry.account_id is not None and entry.account_address is not None:
                target = LocalTarget(entry.account_id, entry.account_address)
                expansion.accounts.setdefault(entry.account_id, target)
                return
        if candidates[-1].rpartition("@")[0] in ADMIN_LOCAL_PARTS:
            admin = await self._admin()
            if admin is not None:
                expansion.accounts.setdefault(admin.account_id, admin)
                return
        targets = expansion.entries[catch_all].alias_targets
        if targets is not None and catch_all not in expansion.visited:
            expansion.visited.add(catch_all)
            await self._via_alias(catch_all, targets, depth, expansion)

    async def _via_alias(
        self, source: str, targets: tuple[str, ...], depth: int, expansion: _Expansion
    ) -> None:
        """Expand the alias ``source`` to ``targets``, fetching what all of them need
        in one store read."""
        if depth + 1 > limits.ALIAS_EXPANSION_DEPTH_MAX:
            raise AliasExpansionError(
                f"alias {source} nests deeper than {limits.ALIAS_EXPANSION_DEPTH_MAX} levels"
            )
        splits = [(target, split_recipient(target)) for target in targets]
        wanted: list[str] = []
        for _target, split in splits:
            if split is not None:
                wanted += [*_candidates(*split), f"@{split[1]}"]
        await self._fetch(wanted, expansion)
        for target, split in splits:
            if split is None:
                log.warning("directory.alias.bad_target", extra={"alias": source, "target": target})
                continue
            if not expansion.domains.get(split[1], False):
                _add_remote(split[0], split[1], expansion)
                continue
            await self._expand(split[0], split[1], depth + 1, expansion)

    async def _admin(self) -> LocalTarget | None:
        """The account for postmaster@ and abuse@, or None when there is none."""
        cached = self._cache.admin()
        if cached is None:
            cached = await self._find_admin()
            self._cache.put_admin(cached)
        if cached.account_id is None or cached.address is None:
            return None
        return LocalTarget(cached.account_id, cached.address)

    async def _find_admin(self) -> AdminTarget:
        if self._admin_address is not None:
            split = split_recipient(self._admin_address)
            if split is not None:
                key = f"{split[0].lower()}@{split[1]}"
                (entry,) = (await self._store.lookup_addresses([key])).entries
                if entry.account_id is not None:
                    return AdminTarget(entry.account_id, entry.account_address)
            log.warning("directory.admin.missing", extra={"admin": self._admin_address})
        admins = sorted(
            (a for a in await self._store.list_accounts() if a.is_admin), key=lambda a: a.id
        )
        if not admins:
            return AdminTarget(None, None)
        return AdminTarget(admins[0].id, admins[0].address)
