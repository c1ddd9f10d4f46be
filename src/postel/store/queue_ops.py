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

from sqlalchemy import and_, bindparam, func, insert, select, text, update
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
from postel.store.queue_sqlite import SqliteQueueIO, sqlite_io
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
from postel.store.settle_batch import SettleRequest

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


QUEUED_PARTS_SQL = (
    "SELECT m.trace_prefix, b.key, b.size, b.data FROM queue_messages AS m "
    "JOIN blobs AS b ON b.key = m.blob_key WHERE m.id = ?"
)
"""The row of ``message_parts`` (qmark placeholders; ``%s`` for psycopg)."""


def message_parts(
    conn: Connection, message_id: QueueMessageId
) -> tuple[bytes, str, int, bytes | None]:
    """``(trace_prefix, blob key, blob size, inline bytes or None)``. NotFound."""
    sql = QUEUED_PARTS_SQL
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    return queued_parts_row(conn.exec_driver_sql(sql, (int(message_id),)).first(), message_id)


def queued_parts_row(
    row: Sequence[Any] | None, message_id: QueueMessageId
) -> tuple[bytes, str, int, bytes | None]:
    """A ``QUEUED_PARTS_SQL`` row as ``message_parts`` returns it; NotFound for None."""
    if row is None:
        raise NotFound(f"no queued message {message_id}")
    prefix, key, size, data = row
    return bytes(prefix), key, int(size), None if data is None else bytes(data)


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
    io = sqlite_io(conn)
    if io is not None:
        return _take_sqlite(io, worker, now, lease_for, groups, message_ids)
    due = select(_r.c.id, _r.c.message_id, _r.c.domain).where(
        _r.c.message_id.in_(message_ids), _due(now, _OPEN)
    )
    rows = conn.execute(due.order_by(_r.c.id).with_for_update(skip_locked=True)).all()
    # A group one of whose due rows another transaction holds (it claimed that row as a
    # candidate) is left whole for a later lease, never leased in part: one message's
    # recipients at one domain go out in one transaction.
    locked = {r.id for r in rows}
    partial = {(int(r.message_id), r.domain) for r in conn.execute(due) if r.id not in locked}
    ids = [
        r.id
        for r in rows
        if (key := (int(r.message_id), r.domain)) in wanted and key not in partial
    ]
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


def _take_sqlite(
    io: SqliteQueueIO,
    worker: str,
    now: dt.datetime,
    lease_for: float,
    groups: list[tuple[int, str]],
    message_ids: list[int],
) -> list[Lease]:
    """``_take`` on SQLite's cursor (the writer's ``BEGIN IMMEDIATE`` already holds
    the write lock, so no row lock is needed)."""
    wanted = set(groups)
    ids = [i for i, m, domain in io.due_of(message_ids, now) if (m, domain) in wanted]
    if not ids:
        return []
    expires = now + dt.timedelta(seconds=lease_for)
    io.lease(ids, worker, expires)
    by_group: dict[tuple[int, str], list[QueueRecipient]] = {}
    messages: dict[int, QueuedMessage] = {}
    for row in io.leased(ids):
        messages[row.message.id] = row.message
        by_group.setdefault((row.message.id, row.recipient.domain), []).append(row.recipient)
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


_HELD = (
    select(_r.c.id, _r.c.attempts)
    .where(
        _r.c.id.in_(bindparam("ids", expanding=True)),
        _r.c.state == RecipientState.LEASED.value,
        _r.c.leased_by == bindparam("worker"),
        _r.c.lease_expires == bindparam("expires"),
    )
    .with_for_update()
)
"""The recipients among ``ids`` still held by the lease (``worker``, ``expires``)."""
_HAND_BACK = (
    update(_r)
    .where(_r.c.id == bindparam("rid"))
    .values(
        leased_by=None,
        lease_expires=None,
        state=bindparam("new_state"),
        next_attempt=bindparam("due"),
    )
)
_RECORD = (
    update(_r)
    .where(_r.c.id == bindparam("rid"))
    .values(
        leased_by=None,
        lease_expires=None,
        state=bindparam("new_state"),
        next_attempt=bindparam("due"),
        attempts=bindparam("tries"),
        last_attempt=bindparam("tried"),
        last_reply=bindparam("reply"),
    )
)
_PASSABLE = select(_r.c.id, _r.c.notify).where(
    _r.c.id.in_(bindparam("ids", expanding=True)),
    _r.c.state == RecipientState.DELIVERED.value,
    _r.c.notify.contains(Notify.SUCCESS.value),
)
_SET_NOTIFY = update(_r).where(_r.c.id == bindparam("rid")).values(notify=bindparam("notify_to"))
"""Statements of ``settle_many``, built once (SQLAlchemy caches their compiled form;
each execution only binds values, several rows per call)."""


