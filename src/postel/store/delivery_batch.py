"""One group-commit batch inside the open delivery transaction.

Fast path, tried first for every batch: the mailbox rows of every account are locked in
id order, then, inside ONE savepoint for the whole batch, the outcome of every request is
planned in Python (mailbox, duplicate and blob checks, UID and MODSEQ allocation) from two
set-wise reads (the existing ``(mailbox_id, queue_id)`` pairs of the batch in one query;
the rows of file-backed blobs in one ``IN`` query per ``LOCK_CHUNK`` keys), and written
with one ``executemany`` for blob rows (insert-or-ignore, sorted by key) and one for
message rows. A request whose checks fail is left out of the plan and gets its own error,
exactly as in the per-request path.

Quota: the statement that locks the mailboxes also reads each account's limits; only
when the batch has accounts with a limit is their usage read (one more statement), and
a ``quota_ops.QuotaLedger`` admits each request against it, in order: a request that
would take an account over a limit fails alone with ``OverQuota`` and stores nothing
(RFC 9208 §5).

Fallback: when a write of the fast path fails (a value the database refuses, a constraint
the plan could not foresee), the batch savepoint is rolled back and the batch runs again
request by request, each in its own savepoint, so a bad request fails alone.

Every statement is built once per dialect (``DeliveryStatements``) and executed with
parameter dicts.

Spec: ARCHITECTURE.md principle 3; RELIABILITY.md D1; RFC 9051 §2.3.1.1 (UID, UIDNEXT);
RFC 7162 §3.1 (MODSEQ, HIGHESTMODSEQ).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Insert, Select, TextClause, Update, bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError

from postel.errors import NotFound, StoreError
from postel.ids import MailboxId
from postel.store.api import BlobRef, Delivered, Delivery
from postel.store.blobs import BlobFiles
from postel.store.directory_sql import flags_text, mailbox_name
from postel.store.quota_ops import QuotaLedger, ledger_base, usage_rows
from postel.store.schema import accounts, blobs, mailboxes, messages

_log = logging.getLogger(__name__)

LOCK_CHUNK = 500
"""Accounts (or blob keys) per ``IN (...)`` list (under every driver's bind-parameter
limit)."""

Outcome = list[Delivered] | StoreError
MailboxKey = tuple[int, str]
"""``(account_id, mailbox name)``."""
SeenKey = tuple[int, str]
"""``(mailbox_id, queue_id)``."""
Limits = dict[int, tuple[int | None, int | None]]
"""``account_id -> (storage_limit, message_limit)`` of the accounts with a limit."""

_SEEN_SQLITE = """
SELECT m.mailbox_id, m.queue_id, m.uid, m.modseq FROM json_each(:pairs) AS v
JOIN messages AS m ON m.mailbox_id = json_extract(v.value, '$[0]')
 AND m.queue_id = json_extract(v.value, '$[1]')
"""
_SEEN_POSTGRESQL = """
SELECT m.mailbox_id, m.queue_id, m.uid, m.modseq
FROM unnest(CAST(:mailbox_ids AS integer[]), CAST(:queue_ids AS text[])) AS v(mb, q)
JOIN messages AS m ON m.mailbox_id = v.mb AND m.queue_id = v.q
"""

_FALLBACK_ERRORS = (DBAPIError, StatementError, ValueError, TypeError)
"""Errors of the fast path's writes that send the batch to the per-request path."""
FALLBACK_DRIVER_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError)
"""The same for statements run on the sqlite3 cursor (``SqliteBatchIO``): a value or
constraint the database refuses."""


