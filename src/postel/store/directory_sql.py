"""Directory and mailbox queries: domains, accounts, aliases, mailboxes, messages.

Synchronous functions over an open SQLAlchemy Connection, called from the store's worker
threads inside a transaction the caller owns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from postel import limits
from postel.errors import AlreadyExists, NotFound, StoreError
from postel.ids import AccountId, DomainId, MailboxId, QueueId
from postel.store.api import (
    DEFAULT_MAILBOXES,
    Account,
    Alias,
    BlobRef,
    Credentials,
    Domain,
    Mailbox,
    SenderPolicy,
    SpecialUse,
    StoredMessage,
)
from postel.store.quota_api import check_limits
from postel.store.schema import (
    ADDRESS_MAX,
    DOMAIN_MAX,
    accounts,
    aliases,
    blobs,
    counters,
    domains,
    mailboxes,
    messages,
)

UIDVALIDITY_MAX = 2**32 - 1
"""UIDVALIDITY is a 32-bit nz-number. Spec: RFC 9051 §2.3.1.1, §9 (nz-number)."""


# -- names -----------------------------------------------------------------------------


def normalize_domain(name: str) -> str:
    """Lower-case, without a trailing dot. StoreError if empty or too long (RFC 5321 §4.5.3.1.2)."""
    name = name.strip().rstrip(".").lower()
    if not name or len(name) > DOMAIN_MAX or "@" in name:
        raise StoreError(f"bad domain name {name!r}")
    return name


def split_address(address: str) -> tuple[str, str]:
    """``(local, domain)`` of ``local@domain``, domain lower-cased; local may be empty
    (``@domain``, a catch-all source). StoreError if malformed or too long."""
    local, at, domain = address.strip().rpartition("@")
    if not at or len(address) > ADDRESS_MAX:
        raise StoreError(f"bad address {address!r}")
    return local, normalize_domain(domain)


def address_key(address: str) -> str:
    """The case-insensitive lookup key of an address (or ``@domain``): lower-cased."""
    local, domain = split_address(address)
    return f"{local}@{domain}".lower()


def mailbox_name(name: str) -> str:
    """``INBOX`` in any case is INBOX; other names are kept as given. Spec: RFC 9051 §5.1."""
    return "INBOX" if name.upper() == "INBOX" else name


# -- counters ----------------------------------------------------------------------------


def next_uidvalidity(conn: Connection, now: dt.datetime, count: int) -> list[int]:
    """``count`` fresh UIDVALIDITY values: at least the clock's seconds, and above every
    value handed out before, so a recreated mailbox never reuses one.
    Spec: RFC 9051 §2.3.1.1."""
    current = conn.execute(
        select(counters.c.value).where(counters.c.name == "uidvalidity").with_for_update()
    ).scalar_one()
    first = max(int(now.timestamp()), int(current) + 1, 1)
    last = first + count - 1
    if last > UIDVALIDITY_MAX:
        raise StoreError("UIDVALIDITY space exhausted")
    conn.execute(update(counters).where(counters.c.name == "uidvalidity").values(value=last))
    return list(range(first, last + 1))


# -- domains -----------------------------------------------------------------------------


def _domain(domain_id: int, name: str, created: dt.datetime) -> Domain:
    return Domain(id=DomainId(domain_id), name=name, created=created)


def add_domain(conn: Connection, name: str, now: dt.datetime) -> Domain:
    name = normalize_domain(name)
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                insert(domains).values(name=name, created=now).returning(domains.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise AlreadyExists(f"domain {name} exists") from exc
    return Domain(id=DomainId(new_id), name=name, created=now)


def list_domains(conn: Connection) -> list[Domain]:
    rows = conn.execute(
        select(domains.c.id, domains.c.name, domains.c.created).order_by(domains.c.name)
    )
    return [_domain(*r) for r in rows]


def get_domain(conn: Connection, name: str) -> Domain | None:
    """None when absent, or when ``name`` cannot be a domain name."""
    try:
        key = normalize_domain(name)
    except StoreError:
        return None
    row = conn.execute(
        select(domains.c.id, domains.c.name, domains.c.created).where(domains.c.name == key)
    ).first()
    return None if row is None else _domain(*row)


def remove_domain(conn: Connection, name: str) -> None:
    domain = get_domain(conn, name)
    if domain is None:
        raise NotFound(f"no domain {name}")
    used = conn.execute(
        select(func.count()).select_from(accounts).where(accounts.c.domain_id == domain.id)
    ).scalar_one()
    if used:
        noun = "account" if used == 1 else "accounts"
        raise StoreError(f"domain {domain.name} still has {used} {noun}")
    conn.execute(delete(aliases).where(aliases.c.domain_id == domain.id))
    conn.execute(delete(domains).where(domains.c.id == domain.id))


# -- accounts ----------------------------------------------------------------------------

_ACCOUNT_COLS = (
    accounts.c.id,
    accounts.c.address,
    accounts.c.domain_id,
    accounts.c.password_hash,
    accounts.c.scram_salt,
    accounts.c.scram_iterations,
    accounts.c.scram_stored_key,
    accounts.c.scram_server_key,
    accounts.c.created,
    accounts.c.is_admin,
    accounts.c.sender_policy,
    accounts.c.storage_limit,
    accounts.c.message_limit,
)


def _account(m: RowMapping) -> Account:
    return Account(
        id=AccountId(m["id"]),
        address=m["address"],
        domain_id=DomainId(m["domain_id"]),
        credentials=Credentials(
            password_hash=m["password_hash"],
            scram_salt=bytes(m["scram_salt"]),
            scram_iterations=m["scram_iterations"],
            scram_stored_key=bytes(m["scram_stored_key"]),
            scram_server_key=bytes(m["scram_server_key"]),
        ),
        created=m["created"],
        is_admin=bool(m["is_admin"]),
        sender_policy=_sender_policy(m["sender_policy"]),
        storage_limit=m["storage_limit"],
        message_limit=m["message_limit"],
    )


def _sender_policy(stored: str) -> SenderPolicy:
    """The stored policy; an unknown value (written by a newer version) reads as the
    narrowest, ``own``."""
    try:
        return SenderPolicy(stored)
    except ValueError:
        return SenderPolicy.OWN


def _credential_values(credentials: Credentials) -> dict[str, object]:
    return {
        "password_hash": credentials.password_hash,
        "scram_salt": credentials.scram_salt,
        "scram_iterations": credentials.scram_iterations,
        "scram_stored_key": credentials.scram_stored_key,
        "scram_server_key": credentials.scram_server_key,
    }


def add_account(
    conn: Connection,
    address: str,
    credentials: Credentials,
    is_admin: bool,
    now: dt.datetime,
    sender_policy: SenderPolicy = SenderPolicy.OWN,
    storage_limit: int | None = None,
    message_limit: int | None = None,
) -> Account:
    check_limits(storage_limit, message_limit)
    local, domain_name = split_address(address)
    if not local:
        raise StoreError(f"bad account address {address!r}")
    domain = get_domain(conn, domain_name)
    if domain is None:
        raise NotFound(f"no domain {domain_name}")
    address = f"{local}@{domain_name}"
    try:
        with conn.begin_nested():
            account_id = conn.execute(
                insert(accounts)
                .values(
                    domain_id=domain.id,
                    address=address,
                    address_key=address.lower(),
                    is_admin=is_admin,
                    created=now,
                    sender_policy=SenderPolicy(sender_policy).value,
                    storage_limit=storage_limit,
                    message_limit=message_limit,
                    **_credential_values(credentials),
                )
                .returning(accounts.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise AlreadyExists(f"account {address} exists") from exc
    validities = next_uidvalidity(conn, now, len(DEFAULT_MAILBOXES))
    conn.execute(
        insert(mailboxes),
        [
            {
                "account_id": account_id,
                "name": name,
                "special_use": None if use is None else use.value,
                "uidvalidity": validity,
                "uidnext": 1,
                "highestmodseq": 1,
                "subscribed": True,
            }
            for (name, use), validity in zip(DEFAULT_MAILBOXES, validities, strict=True)
        ],
    )
    return Account(
        id=AccountId(account_id),
        address=address,
        domain_id=domain.id,
        credentials=credentials,
        created=now,
        is_admin=is_admin,
        sender_policy=SenderPolicy(sender_policy),
        storage_limit=storage_limit,
        message_limit=message_limit,
    )


def list_accounts(conn: Connection, domain: str | None) -> list[Account]:
    query = select(*_ACCOUNT_COLS).order_by(accounts.c.address_key)
    if domain is not None:
        query = query.join(domains, domains.c.id == accounts.c.domain_id).where(
            domains.c.name == domain.strip().rstrip(".").lower()
        )
    return [_account(r._mapping) for r in conn.execute(query)]


def get_account(conn: Connection, address: str) -> Account | None:
    """None when absent, or when ``address`` cannot be an address."""
    try:
        key = address_key(address)
    except StoreError:
        return None
    row = conn.execute(select(*_ACCOUNT_COLS).where(accounts.c.address_key == key)).first()
    return None if row is None else _account(row._mapping)


def get_account_by_id(conn: Connection, account_id: AccountId) -> Account | None:
    row = conn.execute(select(*_ACCOUNT_COLS).where(accounts.c.id == account_id)).first()
    return None if row is None else _account(row._mapping)


def set_credentials(conn: Connection, address: str, credentials: Credentials) -> None:
    account = get_account(conn, address)
    if account is None:
        raise NotFound(f"no account {address}")
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account.id)
        .values(**_credential_values(credentials))
    )


def set_sender_policy(conn: Connection, address: str, policy: SenderPolicy) -> Account:
    """Store the account's sender policy; the updated account. NotFound if absent."""
    account = get_account(conn, address)
    if account is None:
        raise NotFound(f"no account {address}")
    policy = SenderPolicy(policy)
    conn.execute(
        update(accounts).where(accounts.c.id == account.id).values(sender_policy=policy.value)
    )
    return dataclasses.replace(account, sender_policy=policy)


