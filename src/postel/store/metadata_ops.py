"""METADATA entries (table ``metadata_entries``): their shapes, bounds and SQL.

An entry belongs to an account and either to the server (``mailbox_id`` None) or to
one of the account's mailboxes. Names are stored lower-cased (entry names are
case-insensitive). postel has no shared mailboxes, so ``/shared`` entries are as
private to the account as ``/private`` ones; the two namespaces stay distinct entries.

Spec: RFC 5464 §3 (entries), §4.2 (GETMETADATA, DEPTH), §4.3 (SETMETADATA, limits).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from postel.errors import StoreError
from postel.ids import AccountId, MailboxId
from postel.store.schema import accounts, metadata_entries

__all__ = [
    "METADATA_ENTRIES_MAX",
    "METADATA_VALUE_MAX",
    "MetadataDepth",
    "MetadataEntry",
    "MetadataTooMany",
    "MetadataValueTooLarge",
    "get_entries",
    "set_entries",
]

METADATA_VALUE_MAX = 64 * 1024
"""Largest entry value, in octets; larger ones are refused ``[METADATA MAXSIZE n]``.
Spec: RFC 5464 §4.3 (the server may limit the size of values)."""
METADATA_ENTRIES_MAX = 1000
"""Entries one account may hold, server and all mailboxes together; more are refused
``[METADATA TOOMANY]``. Spec: RFC 5464 §4.3 (the server may limit the number)."""


class MetadataDepth(enum.StrEnum):
    """GETMETADATA DEPTH: the entry only, its children too, or every descendant.
    Spec: RFC 5464 §4.2.2."""

    ZERO = "0"
    ONE = "1"
    INFINITY = "infinity"


@dataclass(frozen=True, slots=True)
class MetadataEntry:
    """One entry: ``name`` lower-cased, ``value`` its octets. Spec: RFC 5464 §3."""

    name: str
    value: bytes


class MetadataValueTooLarge(StoreError):
    """A value exceeds METADATA_VALUE_MAX (``limit``, octets). Spec: RFC 5464 §4.3."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"metadata value larger than {limit} octets")
        self.limit = limit


class MetadataTooMany(StoreError):
    """The account would hold more than METADATA_ENTRIES_MAX entries.
    Spec: RFC 5464 §4.3."""


def _scope(account_id: AccountId, mailbox_id: MailboxId | None) -> list[ColumnElement[bool]]:
    t = metadata_entries.c
    box = t.mailbox_id.is_(None) if mailbox_id is None else t.mailbox_id == mailbox_id
    return [t.account_id == account_id, box]


def _within(name: str, entry: str, depth: MetadataDepth) -> bool:
    if name == entry:
        return True
    if depth is MetadataDepth.ZERO or not name.startswith(entry + "/"):
        return False
    return depth is MetadataDepth.INFINITY or "/" not in name[len(entry) + 1 :]


def get_entries(
    conn: Connection,
    account_id: AccountId,
    mailbox_id: MailboxId | None,
    entries: Sequence[str],
    depth: MetadataDepth,
) -> list[MetadataEntry]:
    """The entries named in ``entries`` (lower-cased) that exist, with their
    descendants to ``depth``, sorted by name; one statement. Spec: RFC 5464 §4.2."""
    t = metadata_entries.c
    wanted = [e.lower() for e in entries]
    if not wanted:
        return []
    match = [t.name == e for e in wanted]
    if depth is not MetadataDepth.ZERO:
        match += [t.name.startswith(e + "/", autoescape=True) for e in wanted]
    rows = conn.execute(
        select(t.name, t.value).where(*_scope(account_id, mailbox_id), or_(*match)).order_by(t.name)
    ).all()
    return [
        MetadataEntry(str(name), bytes(value))
        for name, value in rows
        if any(_within(str(name), e, depth) for e in wanted)
    ]


def set_entries(
    conn: Connection,
    account_id: AccountId,
    mailbox_id: MailboxId | None,
    changes: Sequence[tuple[str, bytes | None]],
) -> None:
    """Set each ``(name, value)`` (None removes the entry), all or none.
    MetadataValueTooLarge, MetadataTooMany (the transaction is then rolled back by the
    caller). Spec: RFC 5464 §4.3."""
    for _, value in changes:
        if value is not None and len(value) > METADATA_VALUE_MAX:
            raise MetadataValueTooLarge(METADATA_VALUE_MAX)
    # Serialise writers of one account: unique names and a true count.
    conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
    t = metadata_entries.c
    adds = 0
    for name, value in changes:
        key = name.lower()
        conn.execute(delete(metadata_entries).where(*_scope(account_id, mailbox_id), t.name == key))
        if value is not None:
            conn.execute(
                insert(metadata_entries).values(
                    account_id=account_id, mailbox_id=mailbox_id, name=key, value=value
                )
            )
            adds += 1
    if adds:
        count = conn.execute(
            select(func.count()).select_from(metadata_entries).where(t.account_id == account_id)
        ).scalar_one()
        if count > METADATA_ENTRIES_MAX:
            raise MetadataTooMany(f"more than {METADATA_ENTRIES_MAX} metadata entries")
