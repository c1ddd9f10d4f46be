"""Mailbox operations for IMAP: create, delete, rename, subscriptions, status.

Synchronous functions over an open Connection, run on the store's writer thread (writes,
inside the transaction the caller owns) or a reader thread (reads, one statement each).
Mailbox rows are locked with ``SELECT ... FOR UPDATE`` in id order (SQLite's ``BEGIN
IMMEDIATE`` holds the whole database), the order delivery uses, so concurrent writers
cannot deadlock.

Spec: RFC 9051 §5.1, §6.3.4-§6.3.8, §6.3.11; RFC 6154 §3; RFC 7162 §3.1.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from postel.errors import AlreadyExists, NotFound
from postel.ids import AccountId, MailboxId
from postel.store import names
from postel.store.api import Mailbox, MailboxRefused, MailboxStatus, SpecialUse
from postel.store.directory_sql import next_uidvalidity
from postel.store.flags import DELETED, SEEN
from postel.store.schema import (
    accounts,
    expunged,
    mailboxes,
    maildrop_locks,
    messages,
    subscriptions,
)

_MAILBOX_COLS = (
    mailboxes.c.id,
    mailboxes.c.account_id,
    mailboxes.c.name,
    mailboxes.c.special_use,
    mailboxes.c.uidvalidity,
    mailboxes.c.uidnext,
    mailboxes.c.highestmodseq,
    mailboxes.c.subscribed,
)


@dataclass(slots=True)
class LockedMailbox:
    """A mailbox row locked for this transaction, with counters updated as it goes."""

    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int


def _mailbox(m: RowMapping) -> Mailbox:
    return Mailbox(
        id=MailboxId(int(m["id"])),
        account_id=AccountId(int(m["account_id"])),
        name=str(m["name"]),
        special_use=None if m["special_use"] is None else SpecialUse(m["special_use"]),
        uidvalidity=int(m["uidvalidity"]),
        uidnext=int(m["uidnext"]),
        highestmodseq=int(m["highestmodseq"]),
        subscribed=bool(m["subscribed"]),
    )


def has_flag(flag: str) -> ColumnElement[bool]:
    """SQL: the message's stored flag text contains ``flag`` (canonical spelling)."""
    padded = literal(" ") + messages.c.flags + literal(" ")
    return padded.contains(f" {flag} ", autoescape=True)


# -- reads ---------------------------------------------------------------------------------


def list_mailboxes(conn: Connection, account_id: AccountId) -> list[Mailbox]:
    rows = conn.execute(
        select(*_MAILBOX_COLS).where(mailboxes.c.account_id == account_id).order_by(mailboxes.c.id)
    )
    return [_mailbox(r._mapping) for r in rows]


def get_mailbox(conn: Connection, account_id: AccountId, name: str) -> Mailbox | None:
    """The mailbox named ``name`` (INBOX case-insensitive), or None."""
    row = conn.execute(
        select(*_MAILBOX_COLS).where(
            mailboxes.c.account_id == account_id, mailboxes.c.name == names.normalize(name)
        )
    ).first()
    return None if row is None else _mailbox(row._mapping)


GET_MAILBOX_SQL = (
    "SELECT id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq,"
    " subscribed FROM mailboxes WHERE account_id = ? AND name = ?"
)
"""``get_mailbox`` as SQL text for SQLite's own cursor (same columns; the name
normalised by the caller)."""


def mailbox_row(row: Sequence[Any] | None) -> Mailbox | None:
    """A ``GET_MAILBOX_SQL`` row from SQLite's cursor as ``get_mailbox`` returns it."""
    if row is None:
        return None
    ident, account, name, special, validity, uidnext, highest, subscribed = row
    return Mailbox(
        id=MailboxId(int(ident)),
        account_id=AccountId(int(account)),
        name=str(name),
        special_use=None if special is None else SpecialUse(special),
        uidvalidity=int(validity),
        uidnext=int(uidnext),
        highestmodseq=int(highest),
        subscribed=bool(subscribed),
    )


def get_mailbox_by_id(conn: Connection, mailbox_id: MailboxId) -> Mailbox | None:
    row = conn.execute(select(*_MAILBOX_COLS).where(mailboxes.c.id == mailbox_id)).first()
    return None if row is None else _mailbox(row._mapping)


def list_subscriptions(conn: Connection, account_id: AccountId) -> list[str]:
    rows = conn.execute(
        select(subscriptions.c.name)
        .where(subscriptions.c.account_id == account_id)
        .order_by(subscriptions.c.name)
    )
    return [str(n) for n in rows.scalars()]