@dataclass(frozen=True, slots=True)
class DeliveryStatements:
    """The statements of a batch, built once per dialect, executed with parameter dicts.

    ``seen_pairs`` finds already delivered ``(mailbox_id, queue_id)`` pairs with one
    parameter whatever the batch size (SQLite: a JSON array through ``json_each``;
    PostgreSQL: two arrays through ``unnest``), joined on the unique index
    ``uq_messages_mailbox_id_queue_id``.
    """

    dialect: str
    lock_mailboxes: Select[Any]
    seen_pairs: TextClause
    seen_one: Select[Any]
    blob_keys: Select[Any]
    insert_blob: Insert
    insert_message: Insert
    update_mailbox: Update

    @classmethod
    def for_dialect(cls, dialect: str) -> DeliveryStatements:
        """Statements for ``sqlite`` or ``postgresql``."""
        flavour = postgresql if dialect == "postgresql" else sqlite
        return cls(
            dialect=dialect,
            lock_mailboxes=select(
                mailboxes.c.id,
                mailboxes.c.account_id,
                mailboxes.c.name,
                mailboxes.c.uidvalidity,
                mailboxes.c.uidnext,
                mailboxes.c.highestmodseq,
                accounts.c.storage_limit,
                accounts.c.message_limit,
            )
            .join(accounts, accounts.c.id == mailboxes.c.account_id)
            .where(mailboxes.c.account_id.in_(bindparam("account_ids", expanding=True)))
            .order_by(mailboxes.c.id)
            .with_for_update(of=mailboxes),
            seen_pairs=text(_SEEN_POSTGRESQL if dialect == "postgresql" else _SEEN_SQLITE),
            seen_one=select(messages.c.uid, messages.c.modseq).where(
                messages.c.mailbox_id == bindparam("mailbox_id"),
                messages.c.queue_id == bindparam("queue_id"),
            ),
            blob_keys=select(blobs.c.key).where(blobs.c.key.in_(bindparam("keys", expanding=True))),
            insert_blob=flavour.insert(blobs).on_conflict_do_nothing(index_elements=["key"]),
            insert_message=insert(messages),
            update_mailbox=update(mailboxes)
            .where(mailboxes.c.id == bindparam("b_id"))
            .values(uidnext=bindparam("b_uidnext"), highestmodseq=bindparam("b_modseq")),
        )

    def seen_parameters(self, pairs: Sequence[SeenKey]) -> dict[str, object]:
        """The parameters of ``seen_pairs`` for ``pairs``."""
        if self.dialect == "postgresql":
            return {"mailbox_ids": [p[0] for p in pairs], "queue_ids": [p[1] for p in pairs]}
        return {"pairs": json.dumps(pairs)}


@dataclass(slots=True)
class _MailboxState:
    id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    dirty: bool = False

    def copy(self) -> _MailboxState:
        return _MailboxState(
            self.id, self.uidvalidity, self.uidnext, self.highestmodseq, self.dirty
        )


class BatchIO(Protocol):
    """The statements of the fast path, on one open transaction.

    Two implementations: ``AlchemyBatchIO`` (SQLAlchemy Core, every dialect) and
    ``postel.store.delivery_sqlite.SqliteBatchIO`` (the sqlite3 cursor under the same
    transaction: the same SQL without SQLAlchemy's per-statement cost).
    """

    def lock_mailboxes(
        self, account_ids: list[int], names: frozenset[str]
    ) -> tuple[dict[MailboxKey, _MailboxState], Limits]:
        """The mailboxes of ``account_ids``, locked, and the accounts' quota limits; at
        least those called one of ``names`` (normalised with ``mailbox_name``)."""
        ...

    def usage(self, account_ids: list[int]) -> dict[int, tuple[int, int]]: ...
    def seen(self, pairs: list[SeenKey]) -> dict[SeenKey, tuple[int, int]]: ...
    def present_blobs(self, keys: list[str]) -> set[str]: ...
    def insert_blobs(self, rows: list[dict[str, Any]]) -> None: ...
    def insert_messages(self, rows: list[dict[str, Any]]) -> None: ...
    def update_mailboxes(self, rows: list[dict[str, Any]]) -> None: ...
    def savepoint(self) -> AbstractContextManager[object]: ...


@dataclass(frozen=True, slots=True)
class AlchemyBatchIO:
    """``BatchIO`` through SQLAlchemy Core on ``conn``."""

    conn: Connection
    stmts: DeliveryStatements

    def lock_mailboxes(
        self, account_ids: list[int], names: frozenset[str]
    ) -> tuple[dict[MailboxKey, _MailboxState], Limits]:
        # Every mailbox of the accounts, in id order: the lock order of module docstring.
        state: dict[MailboxKey, _MailboxState] = {}
        limits: Limits = {}
        for i in range(0, len(account_ids), LOCK_CHUNK):
            rows = self.conn.execute(
                self.stmts.lock_mailboxes, {"account_ids": account_ids[i : i + LOCK_CHUNK]}
            )
            for mb_id, account_id, name, validity, uidnext, modseq, storage, count in rows:
                state[(account_id, name)] = _MailboxState(mb_id, validity, uidnext, modseq)
                if storage is not None or count is not None:
                    limits[account_id] = (storage, count)
        return state, limits

    def usage(self, account_ids: list[int]) -> dict[int, tuple[int, int]]:
        return usage_rows(self.conn, account_ids)

    def seen(self, pairs: list[SeenKey]) -> dict[SeenKey, tuple[int, int]]:
        rows = self.conn.execute(self.stmts.seen_pairs, self.stmts.seen_parameters(pairs))
        return {(int(mb), str(q)): (int(uid), int(modseq)) for mb, q, uid, modseq in rows}

    def present_blobs(self, keys: list[str]) -> set[str]:
        present: set[str] = set()
        for i in range(0, len(keys), LOCK_CHUNK):
            chunk = {"keys": keys[i : i + LOCK_CHUNK]}
            present.update(self.conn.execute(self.stmts.blob_keys, chunk).scalars())
        return present

    def insert_blobs(self, rows: list[dict[str, Any]]) -> None:
        self.conn.execute(self.stmts.insert_blob, rows)

    def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        self.conn.execute(self.stmts.insert_message, rows)

    def update_mailboxes(self, rows: list[dict[str, Any]]) -> None:
        self.conn.execute(self.stmts.update_mailbox, rows)

    def savepoint(self) -> AbstractContextManager[object]:
        return self.conn.begin_nested()


