"""Outbound queue operations for operators and for notices: list, show, hold, release,
retry, delete (``postel queue ...``), delay notices, finished messages, and the success
reports that passed on to the next server.

Synchronous functions over an open Connection (see queue_ops.py). Reads are single
statements, so each sees one consistent snapshot on a reader connection.

Spec: RFC 3461 §4.1, §5.2.1; RFC 3464 §2.3.3; RFC 5321 §4.5.4, §4.5.5.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import case, delete, exists, or_, select, update
from sqlalchemy.engine import Connection

from postel.errors import NotFound
from postel.smtp.params import Notify
from postel.store.queue_api import (
    FINAL_STATES,
    QUEUE_LIST_MAX,
    BackoffPolicy,
    QueueEntry,
    QueueFilter,
    QueueMessageId,
    QueueRecipientId,
    RecipientState,
)
from postel.store.queue_ops import entries, joined
from postel.store.schema import queue_messages as _m
from postel.store.schema import queue_recipients as _r

_WAITING = (RecipientState.QUEUED, RecipientState.DEFERRED)
_OPEN = (RecipientState.QUEUED, RecipientState.DEFERRED, RecipientState.LEASED)
_FINAL = tuple(FINAL_STATES)


# -- operator commands ---------------------------------------------------------------------


def queue_list(conn: Connection, which: QueueFilter) -> list[QueueEntry]:
    """Messages with a recipient matching ``which``, oldest first, with all their
    recipients, in one statement."""
    qm, qr = _m.alias("qm"), _r.alias("qr")
    cond = []
    if which.state is not None:
        cond.append(qr.c.state == which.state.value)
    if which.domain is not None:
        cond.append(qr.c.domain == which.domain.lower())
    chosen = select(qm.c.id).order_by(qm.c.created, qm.c.id)
    if cond:
        chosen = chosen.where(exists().where(qr.c.message_id == qm.c.id, *cond))
    chosen = chosen.limit(max(0, min(which.limit, QUEUE_LIST_MAX)))
    return entries(conn.execute(joined(_m.c.id.in_(chosen))))


def queue_show(conn: Connection, queue_id: str) -> QueueEntry | None:
    """The message queued as ``queue_id`` with every recipient, or None."""
    found = entries(conn.execute(joined(_m.c.queue_id == queue_id)))
    return found[0] if found else None


def _message_id(conn: Connection, queue_id: str) -> int:
    row = conn.execute(select(_m.c.id).where(_m.c.queue_id == queue_id)).first()
    if row is None:
        raise NotFound(f"no queued message {queue_id}")
    return int(row.id)


def hold(conn: Connection, queue_id: str) -> int:
    """Hold the waiting recipients (queued or deferred; a recipient in a live attempt
    finishes it). Returns how many were held. NotFound."""
    mid = _message_id(conn, queue_id)
    return int(
        conn.execute(
            update(_r)
            .where(_r.c.message_id == mid, _r.c.state.in_([s.value for s in _WAITING]))
            .values(state=RecipientState.HELD.value)
        ).rowcount
    )


def release(conn: Connection, queue_id: str, now: dt.datetime) -> int:
    """Make held recipients due at ``now``. Returns how many. NotFound."""
    mid = _message_id(conn, queue_id)
    state = case(
        (_r.c.attempts > 0, RecipientState.DEFERRED.value), else_=RecipientState.QUEUED.value
    )
    return int(
        conn.execute(
            update(_r)
            .where(_r.c.message_id == mid, _r.c.state == RecipientState.HELD.value)
            .values(state=state, next_attempt=now)
        ).rowcount
    )


def retry_now(conn: Connection, queue_id: str | None, now: dt.datetime) -> int:
    """Make waiting recipients due at ``now``: of ``queue_id``, or of every message
    (None: ``postel queue flush``). Returns how many. NotFound."""
    cond = [_r.c.state.in_([s.value for s in _WAITING]), _r.c.next_attempt > now]
    if queue_id is not None:
        cond.append(_r.c.message_id == _message_id(conn, queue_id))
    return int(conn.execute(update(_r).where(*cond).values(next_attempt=now)).rowcount)


def delete_message(conn: Connection, queue_id: str) -> None:
    """Remove the message and its recipients without any DSN; a live lease on it
    settles to nothing. NotFound."""
    mid = _message_id(conn, queue_id)
    conn.execute(delete(_r).where(_r.c.message_id == mid))
    conn.execute(delete(_m).where(_m.c.id == mid))


# -- notices and clean-up ------------------------------------------------------------------


def due_delay_notices(
    conn: Connection, now: dt.datetime, policy: BackoffPolicy, limit: int
) -> list[QueueEntry]:
    """Messages queued at least ``policy.delay_notice_after`` ago with recipients tried
    at least once, still undelivered, not yet notified, that ask for DELAY (default
    NOTIFY included); each entry lists only those recipients. Never for the null
    sender. Spec: RFC 3461 §4.1; RFC 3464 §2.3.3 (Action: delayed); RFC 5321 §4.5.5."""
    born_before = now - dt.timedelta(seconds=policy.delay_notice_after)
    qm, qr = _m.alias("qm"), _r.alias("qr")
    picked = (
        select(qr.c.id)
        .join(qm, qm.c.id == qr.c.message_id)
        .where(
            qm.c.created <= born_before,
            qm.c.reverse_path != "",
            qr.c.state.in_([s.value for s in _OPEN]),
            qr.c.attempts > 0,
            qr.c.delay_notified.is_(False),
            or_(qr.c.notify.is_(None), qr.c.notify.contains(Notify.DELAY.value)),
        )
        .order_by(qr.c.id)
        .limit(max(0, min(limit, QUEUE_LIST_MAX)))
    )
    return entries(conn.execute(joined(_r.c.id.in_(picked))))


def lease_holders(conn: Connection) -> list[str]:
    """The distinct worker names holding leased recipients (live or not)."""
    rows = conn.execute(
        select(_r.c.leased_by)
        .where(_r.c.state == RecipientState.LEASED.value, _r.c.leased_by.is_not(None))
        .distinct()
    ).all()
    return sorted(str(row[0]) for row in rows)


def release_leases(conn: Connection, holders: Collection[str], now: dt.datetime) -> int:
    """End at ``now`` the leases of ``holders`` (workers known to be dead): their
    recipients are due at once, as an expired lease would be, and no longer count
    against their domain's connection limit. Attempts are not counted (the fate of the
    transaction in flight is unknown: it is sent again). Returns the recipients freed.
    Spec: RFC 5321 §6.1 (retry what may not have been delivered)."""
    if not holders:
        return 0
    result = conn.execute(
        update(_r)
        .where(_r.c.state == RecipientState.LEASED.value, _r.c.leased_by.in_(list(holders)))
        .values(next_attempt=now, lease_expires=now)
    )
    return int(result.rowcount or 0)


def mark_delay_notified(conn: Connection, ids: Sequence[QueueRecipientId]) -> None:
    """Record that these recipients' delay notice was sent."""
    if ids:
        conn.execute(update(_r).where(_r.c.id.in_(list(ids))).values(delay_notified=True))