def mailbox_status(conn: Connection, mailbox_id: MailboxId) -> MailboxStatus:
    """STATUS items in one statement (one consistent snapshot). NotFound.
    Spec: RFC 9051 §6.3.11."""
    seen = func.sum(case((has_flag(SEEN), 1), else_=0))
    deleted = func.sum(case((has_flag(DELETED), 1), else_=0))
    row = conn.execute(
        select(
            mailboxes.c.uidnext,
            mailboxes.c.uidvalidity,
            mailboxes.c.highestmodseq,
            func.count(messages.c.id),
            func.coalesce(seen, 0),
            func.coalesce(deleted, 0),
            func.coalesce(func.sum(messages.c.size), 0),
            func.coalesce(func.sum(case((messages.c.uid > mailboxes.c.recent_uid, 1), else_=0)), 0),
            func.coalesce(func.sum(case((has_flag(DELETED), messages.c.size), else_=0)), 0),
        )
        .select_from(mailboxes.outerjoin(messages, messages.c.mailbox_id == mailboxes.c.id))
        .where(mailboxes.c.id == mailbox_id)
        .group_by(
            mailboxes.c.id,
            mailboxes.c.uidnext,
            mailboxes.c.uidvalidity,
            mailboxes.c.highestmodseq,
            mailboxes.c.recent_uid,
        )
    ).first()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    uidnext, validity, modseq, count, n_seen, n_deleted, size, recent, deleted_size = (
        int(v) for v in row
    )
    return MailboxStatus(
        messages=count,
        unseen=count - n_seen,
        deleted=n_deleted,
        size=size,
        uidnext=uidnext,
        uidvalidity=validity,
        highestmodseq=modseq,
        recent=recent,
        deleted_size=deleted_size,
    )


# -- locks ---------------------------------------------------------------------------------


def lock_mailboxes(conn: Connection, mailbox_ids: Iterable[int]) -> dict[int, LockedMailbox]:
    """Lock the given mailbox rows in id order; NotFound if one is missing."""
    wanted = sorted(set(mailbox_ids))
    rows = conn.execute(
        select(
            mailboxes.c.id,
            mailboxes.c.account_id,
            mailboxes.c.name,
            mailboxes.c.uidvalidity,
            mailboxes.c.uidnext,
            mailboxes.c.highestmodseq,
        )
        .where(mailboxes.c.id.in_(wanted))
        .order_by(mailboxes.c.id)
        .with_for_update()
    ).all()
    locked = {int(r[0]): LockedMailbox(*(r[0], r[1], r[2], r[3], r[4], r[5])) for r in rows}
    missing = [i for i in wanted if i not in locked]
    if missing:
        raise NotFound(f"no mailbox {missing[0]}")
    return locked


def _lock_by_name(conn: Connection, account_id: AccountId, name: str) -> LockedMailbox:
    row = conn.execute(
        select(mailboxes.c.id).where(mailboxes.c.account_id == account_id, mailboxes.c.name == name)
    ).first()
    if row is None:
        raise NotFound(f"no mailbox {name!r}")
    return lock_mailboxes(conn, [int(row[0])])[int(row[0])]


def save_counters(conn: Connection, mailbox: LockedMailbox) -> None:
    """Write the UIDNEXT and HIGHESTMODSEQ of a locked mailbox back."""
    conn.execute(
        update(mailboxes)
        .where(mailboxes.c.id == mailbox.id)
        .values(uidnext=mailbox.uidnext, highestmodseq=mailbox.highestmodseq)
    )


# -- create and delete -------------------------------------------------------------------


def _is_subscribed(conn: Connection, account_id: AccountId, name: str) -> bool:
    row = conn.execute(
        select(subscriptions.c.name).where(
            subscriptions.c.account_id == account_id, subscriptions.c.name == name
        )
    ).first()
    return row is not None