def settle_many(conn: Connection, requests: Sequence[SettleRequest]) -> list[SettleResult]:
    """Settle every request in ``conn``'s one transaction, as ``settle`` each followed
    by passing on the success reports of its ``passed_on`` recipients (RFC 3461
    §5.2.1), in order: a recipient named by two requests is settled by the first only.
    One query per distinct lease holder and end, one batch of updates per statement
    shape, whatever the number of requests. StoreError as ``settle``.
    Spec: RFC 5321 §4.5.4.1; RFC 3464 §2.3.6-2.3.7; RELIABILITY.md D1 (group commit)."""
    held: dict[tuple[str, dt.datetime, int], int] = {}
    by_holder: dict[tuple[str, dt.datetime], list[int]] = {}
    for request in requests:
        ids = [r.id for r in request.lease.recipients]
        if not set(request.outcomes) <= set(ids):
            raise StoreError("settle: outcome for a recipient not in the lease")
        by_holder.setdefault((request.lease.worker, request.lease.expires), []).extend(ids)
    io = sqlite_io(conn)
    for (worker, expires), wanted in by_holder.items():
        unique = sorted(set(wanted))
        rows = (
            io.held(unique, worker, expires)
            if io is not None
            else conn.execute(_HELD, {"ids": unique, "worker": worker, "expires": expires})
        )
        for rid, attempts in rows:
            held[(worker, expires, int(rid))] = int(attempts)
    results: list[SettleResult] = []
    returned: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []
    passable: list[QueueRecipientId] = []
    for request in requests:
        lease = request.lease
        expiry = request.policy.expires(lease.message.created)
        settled: list[QueueRecipientId] = []
        lost: list[QueueRecipientId] = []
        for r in lease.recipients:
            # popped: a second request naming the same recipient finds it lost
            tries = held.pop((lease.worker, lease.expires, r.id), None)
            if tries is None:
                lost.append(r.id)
                continue
            settled.append(r.id)
            outcome = request.outcomes.get(r.id)
            values = _settled(outcome, tries, request.now, expiry, request.policy)
            change: dict[str, Any] = {
                "rid": r.id,
                "new_state": values["state"],
                "due": values["next_attempt"],
            }
            if outcome is None:
                returned.append(change)
                continue
            change |= {
                "tries": values.get("attempts", tries),
                "tried": values["last_attempt"],
                "reply": values["last_reply"],
            }
            recorded.append(change)
            if (
                r.id in request.passed_on
                and r.notify is not None
                and Notify.SUCCESS in r.notify
                and values["state"] == RecipientState.DELIVERED.value
            ):
                passable.append(r.id)
        results.append(SettleResult(settled=tuple(settled), lost=tuple(lost)))
    if io is not None:
        io.settle(returned, recorded)
    else:
        if returned:
            conn.execute(_HAND_BACK, returned)
        if recorded:
            conn.execute(_RECORD, recorded)
    if passable:
        _pass_on(conn, passable)
    return results


def _pass_on(conn: Connection, ids: Sequence[QueueRecipientId]) -> None:
    """Drop SUCCESS from the NOTIFY of the delivered ``ids`` (NOTIFY=SUCCESS alone
    becomes NEVER): a DSN-capable server took them. Spec: RFC 3461 §5.2.1-5.2.2."""
    rows = conn.execute(_PASSABLE, {"ids": list(ids)}).all()
    changes = [
        {
            "rid": row.id,
            "notify_to": ",".join(
                n for n in str(row.notify).split(",") if n and n != Notify.SUCCESS.value
            )
            or Notify.NEVER.value,
        }
        for row in rows
    ]
    if changes:
        conn.execute(_SET_NOTIFY, changes)


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
