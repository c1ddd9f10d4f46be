"""``postel mailbox list`` and ``postel message list | show``: look into an account.

Read-only views for operators: which mailboxes an account has, what arrived, and the
stored bytes of one message (trace fields included).
"""

from __future__ import annotations

import argparse

from postel.cli.context import CliError, Io, config_from_args, open_configured_store
from postel.cli.output import Column, JsonValue, show, timestamp
from postel.errors import NotFound, ProtocolError
from postel.mail import Address, MessageSummary, decode_encoded_words
from postel.store.api import Mailbox, Store

SUBJECT_COLUMN_MAX = 60
"""Characters of a subject shown in the table (the JSON output is not cut)."""


async def _mailbox(store: Store, address: str, name: str) -> Mailbox:
    account = await store.get_account(address)
    if account is None:
        raise CliError(f"no account {address}")
    mailbox = await store.get_mailbox(account.id, name)
    if mailbox is None:
        raise CliError(f"account {address} has no mailbox {name}")
    return mailbox


async def mailbox_list(args: argparse.Namespace, io: Io) -> int:
    """`postel mailbox list ADDRESS`: mailboxes with special use, message count, UIDNEXT
    and UIDVALIDITY (RFC 9051 §2.3.1.1)."""
    async with open_configured_store(config_from_args(args)) as store:
        account = await store.get_account(args.address)
        if account is None:
            raise CliError(f"no account {args.address}")
        rows: list[dict[str, JsonValue]] = []
        for mailbox in await store.list_mailboxes(account.id):
            count = len(await store.list_messages(mailbox.id))
            rows.append(
                {
                    "name": mailbox.name,
                    "special_use": str(mailbox.special_use or ""),
                    "messages": count,
                    "uidnext": mailbox.uidnext,
                    "uidvalidity": mailbox.uidvalidity,
                }
            )
    columns = (
        Column("name", "MAILBOX"),
        Column("special_use", "SPECIAL-USE"),
        Column("messages", "MESSAGES"),
        Column("uidnext", "UIDNEXT"),
        Column("uidvalidity", "UIDVALIDITY"),
    )
    show(io, columns, rows, as_json=args.json, empty="no mailboxes")
    return 0


def _addresses(addresses: tuple[Address, ...]) -> str:
    out = []
    for a in addresses:
        if a.mailbox is None or a.host is None:
            continue
        out.append(f"{a.mailbox.decode('utf-8', 'replace')}@{a.host.decode('utf-8', 'replace')}")
    return ", ".join(out)


async def message_list(args: argparse.Namespace, io: Io) -> int:
    """`postel message list ADDRESS [--mailbox NAME]`: UID, arrival, size, From and
    Subject of each message."""
    async with open_configured_store(config_from_args(args)) as store:
        mailbox = await _mailbox(store, args.address, args.mailbox)
        messages = await store.list_messages(mailbox.id)
    rows: list[dict[str, JsonValue]] = []
    for m in messages:
        try:
            envelope = MessageSummary.from_json(m.summary).envelope
            subject = decode_encoded_words(envelope.subject or b"")
            sender = _addresses(envelope.from_)
        except ProtocolError:
            subject, sender = "", ""
        if not args.json and len(subject) > SUBJECT_COLUMN_MAX:
            subject = subject[: SUBJECT_COLUMN_MAX - 1] + "…"
        rows.append(
            {
                "uid": m.uid,
                "received": timestamp(m.internal_date),
                "size": m.size,
                "from": sender,
                "subject": subject,
                "flags": sorted(m.flags),
            }
        )
    columns = (
        Column("uid", "UID"),
        Column("received", "RECEIVED"),
        Column("size", "SIZE"),
        Column("from", "FROM"),
        Column("subject", "SUBJECT"),
        Column("flags", "FLAGS"),
    )
    show(io, columns, rows, as_json=args.json, empty=f"{args.mailbox} is empty")
    return 0


async def message_show(args: argparse.Namespace, io: Io) -> int:
    """`postel message show ADDRESS UID [--mailbox NAME]`: the stored bytes, unchanged
    (CRLF line ends, 8-bit octets as they are)."""
    async with open_configured_store(config_from_args(args)) as store:
        mailbox = await _mailbox(store, args.address, args.mailbox)
        try:
            data = await store.read_message(mailbox.id, args.uid)
        except NotFound:
            raise CliError(f"no message with UID {args.uid} in {args.mailbox}") from None
    io.out_bytes(data)
    return 0
