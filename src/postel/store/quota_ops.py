"""Quota usage in SQL, and its enforcement inside the writes that add messages.

Usage is computed, never counted: ``SUM(size)`` and ``COUNT(*)`` over the messages of
every mailbox of an account, driven by the covering index ``ix_messages_mailbox_id_size``
(index-only on SQLite; an index-only scan on PostgreSQL once the visibility map is set,
an index scan otherwise). It is computed only for accounts that have a limit.

Exactness: every write that adds messages to a limited account first locks ALL the
account's mailbox rows (in id order, the order every writer uses), then reads the usage
in the same transaction, so two writers cannot both take the last octets (SQLite's
``BEGIN IMMEDIATE`` serialises every writer anyway). Delivery batches lock every mailbox
of their accounts already (delivery_batch.py) and keep a ``QuotaLedger`` of the batch:
each caller is admitted against the usage read plus what the callers before it in the
batch added.

Spec: RFC 9208 §5 (STORAGE, MESSAGE), §4.1 ([OVERQUOTA]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from postel.errors import NotFound
from postel.ids import AccountId, MailboxId
from postel.store.mailbox_ops import lock_mailboxes
from postel.store.quota_api import OverQuota, QuotaUsage, check_limits, exceeded
from postel.store.schema import accounts, mailboxes, messages

USAGE_CHUNK = 500
"""Accounts per ``IN (...)`` list of a usage statement (under every driver's
bind-parameter limit)."""

_LIMITED = or_(accounts.c.storage_limit.is_not(None), accounts.c.message_limit.is_not(None))


def _usage_query(*, limited_only: bool) -> Select[tuple[int, int | None, int | None, int, int]]:
    query = (
        select(
            accounts.c.id,
            accounts.c.storage_limit,
            accounts.c.message_limit,
            func.coalesce(func.sum(messages.c.size), 0),
            func.count(messages.c.mailbox_id),
        )
        .select_from(
            accounts.outerjoin(mailboxes, mailboxes.c.account_id == accounts.c.id).outerjoin(
                messages, messages.c.mailbox_id == mailboxes.c.id
            )
        )
        .group_by(accounts.c.id, accounts.c.storage_limit, accounts.c.message_limit)
    )
    return query.where(_LIMITED) if limited_only else query


USAGE_SQL = """
SELECT mb.account_id, COALESCE(SUM(m.size), 0), COUNT(m.mailbox_id)
FROM mailboxes AS mb LEFT JOIN messages AS m ON m.mailbox_id = mb.id
WHERE mb.account_id IN ({marks}) GROUP BY mb.account_id
"""
"""The usage of a list of accounts (``{marks}``: one ``?`` per account), for the
sqlite3 cursor of the delivery fast path."""

_USAGE_OF = (
    select(
        mailboxes.c.account_id,
        func.coalesce(func.sum(messages.c.size), 0),
        func.count(messages.c.mailbox_id),
    )
    .select_from(mailboxes.outerjoin(messages, messages.c.mailbox_id == mailboxes.c.id))
    .where(mailboxes.c.account_id.in_(bindparam("account_ids", expanding=True)))
    .group_by(mailboxes.c.account_id)
)


def _row_usage(row: Iterable[object]) -> QuotaUsage:
    account_id, storage_limit, message_limit, used, count = tuple(row)
    return QuotaUsage(
        account_id=AccountId(int(str(account_id))),
        storage_used=int(str(used)),
        storage_limit=None if storage_limit is None else int(str(storage_limit)),
        messages_used=int(str(count)),
        messages_limit=None if message_limit is None else int(str(message_limit)),
    )


def quota_usages(
    conn: Connection, account_ids: Collection[AccountId] | None, limited_only: bool
) -> dict[AccountId, QuotaUsage]:
    """Usage and limits of ``account_ids`` (None: every account), only of the limited
    ones when ``limited_only``; accounts that do not exist are left out. One statement
    per USAGE_CHUNK accounts."""
    query = _usage_query(limited_only=limited_only)
    if account_ids is None:
        return {u.account_id: u for u in map(_row_usage, conn.execute(query))}
    wanted = sorted({int(a) for a in account_ids})
    found: dict[AccountId, QuotaUsage] = {}
    for i in range(0, len(wanted), USAGE_CHUNK):
        chunk = query.where(accounts.c.id.in_(wanted[i : i + USAGE_CHUNK]))
        found.update((u.account_id, u) for u in map(_row_usage, conn.execute(chunk)))
    return found


def quota_usage(conn: Connection, account_id: AccountId) -> QuotaUsage:
    """Usage and limits of one account, in one statement. NotFound."""
    found = quota_usages(conn, [account_id], limited_only=False).get(account_id)
    if found is None:
        raise NotFound(f"no account {account_id}")
    return found


def set_quota(
    conn: Connection, account_id: AccountId, storage: int | None, messages_max: int | None
) -> QuotaUsage:
    """Set both limits (None: no limit) and return the account's usage after.
    NotFound, StoreError for a bad limit. Spec: RFC 9208 §4.3."""
    check_limits(storage, messages_max)
    done = conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(storage_limit=storage, message_limit=messages_max)
    )
    if done.rowcount != 1:
        raise NotFound(f"no account {account_id}")
    return quota_usage(conn, account_id)


# -- delivery batches ----------------------------------------------------------------------


def usage_rows(conn: Connection, account_ids: list[int]) -> dict[int, tuple[int, int]]:
    """``account_id -> (octets, messages)`` used, for the delivery batch (SQLAlchemy)."""
    used: dict[int, tuple[int, int]] = {}
    for i in range(0, len(account_ids), USAGE_CHUNK):
        chunk = {"account_ids": account_ids[i : i + USAGE_CHUNK]}
        for account_id, octets, count in conn.execute(_USAGE_OF, chunk):
            used[int(account_id)] = (int(octets), int(count))
    return used


def ledger_base(
    limits: Mapping[int, tuple[int | None, int | None]], used: Mapping[int, tuple[int, int]]
) -> dict[int, QuotaUsage]:
    """The usage of each limited account of a batch: its limits with what it uses."""
    base: dict[int, QuotaUsage] = {}
    for account_id, (storage_limit, messages_limit) in limits.items():
        octets, count = used.get(account_id, (0, 0))
        base[account_id] = QuotaUsage(
            AccountId(account_id), octets, storage_limit, count, messages_limit
        )
    return base


@dataclass(slots=True)
class QuotaLedger:
    """The usage of the limited accounts of one delivery batch, as callers are admitted.

    ``charge`` collects one caller's additions; ``admit`` checks them all against the
    usage so far and either raises OverQuota (nothing recorded: the caller fails alone)
    or records them for the callers after it. Spec: RFC 9208 §5."""

    usage: dict[int, QuotaUsage]
    """Limited accounts only; an account not in it is unlimited."""
    pending: dict[int, list[int]] = field(default_factory=dict)
    """The current caller's ``account_id -> [octets, messages]``."""

    def charge(self, account_id: int, octets: int) -> None:
        """Count one new message of ``octets`` for the current caller (a no-op for an
        unlimited account)."""
        if account_id in self.usage:
            entry = self.pending.setdefault(account_id, [0, 0])
            entry[0] += octets
            entry[1] += 1

    def admit(self) -> None:
        """Record the current caller's additions, or raise OverQuota for the first
        account they would take over a limit (nothing recorded). The next caller
        starts with no additions either way."""
        pending, self.pending = self.pending, {}
        for account_id, (octets, count) in pending.items():
            usage = self.usage[account_id]
            resource = exceeded(usage, octets=octets, messages=count)
            if resource is not None:
                raise OverQuota.of(usage, resource)
        for account_id, (octets, count) in pending.items():
            usage = self.usage[account_id]
            self.usage[account_id] = dataclasses.replace(
                usage,
                storage_used=usage.storage_used + octets,
                messages_used=usage.messages_used + count,
            )

    def discard(self) -> None:
        """Forget the current caller's additions (it failed for another reason)."""
        self.pending = {}