def _message_row(delivery: Delivery, mailbox_id: int, uid: int, modseq: int) -> dict[str, Any]:
    return {
        "mailbox_id": mailbox_id,
        "uid": uid,
        "modseq": modseq,
        "flags": flags_text(delivery.flags),
        "internal_date": delivery.internal_date,
        "size": len(delivery.trace_prefix) + delivery.blob.size,
        "blob_key": delivery.blob.key,
        "trace_prefix": delivery.trace_prefix,
        "summary": delivery.summary,
        "queue_id": delivery.queue_id,
        "save_date": delivery.internal_date,
    }


def _delivered(
    delivery: Delivery, mailbox: _MailboxState, uid: int, modseq: int, duplicate: bool = False
) -> Delivered:
    return Delivered(
        account_id=delivery.account_id,
        mailbox_id=MailboxId(mailbox.id),
        uidvalidity=mailbox.uidvalidity,
        uid=uid,
        modseq=modseq,
        duplicate=duplicate,
    )


def _allocate(mailbox: _MailboxState) -> tuple[int, int]:
    """The next UID and MODSEQ of ``mailbox``, taken. Spec: RFC 9051 §2.3.1.1."""
    uid, modseq = mailbox.uidnext, mailbox.highestmodseq + 1
    mailbox.uidnext, mailbox.highestmodseq, mailbox.dirty = uid + 1, modseq, True
    return uid, modseq


def _overlay_mailbox(
    state: dict[MailboxKey, _MailboxState],
    overlay: dict[MailboxKey, _MailboxState],
    delivery: Delivery,
) -> _MailboxState:
    where = (int(delivery.account_id), mailbox_name(delivery.mailbox))
    mailbox = overlay.get(where)
    if mailbox is None:
        base = state.get(where)
        if base is None:
            raise NotFound(f"no mailbox {where[1]!r} for account {where[0]}")
        mailbox = overlay[where] = base.copy()
    return mailbox


# -- the fast path -----------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """What the fast path will write, and the outcome of every request."""

    state: dict[MailboxKey, _MailboxState]
    seen: dict[SeenKey, tuple[int, int]]
    """Delivered ``(mailbox_id, queue_id)`` pairs -> ``(uid, modseq)``: in the database,
    or planned by an earlier delivery of the batch."""
    present_blobs: set[str]
    """Keys of blob rows in the database (file-backed ones looked up) or planned."""
    quota: QuotaLedger
    blob_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    message_rows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass(slots=True)
class _RequestPlan:
    overlay: dict[MailboxKey, _MailboxState] = field(default_factory=dict)
    seen: dict[SeenKey, tuple[int, int]] = field(default_factory=dict)
    blob_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    message_rows: list[dict[str, Any]] = field(default_factory=list)


def _check_blob(plan: _Plan, request: _RequestPlan, ref: BlobRef, files: BlobFiles) -> None:
    """Plan the blob row of ``ref`` if needed; the per-request path's checks."""
    if ref.key in plan.present_blobs or ref.key in request.blob_rows:
        return
    if ref.inline is not None:
        if len(ref.inline) != ref.size:
            raise StoreError(f"blob {ref.key}: inline bytes do not match its size")
        request.blob_rows[ref.key] = {"key": ref.key, "size": ref.size, "data": ref.inline}
        return
    if not files.exists(ref.key):
        raise NotFound(f"blob {ref.key} was never committed")
    request.blob_rows[ref.key] = {"key": ref.key, "size": ref.size, "data": None}