def _insert_mailbox(
    conn: Connection,
    account_id: AccountId,
    name: str,
    special_use: SpecialUse | None,
    now: dt.datetime,
    *,
    uidnext: int = 1,
    highestmodseq: int = 1,
) -> Mailbox:
    (validity,) = next_uidvalidity(conn, now, 1)
    values = {
        "account_id": account_id,
        "name": name,
        "special_use": None if special_use is None else special_use.value,
        "uidvalidity": validity,
        "uidnext": uidnext,
        "highestmodseq": highestmodseq,
        "subscribed": _is_subscribed(conn, account_id, name),
    }
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                insert(mailboxes).values(**values).returning(mailboxes.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise AlreadyExists(f"mailbox {name!r} exists") from exc
    return Mailbox(
        id=MailboxId(int(new_id)),
        account_id=account_id,
        name=name,
        special_use=special_use,
        uidvalidity=validity,
        uidnext=uidnext,
        highestmodseq=highestmodseq,
        subscribed=bool(values["subscribed"]),
    )


def _check_account(conn: Connection, account_id: AccountId) -> None:
    if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
        raise NotFound(f"no account {account_id}")


def create_mailbox(
    conn: Connection,
    account_id: AccountId,
    name: str,
    special_use: SpecialUse | None,
    now: dt.datetime,
) -> Mailbox:
    """A new empty mailbox with a fresh UIDVALIDITY. AlreadyExists, InvalidMailboxName,
    NotFound (account), MailboxRefused (too many mailboxes). Spec: RFC 9051 §6.3.4."""
    name = names.validate(name)
    _check_account(conn, account_id)
    count = conn.execute(
        select(func.count()).select_from(mailboxes).where(mailboxes.c.account_id == account_id)
    ).scalar_one()
    if count >= names.MAILBOXES_PER_ACCOUNT_MAX:
        raise MailboxRefused(f"more than {names.MAILBOXES_PER_ACCOUNT_MAX} mailboxes")
    return _insert_mailbox(conn, account_id, name, special_use, now)


def delete_mailbox(conn: Connection, account_id: AccountId, name: str) -> tuple[MailboxId, int]:
    """Remove the mailbox, its messages and expunge records; returns its id and last
    HIGHESTMODSEQ. Blob rows no message names any more are collected by the blob sweep
    (recovery.py).
    MailboxRefused for INBOX, NotFound. Spec: RFC 9051 §6.3.5."""
    name = names.normalize(name)
    if name == names.INBOX:
        raise MailboxRefused("INBOX cannot be deleted")
    box = _lock_by_name(conn, account_id, name)
    conn.execute(delete(messages).where(messages.c.mailbox_id == box.id))
    conn.execute(delete(expunged).where(expunged.c.mailbox_id == box.id))
    conn.execute(delete(mailboxes).where(mailboxes.c.id == box.id))
    return MailboxId(box.id), box.highestmodseq


# -- rename --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Renamed:
    """The mailbox now named ``new`` and the mailboxes whose content changed
    ``(mailbox_id, highestmodseq)`` (INBOX when it was renamed)."""

    mailbox: Mailbox
    touched: tuple[tuple[MailboxId, int], ...]


def rename_mailbox(
    conn: Connection, account_id: AccountId, old: str, new: str, now: dt.datetime
) -> Renamed:
    """Rename ``old`` and its inferiors, or move INBOX's messages to a new mailbox.
    Subscriptions are left as they are (the ``subscribed`` mirror follows the new names).
    NotFound, AlreadyExists, InvalidMailboxName. Spec: RFC 9051 §6.3.6."""
    old, new = names.normalize(old), names.validate(new)
    if old == names.INBOX:
        return _rename_inbox(conn, account_id, new, now)
    rows = conn.execute(
        select(mailboxes.c.id, mailboxes.c.name)
        .where(
            mailboxes.c.account_id == account_id,
            or_(
                mailboxes.c.name == old,
                mailboxes.c.name.startswith(old + names.SEPARATOR, autoescape=True),
            ),
        )
        .order_by(mailboxes.c.id)
        .with_for_update()
    ).all()
    if not any(r[1] == old for r in rows):
        raise NotFound(f"no mailbox {old!r}")
    targets: dict[int, str] = {}
    for mailbox_id, name in rows:
        target = names.renamed(str(name), old, new)
        if target is not None:
            targets[int(mailbox_id)] = names.validate(target)
    _refuse_taken(conn, account_id, list(targets.values()))
    subscribed = set(list_subscriptions(conn, account_id))
    for mailbox_id, target in targets.items():
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.id == mailbox_id)
            .values(name=target, subscribed=target in subscribed)
        )
    got = get_mailbox(conn, account_id, new)
    assert got is not None
    return Renamed(got, ())


def _refuse_taken(conn: Connection, account_id: AccountId, targets: Sequence[str]) -> None:
    taken = set(
        conn.execute(select(mailboxes.c.name).where(mailboxes.c.account_id == account_id)).scalars()
    )
    clash = sorted(taken.intersection(targets))
    if clash:
        raise AlreadyExists(f"mailbox {clash[0]!r} exists")