# -- APPEND, COPY, MOVE ----------------------------------------------------------------------


def lock_for_quota(
    conn: Connection, target_id: MailboxId, also: Collection[int] = ()
) -> QuotaUsage | None:
    """Before a write adds messages to ``target_id``: None when its account has no
    limit (nothing locked); otherwise lock every mailbox of the account and ``also``
    (the source of a COPY or MOVE) in id order, and return the account's usage read
    after the lock. NotFound for an unknown mailbox."""
    row = conn.execute(
        select(accounts.c.id, _LIMITED)
        .select_from(mailboxes.join(accounts, accounts.c.id == mailboxes.c.account_id))
        .where(mailboxes.c.id == target_id)
    ).first()
    if row is None:
        raise NotFound(f"no mailbox {target_id}")
    if not row[1]:
        return None
    account_id = AccountId(int(row[0]))
    ids = conn.execute(select(mailboxes.c.id).where(mailboxes.c.account_id == account_id)).scalars()
    lock_mailboxes(conn, {*ids, *also})
    return quota_usage(conn, account_id)


def check_addition(usage: QuotaUsage | None, octets: int, count: int) -> None:
    """Raise OverQuota when adding ``count`` messages of ``octets`` in all goes over a
    limit of ``usage`` (None: unlimited, never raises)."""
    if usage is None:
        return
    resource = exceeded(usage, octets=octets, messages=count)
    if resource is not None:
        raise OverQuota.of(usage, resource)