def remove_account(conn: Connection, address: str) -> None:
    """Delete the account (mailboxes and messages cascade) and drop it from alias
    targets; an alias left without targets is deleted. Blobs are collected at start-up."""
    account = get_account(conn, address)
    if account is None:
        raise NotFound(f"no account {address}")
    conn.execute(delete(accounts).where(accounts.c.id == account.id))
    key = account.address.lower()
    rows = conn.execute(
        select(aliases.c.id, aliases.c.targets).where(
            func.lower(aliases.c.targets).contains(key, autoescape=True)
        )
    ).all()
    for alias_id, targets_json in rows:
        targets = [t for t in json.loads(targets_json) if t.lower() != key]
        if targets:
            conn.execute(
                update(aliases).where(aliases.c.id == alias_id).values(targets=json.dumps(targets))
            )
        else:
            conn.execute(delete(aliases).where(aliases.c.id == alias_id))


# -- aliases -----------------------------------------------------------------------------


def _alias(source: str, targets_json: str, created: dt.datetime) -> Alias:
    return Alias(source=source, targets=tuple(json.loads(targets_json)), created=created)


def add_alias(conn: Connection, source: str, targets: Sequence[str], now: dt.datetime) -> Alias:
    local, domain_name = split_address(source)
    cleaned = tuple(t.strip() for t in targets if t.strip())
    if not cleaned:
        raise StoreError(f"alias {source!r} has no targets")
    if len(cleaned) > limits.ALIAS_EXPANSION_TARGETS_MAX:
        raise StoreError(f"alias {source!r} has more than {limits.ALIAS_EXPANSION_TARGETS_MAX}")
    for target in cleaned:
        split_address(target)
    domain = get_domain(conn, domain_name)
    if domain is None:
        raise NotFound(f"no domain {domain_name}")
    source = f"{local}@{domain_name}"
    try:
        with conn.begin_nested():
            conn.execute(
                insert(aliases).values(
                    domain_id=domain.id,
                    source=source,
                    source_key=source.lower(),
                    targets=json.dumps(list(cleaned)),
                    created=now,
                )
            )
    except IntegrityError as exc:
        raise AlreadyExists(f"alias {source} exists") from exc
    return Alias(source=source, targets=cleaned, created=now)


