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
second time, and each account appears once. Targets outside our domains are skipped
(forwarding is not available). The bare ``postmaster`` (no domain) reaches the admin.

Spec: RFC 5321 §3.6.1 (no relaying by local-part tricks), §4.5.1; RFC 5233; RFC 2142.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from postel import limits
from postel.directory.addresses import LOCAL_PART_MAX, SUBADDRESS_SEPARATOR, split_recipient
from postel.errors import PermanentFailure
from postel.ids import AccountId
from postel.store.api import Account, Alias, Domain

log = logging.getLogger(__name__)

ADMIN_LOCAL_PARTS = frozenset({"postmaster", "abuse"})
"""Role addresses every domain must accept. Spec: RFC 5321 §4.5.1, RFC 2142 §4-5."""


class DirectoryStore(Protocol):
    """The part of ``postel.store.Store`` the directory reads."""

    async def get_domain(self, name: str) -> Domain | None: ...
    async def get_account(self, address: str) -> Account | None: ...
    async def get_alias(self, source: str) -> Alias | None: ...
    async def list_accounts(self, domain: str | None = None) -> Sequence[Account]: ...


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """One account a recipient reaches; ``address`` is the account's primary address."""

    account_id: AccountId
    address: str


@dataclass(frozen=True, slots=True)
class LocalRecipients:
    """The recipient is ours: deliver to each account (at least one, no duplicates)."""

    accounts: tuple[LocalTarget, ...]


@dataclass(frozen=True, slots=True)
class NotLocal:
    """The domain is not one of ours: relay (authenticated submission only), otherwise
    550 5.7.1. Spec: RFC 5321 §3.6.1, RFC 3463 (5.7.1)."""

    domain: str


@dataclass(frozen=True, slots=True)
class UnknownRecipient:
    """Our domain, but nobody by that name: 550 5.1.1. Spec: RFC 3463 (5.1.1)."""

    address: str


Resolution = LocalRecipients | NotLocal | UnknownRecipient


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
    """State of one resolution: what was seen, what was found."""

    visited: set[str] = field(default_factory=set)
    accounts: dict[AccountId, LocalTarget] = field(default_factory=dict)
    domains: dict[str, bool] = field(default_factory=dict)


class Directory:
    """Resolves envelope recipients against the store's domains, accounts and aliases.

    ``admin_address`` (``Config.admin_address``) names the account receiving postmaster@
    and abuse@; when it is None or does not exist, the first admin account is used.
    """

    def __init__(self, store: DirectoryStore, admin_address: str | None) -> None:
        self._store = store
        self._admin_address = admin_address

    async def resolve(self, address: str) -> Resolution:
        """Resolve one RCPT TO address (without angle brackets).

        Raises AliasExpansionError when an alias exceeds the expansion limits, and the
        store's errors. Spec: see the module docstring.
        """
        if "@" not in address:
            return await self._bare(address)
        split = split_recipient(address)
        if split is None:
            return NotLocal(address.rpartition("@")[2])
        local, domain = split
        if not _plausible_local_part(local):
            return UnknownRecipient(address)  # no such local part can exist
        expansion = _Expansion()
        if not await self._is_ours(domain, expansion):
            return NotLocal(domain)
        await self._expand(local, domain, 0, expansion)
        if not expansion.accounts:
            return UnknownRecipient(address)
        return LocalRecipients(tuple(expansion.accounts.values()))

    async def is_local_domain(self, domain: str) -> bool:
        """True when ``domain`` (any case, U- or A-labels) is one of ours."""
        split = split_recipient(f"x@{domain}")
        return split is not None and await self._store.get_domain(split[1]) is not None

    async def _bare(self, address: str) -> Resolution:
        """``<postmaster>`` without a domain. Spec: RFC 5321 §4.5.1."""
        if address.lower() == "postmaster":
            admin = await self._admin()
            if admin is not None:
                return LocalRecipients((admin,))
        return UnknownRecipient(address)

    async def _is_ours(self, domain: str, expansion: _Expansion) -> bool:
        known = expansion.domains.get(domain)
        if known is None:
            known = await self._store.get_domain(domain) is not None
            expansion.domains[domain] = known
        return known

    async def _expand(self, local: str, domain: str, depth: int, expansion: _Expansion) -> None:
        """Add the accounts ``local@domain`` reaches (domain already known to be ours)."""
        key = f"{local.lower()}@{domain}"
        if key in expansion.visited:
            log.debug("directory.alias.revisited", extra={"address": key})
            return
        expansion.visited.add(key)
        if len(expansion.visited) > limits.ALIAS_EXPANSION_TARGETS_MAX:
            raise AliasExpansionError(
                f"alias expansion exceeds {limits.ALIAS_EXPANSION_TARGETS_MAX} addresses"
            )
        base, sep, _detail = local.lower().partition(SUBADDRESS_SEPARATOR)
        candidates = [key] + ([f"{base}@{domain}"] if sep and base else [])
        for candidate in candidates:
            if await self._via_alias(candidate, depth, expansion):
                return
            account = await self._store.get_account(candidate)
            if account is not None:
                self._add(account, expansion)
                return
        if (base if sep and base else local.lower()) in ADMIN_LOCAL_PARTS:
            admin = await self._admin()
            if admin is not None:
                expansion.accounts.setdefault(admin.account_id, admin)
                return
        await self._via_alias(f"@{domain}", depth, expansion)

    async def _via_alias(self, source: str, depth: int, expansion: _Expansion) -> bool:
        """Expand the alias ``source`` if it exists; True when it does."""
        alias = await self._store.get_alias(source)
        if alias is None:
            return False
        if source.startswith("@"):
            if source in expansion.visited:
                return True
            expansion.visited.add(source)
        if depth + 1 > limits.ALIAS_EXPANSION_DEPTH_MAX:
            raise AliasExpansionError(
                f"alias {source} nests deeper than {limits.ALIAS_EXPANSION_DEPTH_MAX} levels"
            )
        for target in alias.targets:
            split = split_recipient(target)
            if split is None or not await self._is_ours(split[1], expansion):
                log.warning(
                    "directory.alias.remote_target", extra={"alias": source, "target": target}
                )
                continue
            await self._expand(split[0], split[1], depth + 1, expansion)
        return True

    @staticmethod
    def _add(account: Account, expansion: _Expansion) -> None:
        expansion.accounts.setdefault(account.id, LocalTarget(account.id, account.address))

    async def _admin(self) -> LocalTarget | None:
        """The account for postmaster@ and abuse@, or None when there is none."""
        if self._admin_address is not None:
            split = split_recipient(self._admin_address)
            if split is not None:
                account = await self._store.get_account(f"{split[0]}@{split[1]}")
                if account is not None:
                    return LocalTarget(account.id, account.address)
            log.warning("directory.admin.missing", extra={"admin": self._admin_address})
        admins = sorted(
            (a for a in await self._store.list_accounts() if a.is_admin), key=lambda a: a.id
        )
        if not admins:
            return None
        return LocalTarget(admins[0].id, admins[0].address)