def _plan_one(
    plan: _Plan, request: _RequestPlan, delivery: Delivery, files: BlobFiles
) -> Delivered:
    mailbox = _overlay_mailbox(plan.state, request.overlay, delivery)
    seen_key = None if delivery.queue_id is None else (mailbox.id, str(delivery.queue_id))
    if seen_key is not None:
        hit = request.seen.get(seen_key) or plan.seen.get(seen_key)
        if hit is not None:
            return _delivered(delivery, mailbox, hit[0], hit[1], duplicate=True)
    _check_blob(plan, request, delivery.blob, files)
    if delivery.internal_date.tzinfo is None:
        raise StoreError("delivery refused: naive datetime given to the store; pass an aware one")
    uid, modseq = _allocate(mailbox)
    row = _message_row(delivery, mailbox.id, uid, modseq)
    plan.quota.charge(int(delivery.account_id), row["size"])
    request.message_rows.append(row)
    if seen_key is not None:
        request.seen[seen_key] = (uid, modseq)
    return _delivered(delivery, mailbox, uid, modseq)


def _plan_request(plan: _Plan, deliveries: Sequence[Delivery], files: BlobFiles) -> None:
    request = _RequestPlan()
    try:
        out = [_plan_one(plan, request, d, files) for d in deliveries]
        plan.quota.admit()
    except StoreError as exc:
        plan.quota.discard()
        plan.outcomes.append(exc)
        return
    plan.state.update(request.overlay)
    plan.seen.update(request.seen)
    plan.present_blobs.update(request.blob_rows)
    plan.blob_rows.update(request.blob_rows)
    plan.message_rows.extend(request.message_rows)
    plan.outcomes.append(out)


def _seen_pairs(
    state: dict[MailboxKey, _MailboxState], requests: Sequence[Sequence[Delivery]]
) -> list[SeenKey]:
    pairs: set[SeenKey] = set()
    for request in requests:
        for d in request:
            mailbox = state.get((int(d.account_id), mailbox_name(d.mailbox)))
            if d.queue_id is not None and mailbox is not None:
                pairs.add((mailbox.id, str(d.queue_id)))
    return sorted(pairs)


def _fast_path(
    io: BatchIO,
    files: BlobFiles,
    locked: dict[MailboxKey, _MailboxState],
    requests: Sequence[Sequence[Delivery]],
    quota: QuotaLedger,
) -> _Plan:
    pairs = _seen_pairs(locked, requests)
    file_keys = sorted({d.blob.key for r in requests for d in r if d.blob.inline is None})
    plan = _Plan(
        state=dict(locked),
        seen=io.seen(pairs) if pairs else {},
        present_blobs=io.present_blobs(file_keys) if file_keys else set(),
        quota=quota,
    )
    for request in requests:
        _plan_request(plan, request, files)
    if plan.blob_rows:
        io.insert_blobs([plan.blob_rows[k] for k in sorted(plan.blob_rows)])
    if plan.message_rows:
        io.insert_messages(plan.message_rows)
    return plan


# -- the per-request path ----------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    conn: Connection
    stmts: DeliveryStatements
    files: BlobFiles
    state: dict[MailboxKey, _MailboxState]
    quota: QuotaLedger
    known_blobs: set[str] = field(default_factory=set)
    """Blob keys whose row a committed request of this batch wrote or found."""


def _ensure_blob(batch: _Batch, ref: BlobRef) -> None:
    if ref.key in batch.known_blobs:
        return
    if ref.inline is not None:
        if len(ref.inline) != ref.size:
            raise StoreError(f"blob {ref.key}: inline bytes do not match its size")
        row = {"key": ref.key, "size": ref.size, "data": ref.inline}
        batch.conn.execute(batch.stmts.insert_blob, row)
        return
    exists = batch.conn.execute(batch.stmts.blob_keys, {"keys": [ref.key]}).first()
    if exists is None:
        if not batch.files.exists(ref.key):
            raise NotFound(f"blob {ref.key} was never committed")
        row = {"key": ref.key, "size": ref.size, "data": None}
        batch.conn.execute(batch.stmts.insert_blob, row)