def list_aliases(conn: Connection, domain: str | None) -> list[Alias]:
    query = select(aliases.c.source, aliases.c.targets, aliases.c.created).order_by(
        aliases.c.source_key
    )
    if domain is not None:
        query = query.join(domains, domains.c.id == aliases.c.domain_id).where(
            domains.c.name == domain.strip().rstrip(".").lower()
        )
    return [_alias(*r) for r in conn.execute(query)]


def get_alias(conn: Connection, source: str) -> Alias | None:
    """None when absent, or when ``source`` cannot be an alias source."""
    try:
        key = address_key(source)
    except StoreError:
        return None
    row = conn.execute(
        select(aliases.c.source, aliases.c.targets, aliases.c.created).where(
            aliases.c.source_key == key
        )
    ).first()
    return None if row is None else _alias(*row)


def remove_alias(conn: Connection, source: str) -> None:
    alias = get_alias(conn, source)
    if alias is None:
        raise NotFound(f"no alias {source}")
    result = conn.execute(delete(aliases).where(aliases.c.source_key == alias.source.lower()))
    if result.rowcount == 0:
        raise NotFound(f"no alias {source}")


# -- mailboxes and messages ----------------------------------------------------------------

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


def _mailbox(m: RowMapping) -> Mailbox:
    return Mailbox(
        id=MailboxId(m["id"]),
        account_id=AccountId(m["account_id"]),
        name=m["name"],
        special_use=None if m["special_use"] is None else SpecialUse(m["special_use"]),
        uidvalidity=int(m["uidvalidity"]),
        uidnext=int(m["uidnext"]),
        highestmodseq=int(m["highestmodseq"]),
        subscribed=bool(m["subscribed"]),
    )


