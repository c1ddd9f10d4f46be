"""Recipient lookups: what a set of address keys names, in one statement.

Synchronous, over an open SQLAlchemy Connection (the store's reader threads, in
autocommit mode: one statement is one consistent snapshot).

Spec: RFC 5321 §2.4 (local parts compared case-insensitively, a local policy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import String, Text, bindparam, cast, literal_column, null, select, union_all
from sqlalchemy.engine import Connection

from postel.ids import AccountId
from postel.store.api import DirectoryEntry, DirectoryLookup
from postel.store.schema import ADDRESS_MAX, accounts, aliases, domains

LOOKUP_CHUNK = 500
"""Keys per lookup statement (each key is bound twice, under every driver's limit)."""

_LOOKUP = union_all(
    select(
        literal_column("'d'").label("kind"),
        domains.c.name.label("key"),
        domains.c.id.label("id"),
        cast(null(), String).label("address"),
        cast(null(), Text).label("targets"),
    ).where(domains.c.name.in_(bindparam("domains", expanding=True))),
    select(
        literal_column("'a'"),
        aliases.c.source_key,
        aliases.c.id,
        aliases.c.source,
        aliases.c.targets,
    ).where(aliases.c.source_key.in_(bindparam("keys", expanding=True))),
    select(
        literal_column("'u'"),
        accounts.c.address_key,
        accounts.c.id,
        accounts.c.address,
        cast(null(), Text),
    ).where(accounts.c.address_key.in_(bindparam("keys", expanding=True))),
)
"""Domains, aliases and accounts of a set of keys in one statement (one snapshot)."""


def lookup_addresses(conn: Connection, keys: Sequence[str]) -> DirectoryLookup:
    """See ``Store.lookup_addresses``: one statement per LOOKUP_CHUNK keys."""
    wanted = list(dict.fromkeys(k.lower() for k in keys))
    found_domains: set[str] = set()
    targets: dict[str, tuple[str, ...]] = {}
    owners: dict[str, tuple[int, str]] = {}
    for i in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = [k for k in wanted[i : i + LOOKUP_CHUNK] if "@" in k]
        names = sorted({k.rpartition("@")[2] for k in chunk})
        chunk = [k for k in chunk if len(k) <= ADDRESS_MAX]
        if not names:
            continue
        for kind, key, row_id, address, targets_json in conn.execute(
            _LOOKUP, {"domains": names, "keys": chunk}
        ):
            if kind == "d":
                found_domains.add(key)
            elif kind == "a":
                targets[key] = tuple(json.loads(targets_json))
            else:
                owners[key] = (row_id, address)
    entries = []
    for key in wanted:
        owner = owners.get(key)
        entries.append(
            DirectoryEntry(
                key=key,
                alias_targets=targets.get(key),
                account_id=None if owner is None else AccountId(owner[0]),
                account_address=None if owner is None else owner[1],
            )
        )
    return DirectoryLookup(domains=frozenset(found_domains), entries=tuple(entries))