def _unfinished(message: Any) -> Any:
    """EXISTS a recipient of ``message`` (a queue_messages FROM item) not yet final."""
    qr = _r.alias("qr")
    return exists().where(qr.c.message_id == message.c.id, qr.c.state.not_in(_FINAL))


def finished_messages(conn: Connection, limit: int) -> list[QueueEntry]:
    """Messages whose every recipient is delivered or failed, with all recipients (what
    a DSN needs: ``QueueEntry.failed``, ``delivered_with_notice``), oldest first.
    Spec: RFC 3464 §2; RFC 3461 §4.1."""
    qm = _m.alias("qm")
    picked = (
        select(qm.c.id)
        .where(~_unfinished(qm))
        .order_by(qm.c.id)
        .limit(max(0, min(limit, QUEUE_LIST_MAX)))
    )
    return entries(conn.execute(joined(_m.c.id.in_(picked))))


def forget_finished(conn: Connection, ids: Sequence[QueueMessageId]) -> int:
    """Remove these messages if every recipient is final (their blobs become
    collectable); returns how many were removed."""
    if not ids:
        return 0
    gone = [
        int(i)
        for i in conn.execute(
            select(_m.c.id).where(_m.c.id.in_(list(ids)), ~_unfinished(_m))
        ).scalars()
    ]
    if gone:
        conn.execute(delete(_r).where(_r.c.message_id.in_(gone)))
        conn.execute(delete(_m).where(_m.c.id.in_(gone)))
    return len(gone)


# -- success reports passed on -------------------------------------------------------------


def pass_on_success(conn: Connection, ids: Sequence[QueueRecipientId]) -> int:
    """Drop SUCCESS from the NOTIFY of those ``ids`` that are delivered: they went to a
    server that took the DSN extension with their NOTIFY, so a success report is that
    server's to send, not ours (NOTIFY=SUCCESS alone becomes NEVER). Returns how many
    changed. Spec: RFC 3461 §5.2.1 (relay to a conforming server), §5.2.2."""
    if not ids:
        return 0
    rows = conn.execute(
        select(_r.c.id, _r.c.notify).where(
            _r.c.id.in_(list(ids)),
            _r.c.state == RecipientState.DELIVERED.value,
            _r.c.notify.contains(Notify.SUCCESS.value),
        )
    ).all()
    for row in rows:
        kept = [n for n in str(row.notify).split(",") if n and n != Notify.SUCCESS.value]
        conn.execute(
            update(_r).where(_r.c.id == row.id).values(notify=",".join(kept) or Notify.NEVER.value)
        )
    return len(rows)
