"""SQL for URLAUTH mailbox access keys (table ``urlauth_keys``).

Spec: RFC 4467 §3, §6.1 (GENURLAUTH creates the key on first use), §6.2 (RESETKEY).
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from postel.ids import AccountId, MailboxId
from postel.store.schema import urlauth_keys

__all__ = ["create_key", "get_key", "reset_keys"]


def get_key(conn: Connection, mailbox_id: MailboxId) -> bytes | None:
    """The mailbox access key, or None when none was made (or it was reset)."""
    row = conn.execute(
        select(urlauth_keys.c.access_key).where(urlauth_keys.c.mailbox_id == mailbox_id)
    ).first()
    return None if row is None else bytes(row[0])


def create_key(conn: Connection, account_id: AccountId, mailbox_id: MailboxId, key: bytes) -> bytes:
    """Store ``key`` unless the mailbox has one already; returns the key in force."""
    existing = get_key(conn, mailbox_id)
    if existing is not None:
        return existing
    conn.execute(
        insert(urlauth_keys).values(mailbox_id=mailbox_id, account_id=account_id, access_key=key)
    )
    return key


def reset_keys(conn: Connection, account_id: AccountId, mailbox_id: MailboxId | None) -> int:
    """Remove the key of ``mailbox_id`` (every key of the account when None); returns
    how many went."""
    stmt = delete(urlauth_keys).where(urlauth_keys.c.account_id == account_id)
    if mailbox_id is not None:
        stmt = stmt.where(urlauth_keys.c.mailbox_id == mailbox_id)
    return conn.execute(stmt).rowcount or 0