def _rename_inbox(conn: Connection, account_id: AccountId, new: str, now: dt.datetime) -> Renamed:
    inbox = _lock_by_name(conn, account_id, names.INBOX)
    _refuse_taken(conn, account_id, [new])
    target = _insert_mailbox(
        conn,
        account_id,
        new,
        None,
        now,
        uidnext=inbox.uidnext,
        highestmodseq=inbox.highestmodseq,
    )
    moved = conn.execute(
        update(messages).where(messages.c.mailbox_id == inbox.id).values(mailbox_id=target.id)
    ).rowcount
    if moved:
        inbox.highestmodseq += 1
        conn.execute(
            insert(expunged).from_select(
                ["mailbox_id", "uid", "modseq"],
                select(
                    literal(inbox.id), messages.c.uid, literal(inbox.highestmodseq, BigInteger)
                ).where(messages.c.mailbox_id == target.id),
            )
        )
        save_counters(conn, inbox)
    touched = ((MailboxId(inbox.id), inbox.highestmodseq),)
    return Renamed(target, touched)


# -- subscriptions -------------------------------------------------------------------------


def set_subscribed(conn: Connection, account_id: AccountId, name: str, subscribed: bool) -> None:
    """Add or remove a subscription (the name need not exist) and mirror it on the
    mailbox row. InvalidMailboxName, NotFound (account), MailboxRefused (a new one past
    SUBSCRIPTIONS_PER_ACCOUNT_MAX). Spec: RFC 9051 §6.3.7, §6.3.8."""
    name = names.validate(name) if subscribed else names.normalize(name)
    _check_account(conn, account_id)
    present = _is_subscribed(conn, account_id, name)
    if subscribed and not present:
        count = conn.execute(
            select(func.count())
            .select_from(subscriptions)
            .where(subscriptions.c.account_id == account_id)
        ).scalar_one()
        if count >= names.SUBSCRIPTIONS_PER_ACCOUNT_MAX:
            raise MailboxRefused(f"more than {names.SUBSCRIPTIONS_PER_ACCOUNT_MAX} subscriptions")
        conn.execute(insert(subscriptions).values(account_id=account_id, name=name))
    elif not subscribed and present:
        conn.execute(
            delete(subscriptions).where(
                subscriptions.c.account_id == account_id, subscriptions.c.name == name
            )
        )
    conn.execute(
        update(mailboxes)
        .where(mailboxes.c.account_id == account_id, mailboxes.c.name == name)
        .values(subscribed=subscribed)
    )


def subscribe_existing(conn: Connection, account_id: AccountId) -> None:
    """Subscribe every mailbox of the account marked ``subscribed`` (a new account's
    default mailboxes) that has no subscription row yet."""
    present = set(list_subscriptions(conn, account_id))
    rows = conn.execute(
        select(mailboxes.c.name).where(
            mailboxes.c.account_id == account_id, mailboxes.c.subscribed.is_(True)
        )
    ).scalars()
    missing = [{"account_id": account_id, "name": n} for n in rows if n not in present]
    if missing:
        conn.execute(insert(subscriptions), missing)


# -- the POP3 maildrop lock ----------------------------------------------------------------


def acquire_maildrop(
    conn: Connection, account_id: AccountId, holder: str, now: dt.datetime, lease: float
) -> bool:
    """Take or renew the lock of ``account_id`` for ``holder`` until ``now + lease``;
    False when another holder's lease has not ended. Spec: RFC 1939 §8."""
    until = now + dt.timedelta(seconds=lease)
    row = conn.execute(
        select(maildrop_locks.c.holder, maildrop_locks.c.expires)
        .where(maildrop_locks.c.account_id == account_id)
        .with_for_update()
    ).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(maildrop_locks).values(
                        account_id=account_id, holder=holder, expires=until
                    )
                )
        except IntegrityError:
            return False  # another node took it between our read and insert
        return True
    if row.holder != holder and row.expires > now:
        return False
    conn.execute(
        update(maildrop_locks)
        .where(maildrop_locks.c.account_id == account_id)
        .values(holder=holder, expires=until)
    )
    return True


def release_maildrop(conn: Connection, account_id: AccountId, holder: str) -> None:
    """Remove the lock of ``account_id`` if ``holder`` has it."""
    conn.execute(
        delete(maildrop_locks).where(
            maildrop_locks.c.account_id == account_id, maildrop_locks.c.holder == holder
        )
    )