def _deliver_one(
    batch: _Batch,
    delivery: Delivery,
    overlay: dict[MailboxKey, _MailboxState],
    blobs_written: set[str],
) -> Delivered:
    mailbox = _overlay_mailbox(batch.state, overlay, delivery)
    if delivery.queue_id is not None:
        seen = batch.conn.execute(
            batch.stmts.seen_one, {"mailbox_id": mailbox.id, "queue_id": delivery.queue_id}
        ).first()
        if seen is not None:
            return _delivered(delivery, mailbox, int(seen[0]), int(seen[1]), duplicate=True)
    _ensure_blob(batch, delivery.blob)
    blobs_written.add(delivery.blob.key)
    uid, modseq = _allocate(mailbox)
    row = _message_row(delivery, mailbox.id, uid, modseq)
    batch.quota.charge(int(delivery.account_id), row["size"])
    batch.conn.execute(batch.stmts.insert_message, row)
    return _delivered(delivery, mailbox, uid, modseq)


def _run_request(batch: _Batch, request: Sequence[Delivery]) -> Outcome:
    overlay: dict[MailboxKey, _MailboxState] = {}
    blobs_written: set[str] = set()  # a duplicate writes no blob row: not known then
    try:
        with batch.conn.begin_nested():
            out = [_deliver_one(batch, d, overlay, blobs_written) for d in request]
            batch.quota.admit()  # OverQuota rolls the savepoint back
    except StoreError as exc:
        batch.quota.discard()
        return exc
    except DBAPIError as exc:
        batch.quota.discard()
        _log.warning("store.deliver.rejected error=%s", type(exc.orig).__name__)
        return StoreError(f"delivery refused by the database: {exc.orig}")
    except (StatementError, ValueError, TypeError) as exc:
        # Bad values (e.g. a naive internal_date) fail this caller only.
        batch.quota.discard()
        _log.warning("store.deliver.rejected error=%s", type(exc).__name__)
        return StoreError(f"delivery refused: {exc}")
    batch.state.update(overlay)
    batch.known_blobs.update(blobs_written)
    return out


def _per_request_path(
    conn: Connection,
    stmts: DeliveryStatements,
    files: BlobFiles,
    locked: dict[MailboxKey, _MailboxState],
    requests: Sequence[Sequence[Delivery]],
    quota: QuotaLedger,
) -> tuple[dict[MailboxKey, _MailboxState], list[Outcome]]:
    batch = _Batch(conn=conn, stmts=stmts, files=files, state=dict(locked), quota=quota)
    outcomes = [_run_request(batch, request) for request in requests]
    return batch.state, outcomes


# -- the batch ---------------------------------------------------------------------------


def run_batch(
    conn: Connection | None,
    stmts: DeliveryStatements,
    files: BlobFiles,
    requests: Sequence[Sequence[Delivery]],
    io: BatchIO | None = None,
) -> list[Outcome]:
    """Run every request of a batch in the open transaction ``conn``; one outcome per
    request (its Delivered list, or the StoreError that kept it out of the commit).

    ``io`` runs the fast path's statements (default: SQLAlchemy on ``conn``). The fast
    path runs first; if one of its writes fails, the per-request path runs instead (see
    the module docstring), on ``conn``; without ``conn`` (``io`` on a bare driver
    connection) the fast path's error is raised instead. Raises DBAPIError (or
    sqlite3.Error through ``io``) when the transaction itself fails (e.g. locking the
    mailboxes).
    """
    if io is None:
        assert conn is not None, "run_batch needs a connection or a BatchIO"
        io = AlchemyBatchIO(conn, stmts)
    account_ids = sorted({int(d.account_id) for request in requests for d in request})
    names = frozenset(mailbox_name(d.mailbox) for request in requests for d in request)
    locked, limits = io.lock_mailboxes(account_ids, names)
    base = ledger_base(limits, io.usage(sorted(limits))) if limits else {}
    try:
        with io.savepoint():
            plan = _fast_path(io, files, locked, requests, QuotaLedger(dict(base)))
        state, outcomes = plan.state, plan.outcomes
    except (*_FALLBACK_ERRORS, *FALLBACK_DRIVER_ERRORS) as exc:
        if conn is None:
            raise
        _log.info("store.deliver.fast_path_failed error=%s", type(exc).__name__)
        state, outcomes = _per_request_path(
            conn, stmts, files, locked, requests, QuotaLedger(dict(base))
        )
    dirty = [
        {"b_id": s.id, "b_uidnext": s.uidnext, "b_modseq": s.highestmodseq}
        for s in state.values()
        if s.dirty
    ]
    if dirty:
        io.update_mailboxes(dirty)
    return outcomes
