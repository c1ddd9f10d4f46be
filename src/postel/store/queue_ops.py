"""Outbound queue operations: enqueue, lease, settle, operator commands, notices.

Synchronous functions over an open Connection, run by SqlStore on its writer thread
(writes) or a reader (single-statement reads). A recipient is *due* when it is queued or
deferred and its ``next_attempt`` has come, or leased and its lease has ended (a leased
recipient's ``next_attempt`` is its lease end, so one index serves both).

Leasing picks due recipients fresh first (queued before expired leases before
deferred, each by ``next_attempt``), groups them by (message, domain) and respects a
per-domain limit on live leases. On PostgreSQL several processes lease at once: due rows
are claimed with ``FOR UPDATE SKIP LOCKED`` and each domain's live-lease count is read
under a transaction-scoped advisory lock on the domain, so the limit holds across
processes. On SQLite the one writer (``BEGIN IMMEDIATE``) serialises leasing.

Operator commands and notices are in queue_admin.py.

Spec: RFC 5321 §4.5.4.1 (retry strategy); RFC 3461 §4; RFC 3464 §2.3.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.engine import Connection, Row

from postel.errors import NotFound, StoreError
from postel.smtp.params import Body, Notify, Orcpt, Ret
from postel.store.api import BlobRef
from postel.store.blobs import BlobFiles
from postel.store.message_ops import Dialect
from postel.store.queue_api import (
    FINAL_STATES,
    QUEUE_LEASE_WINDOW,
    QUEUE_REPLY_MAX,
    QUEUE_WORKER_MAX,
    BackoffPolicy,
    Lease,
    NewQueuedMessage,
    NewRecipient,
    Outcome,
    OutcomeKind,
    QueuedMessage,
    QueueEntry,
    QueueMessageId,
    QueueRecipient,
    QueueRecipientId,
    RecipientState,
    SettleResult,
)
from postel.store.schema import (
    ADDRESS_MAX,
    DOMAIN_MAX,
    ENVID_STORED_MAX,
    ORCPT_STORED_MAX,
    QUEUE_ID_MAX,
    blobs,
    queue_messages,
    queue_recipients,
)

PG_LOCK_NAMESPACE = 0x7153
"""First key of the PostgreSQL advisory locks taken per destination domain while leasing
(the second is ``hashtext(domain)``); other users of advisory locks must avoid it."""

_m, _r = queue_messages, queue_recipients
_WAITING = (RecipientState.QUEUED, RecipientState.DEFERRED)
_OPEN = (RecipientState.QUEUED, RecipientState.DEFERRED, RecipientState.LEASED)
_FINAL = tuple(FINAL_STATES)


# -- rows to values ------------------------------------------------------------------------


def _message(row: Row[Any]) -> QueuedMessage:
    return QueuedMessage(
        id=QueueMessageId(row.id),
        queue_id=row.queue_id,
        blob=BlobRef(row.blob_key, int(row.size) - len(row.trace_prefix)),
        reverse_path=row.reverse_path,
        envid=row.envid,
        ret=None if row.ret is None else Ret(row.ret),
        body=None if row.body is None else Body(row.body),
        smtputf8=bool(row.smtputf8),
        requiretls=bool(row.requiretls),
        created=row.created,
        trace_prefix=bytes(row.trace_prefix),
        size=int(row.size),
    )


def _recipient(row: Row[Any]) -> QueueRecipient:
    return QueueRecipient(
        id=QueueRecipientId(row.r_id),
        message_id=QueueMessageId(row.message_id),
        address=row.address,
        domain=row.domain,
        notify=_notify_from_text(row.notify),
        orcpt=None if row.orcpt_type is None else Orcpt(row.orcpt_type, row.orcpt),
        state=RecipientState(row.state),
        attempts=int(row.attempts),
        next_attempt=row.next_attempt,
        last_attempt=row.last_attempt,
        last_reply=row.last_reply,
        delay_notified=bool(row.delay_notified),
    )


def _notify_to_text(notify: frozenset[Notify] | None) -> str | None:
    if notify is None:
        return None
    return ",".join(sorted(notify)) if notify else Notify.NEVER.value


def _notify_from_text(value: str | None) -> frozenset[Notify] | None:
    if value is None:
        return None
    return frozenset(Notify(v) for v in value.split(","))


_R_COLUMNS = (
    _r.c.id.label("r_id"),
    _r.c.message_id,
    _r.c.address,
    _r.c.domain,
    _r.c.notify,
    _r.c.orcpt_type,
    _r.c.orcpt,
    _r.c.state,
    _r.c.attempts,
    _r.c.next_attempt,
    _r.c.last_attempt,
    _r.c.last_reply,
    _r.c.delay_notified,
)


def entries(rows: Iterable[Row[Any]]) -> list[QueueEntry]:
    """Group joined message+recipient rows (ordered by message) into entries."""
    found: list[QueueEntry] = []
    current: QueuedMessage | None = None
    recipients: list[QueueRecipient] = []
    for row in rows:
        if current is None or current.id != row.id:
            if current is not None:
                found.append(QueueEntry(current, tuple(recipients)))
            current, recipients = _message(row), []
        recipients.append(_recipient(row))
    if current is not None:
        found.append(QueueEntry(current, tuple(recipients)))
    return found


def joined(where: Any) -> Any:
    """Messages joined with their recipients matching ``where``, by message then id."""
    return (
        select(_m, *_R_COLUMNS)
        .select_from(_m.join(_r, _r.c.message_id == _m.c.id))
        .where(where)
        .order_by(_m.c.created, _m.c.id, _r.c.id)
    )


# -- enqueue -------------------------------------------------------------------------------


def enqueue(
    conn: Connection,
    dialect: Dialect,
    files: BlobFiles,
    message: NewQueuedMessage,
    recipients: Sequence[NewRecipient],
    now: dt.datetime,
) -> QueueMessageId:
    """Queue ``message`` for ``recipients`` (all due at ``now``) in the open transaction;
    the blob row is inserted if new. A ``queue_id`` already queued is not queued again:
    its id is returned (a replayed transaction, RELIABILITY.md D1).
    StoreError for bad values, NotFound for a file blob never committed.
    Spec: RFC 5321 §4.5.4; RFC 3461 §4."""
    _check_message(message, recipients)
    existing = conn.execute(select(_m.c.id).where(_m.c.queue_id == message.queue_id)).first()
    if existing is not None:
        return QueueMessageId(existing.id)
    _ensure_blob(conn, dialect, files, message.blob)
    inserted = conn.execute(
        insert(_m).values(
            queue_id=message.queue_id,
            blob_key=message.blob.key,
            reverse_path=message.reverse_path,
            envid=message.envid,
            ret=None if message.ret is None else message.ret.value,
            body=None if message.body is None else message.body.value,
            smtputf8=message.smtputf8,
            requiretls=message.requiretls,
            created=now,
            trace_prefix=message.trace_prefix,
            size=len(message.trace_prefix) + message.blob.size,
        )
    ).inserted_primary_key
    assert inserted is not None
    message_id = int(inserted[0])
    conn.execute(
        insert(_r),
        [
            {
                "message_id": message_id,
                "address": r.address,
                "domain": r.domain,
                "orcpt_type": None if r.orcpt is None else r.orcpt.addr_type,
                "orcpt": None if r.orcpt is None else r.orcpt.address,
                "notify": _notify_to_text(r.notify),
                "state": RecipientState.QUEUED.value,
                "attempts": 0,
                "next_attempt": now,
                "delay_notified": False,
            }
            for r in recipients
        ],
    )
    return QueueMessageId(message_id)


def _check_message(message: NewQueuedMessage, recipients: Sequence[NewRecipient]) -> None:
    if not recipients:
        raise StoreError("a queued message needs at least one recipient")
    if not 0 < len(message.queue_id) <= QUEUE_ID_MAX:
        raise StoreError("queue id empty or too long")
    if len(message.reverse_path) > ADDRESS_MAX:
        raise StoreError("reverse-path too long")
    if message.envid is not None and len(message.envid) > ENVID_STORED_MAX:
        raise StoreError("ENVID too long")
    for r in recipients:
        if not r.domain or len(r.domain) > DOMAIN_MAX or r.domain != r.domain.lower():
            raise StoreError(f"destination {r.domain!r} is not a lower-case domain")
        if not r.domain.isascii():
            raise StoreError(f"destination {r.domain!r} is not an A-label")
        if len(r.address) > ADDRESS_MAX:
            raise StoreError("recipient address too long")
        if r.orcpt is not None and len(r.orcpt.address) > ORCPT_STORED_MAX:
            raise StoreError("ORCPT too long")


def _ensure_blob(conn: Connection, dialect: Dialect, files: BlobFiles, ref: BlobRef) -> None:
    """Insert the blob row: inline bytes as given, a file blob only if its file exists."""
    if ref.inline is not None:
        if len(ref.inline) != ref.size:
            raise StoreError(f"blob {ref.key}: inline bytes do not match its size")
        conn.execute(dialect.insert_blob(ref))
        return
    present = conn.execute(select(blobs.c.key).where(blobs.c.key == ref.key)).first()
    if present is None:
        if not files.exists(ref.key):
            raise NotFound(f"blob {ref.key} was never committed")
        conn.execute(dialect.insert_blob(ref))


def message_parts(
    conn: Connection, message_id: QueueMessageId
) -> tuple[bytes, str, int, bytes | None]:
    """``(trace_prefix, blob key, blob size, inline bytes or None)``. NotFound."""
    row = conn.execute(
        select(_m.c.trace_prefix, blobs.c.key, blobs.c.size, blobs.c.data)
        .select_from(_m.join(blobs, blobs.c.key == _m.c.blob_key))
        .where(_m.c.id == message_id)
    ).first()
    if row is None:
        raise NotFound(f"no queued message {message_id}")
    data = None if row.data is None else bytes(row.data)
    return bytes(row.trace_prefix), row.key, int(row.size), data


# -- lease ---------------------------------------------------------------------------------


def lease(
    conn: Connection,
    worker: str,
    now: dt.datetime,
    *,
    limit: int,
    lease_for: float,
    per_domain_max: int,
) -> list[Lease]:
    """Lease up to ``limit`` groups of due recipients (one message, one domain each) to
    ``worker`` for ``lease_for`` seconds, at most ``per_domain_max`` live leases per
    domain. Fresh mail first, so a deferred backlog never delays new mail.
    StoreError for bad arguments. Spec: RFC 5321 §4.5.4.1."""
    if not worker or len(worker) > QUEUE_WORKER_MAX:
        raise StoreError("worker name empty or too long")
    if limit < 1 or lease_for <= 0 or per_domain_max < 1:
        raise StoreError("lease: limit, lease_for and per_domain_max must be positive")
    candidates = _due_candidates(conn, now, limit * QUEUE_LEASE_WINDOW)
    if not candidates:
        return []
    domains = sorted({c.domain for c in candidates})
    live = _live_leases(conn, domains, now)
    groups: dict[tuple[int, str], None] = {}
    for c in candidates:
        key = (int(c.message_id), c.domain)
        if key in groups:
            continue
        if len(groups) >= limit:
            break
        if live.get(c.domain, 0) >= per_domain_max:
            continue
        groups[key] = None
        live[c.domain] = live.get(c.domain, 0) + 1
    if not groups:
        return []
    return _take(conn, worker, now, lease_for, list(groups))


def _due(now: dt.datetime, states: Sequence[RecipientState]) -> Any:
    return and_(_r.c.state.in_([s.value for s in states]), _r.c.next_attempt <= now)


def _due_candidates(conn: Connection, now: dt.datetime, window: int) -> list[Any]:
    """Up to ``window`` due recipients, claimed (PostgreSQL) and in priority order:
    never tried, then expired leases, then deferred; each by ``next_attempt``."""
    found: list[Any] = []
    for state in (RecipientState.QUEUED, RecipientState.LEASED, RecipientState.DEFERRED):
        if len(found) >= window:
            break
        query = (
            select(_r.c.id, _r.c.message_id, _r.c.domain)
            .where(_due(now, [state]))
            .order_by(_r.c.next_attempt, _r.c.id)
            .limit(window - len(found))
            .with_for_update(skip_locked=True)
        )
        found.extend(conn.execute(query).all())
    return found


def _live_leases(conn: Connection, domains: Sequence[str], now: dt.datetime) -> dict[str, int]:
    """Live leases per domain (messages with a recipient leased beyond ``now``). On
    PostgreSQL each domain is locked first, in sorted order, until commit."""
    if conn.dialect.name == "postgresql":
        for domain in domains:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:ns, hashtext(:d))"),
                {"ns": PG_LOCK_NAMESPACE, "d": domain},
            )
    rows = conn.execute(
        select(_r.c.domain, func.count(func.distinct(_r.c.message_id)))
        .where(
            _r.c.state == RecipientState.LEASED.value,
            _r.c.next_attempt > now,
            _r.c.domain.in_(domains),
        )
        .group_by(_r.c.domain)
    ).all()
    return {domain: int(n) for domain, n in rows}


def _take(
    conn: Connection,
    worker: str,
    now: dt.datetime,
    lease_for: float,
    groups: list[tuple[int, str]],
) -> list[Lease]:
    """Lease every due recipient of the chosen (message, domain) groups."""
    message_ids = sorted({m for m, _ in groups})
    wanted = set(groups)
    rows = conn.execute(
        select(_r.c.id, _r.c.message_id, _r.c.domain)
        .where(_r.c.message_id.in_(message_ids), _due(now, _OPEN))
        .order_by(_r.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    ids = [r.id for r in rows if (int(r.message_id), r.domain) in wanted]
    if not ids:
        return []
    expires = now + dt.timedelta(seconds=lease_for)
    conn.execute(
        update(_r)
        .where(_r.c.id.in_(ids))
        .values(
            state=RecipientState.LEASED.value,
            leased_by=worker,
            lease_expires=expires,
            next_attempt=expires,
        )
    )
    by_group: dict[tuple[int, str], list[QueueRecipient]] = {}
    messages: dict[int, QueuedMessage] = {}
    for row in conn.execute(joined(_r.c.id.in_(ids))):
        messages[row.id] = _message(row)
        by_group.setdefault((row.id, row.domain), []).append(_recipient(row))
    return [
        Lease(messages[m], domain, tuple(by_group[(m, domain)]), worker, expires)
        for m, domain in groups
        if (m, domain) in by_group
    ]


# -- settle --------------------------------------------------------------------------------


def settle(
    conn: Connection,
    held: Lease,
    outcomes: Mapping[QueueRecipientId, Outcome],
    now: dt.datetime,
    policy: BackoffPolicy,
) -> SettleResult:
    """Record the outcome of each recipient still held by ``held`` (same worker, same
    lease end: also after the lease ended, as long as nobody took it over, so a late
    report of a delivery is not lost). Recipients of the lease without an outcome are
    due again at once. A deferral past the policy's lifetime fails the recipient.
    StoreError for an outcome naming a recipient not in the lease.
    Spec: RFC 5321 §4.5.4.1; RFC 3464 §2.3.6-2.3.7."""
    ids = [r.id for r in held.recipients]
    if not set(outcomes) <= set(ids):
        raise StoreError("settle: outcome for a recipient not in the lease")
    rows = conn.execute(
        select(_r.c.id, _r.c.attempts)
        .where(
            _r.c.id.in_(ids),
            _r.c.state == RecipientState.LEASED.value,
            _r.c.leased_by == held.worker,
            _r.c.lease_expires == held.expires,
        )
        .with_for_update()
    ).all()
    attempts = {QueueRecipientId(r.id): int(r.attempts) for r in rows}
    expiry = policy.expires(held.message.created)
    for rid, tries in attempts.items():
        outcome = outcomes.get(rid)
        conn.execute(
            update(_r)
            .where(_r.c.id == rid)
            .values(
                leased_by=None, lease_expires=None, **_settled(outcome, tries, now, expiry, policy)
            )
        )
    return SettleResult(
        settled=tuple(i for i in ids if i in attempts),
        lost=tuple(i for i in ids if i not in attempts),
    )


def _settled(
    outcome: Outcome | None,
    tries: int,
    now: dt.datetime,
    expiry: dt.datetime,
    policy: BackoffPolicy,
) -> dict[str, Any]:
    if outcome is None:
        state = RecipientState.DEFERRED if tries else RecipientState.QUEUED
        return {"state": state.value, "next_attempt": now}
    done: dict[str, Any] = {"last_attempt": now, "last_reply": outcome.reply[:QUEUE_REPLY_MAX]}
    if outcome.kind is OutcomeKind.DELIVERED:
        return done | {"state": RecipientState.DELIVERED.value, "next_attempt": now}
    if outcome.kind is OutcomeKind.FAILED or now >= expiry:
        return done | {"state": RecipientState.FAILED.value, "next_attempt": now}
    retry = outcome.retry_at or policy.next_attempt(tries + 1, now)
    return done | {
        "state": RecipientState.DEFERRED.value,
        "attempts": tries + 1,
        "next_attempt": min(retry, expiry),
    }