def list_mailboxes(conn: Connection, account_id: AccountId) -> list[Mailbox]:
    rows = conn.execute(
        select(*_MAILBOX_COLS).where(mailboxes.c.account_id == account_id).order_by(mailboxes.c.id)
    )
    return [_mailbox(r._mapping) for r in rows]


def get_mailbox(conn: Connection, account_id: AccountId, name: str) -> Mailbox | None:
    row = conn.execute(
        select(*_MAILBOX_COLS).where(
            mailboxes.c.account_id == account_id, mailboxes.c.name == mailbox_name(name)
        )
    ).first()
    return None if row is None else _mailbox(row._mapping)


def flags_text(flags: frozenset[str]) -> str:
    """The stored form of a flag set: sorted, space-separated."""
    return " ".join(sorted(flags))


def list_messages(conn: Connection, mailbox_id: MailboxId, uid_from: int) -> list[StoredMessage]:
    rows = conn.execute(
        select(
            messages.c.uid,
            messages.c.modseq,
            messages.c.flags,
            messages.c.internal_date,
            messages.c.size,
            messages.c.blob_key,
            blobs.c.size,
            messages.c.summary,
            messages.c.queue_id,
        )
        .join(blobs, blobs.c.key == messages.c.blob_key)
        .where(messages.c.mailbox_id == mailbox_id, messages.c.uid >= uid_from)
        .order_by(messages.c.uid)
    )
    return [
        StoredMessage(
            mailbox_id=mailbox_id,
            uid=int(uid),
            modseq=int(modseq),
            flags=frozenset(flags.split()),
            internal_date=internal_date,
            size=int(size),
            blob=BlobRef(key=key, size=int(blob_size)),
            summary=summary,
            queue_id=None if queue_id is None else QueueId(queue_id),
        )
        for uid, modseq, flags, internal_date, size, key, blob_size, summary, queue_id in rows
    ]


def message_parts(
    conn: Connection, mailbox_id: MailboxId, uid: int
) -> tuple[bytes, str, int, bytes | None]:
    """``(trace_prefix, blob key, blob size, inline bytes or None)``; NotFound if absent.

    The statement goes to the driver as it is (``exec_driver_sql``): it runs for every
    IMAP BODY[] and POP3 RETR, and SQLAlchemy's statement building cost more than the
    query itself."""
    sql = MESSAGE_PARTS_SQL
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    return message_parts_row(
        conn.exec_driver_sql(sql, (int(mailbox_id), int(uid))).first(), mailbox_id, uid
    )


MESSAGE_PARTS_SQL = (
    "SELECT m.trace_prefix, b.key, b.size, b.data FROM messages AS m "
    "JOIN blobs AS b ON b.key = m.blob_key WHERE m.mailbox_id = ? AND m.uid = ?"
)
"""The row of ``message_parts`` (qmark placeholders; ``%s`` for psycopg)."""


def message_parts_row(
    row: Sequence[Any] | None, mailbox_id: MailboxId, uid: int
) -> tuple[bytes, str, int, bytes | None]:
    """A ``MESSAGE_PARTS_SQL`` row as ``message_parts`` returns it; NotFound for None."""
    if row is None:
        raise NotFound(f"no message UID {uid} in mailbox {mailbox_id}")
    prefix, key, size, data = row
    return bytes(prefix), key, int(size), None if data is None else bytes(data)
