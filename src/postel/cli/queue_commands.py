"""``postel queue list|show|retry|hold|release|delete|flush``: the outbound queue for
operators. Safe beside a running server (the store serialises writes; a running
worker picks up retried and released recipients at its next look).

Spec: RFC 5321 §4.5.4.1 (retry strategy); RFC 3461 (the DSN data shown).
"""

from __future__ import annotations

import argparse

from postel.cli.context import CliError, Io, config_from_args, open_configured_store
from postel.cli.output import Column, JsonValue, show, timestamp
from postel.errors import NotFound
from postel.store.queue_api import QueueEntry, QueueFilter, RecipientState

REPLY_COLUMN_MAX = 70
"""Characters of the last reply shown in a table (JSON keeps it whole)."""


def _rows(entries: list[QueueEntry], *, full_reply: bool) -> list[dict[str, JsonValue]]:
    rows: list[dict[str, JsonValue]] = []
    for entry in entries:
        message = entry.message
        for r in entry.recipients:
            reply = r.last_reply or ""
            rows.append(
                {
                    "queue_id": message.queue_id,
                    "from": message.reverse_path or "<>",
                    "recipient": r.address,
                    "state": r.state.value,
                    "attempts": r.attempts,
                    "next_attempt": timestamp(r.next_attempt),
                    "size": message.size,
                    "last_reply": reply if full_reply else reply[:REPLY_COLUMN_MAX],
                }
            )
    return rows


_COLUMNS = [
    Column("queue_id", "queue id"),
    Column("from", "from"),
    Column("recipient", "recipient"),
    Column("state", "state"),
    Column("attempts", "tries"),
    Column("next_attempt", "next attempt"),
    Column("last_reply", "last reply"),
]


async def queue_list(args: argparse.Namespace, io: Io) -> int:
    """Every queued message and recipient, oldest first (``--state``, ``--domain``)."""
    which = QueueFilter(
        state=RecipientState(args.state) if args.state else None,
        domain=args.domain.lower() if args.domain else None,
    )
    async with open_configured_store(config_from_args(args)) as store:
        entries = list(await store.queue_list(which))
    show(
        io,
        _COLUMNS,
        _rows(entries, full_reply=args.json),
        as_json=args.json,
        empty="the queue is empty",
    )
    return 0


async def queue_show(args: argparse.Namespace, io: Io) -> int:
    """One queued message with every recipient and the full last replies."""
    async with open_configured_store(config_from_args(args)) as store:
        entry = await store.queue_show(args.queue_id)
    if entry is None:
        raise CliError(f"no queued message {args.queue_id}")
    show(
        io,
        [*_COLUMNS, Column("size", "size")],
        _rows([entry], full_reply=True),
        as_json=args.json,
        empty="",
    )
    return 0


async def _each(args: argparse.Namespace, io: Io, verb: str) -> int:
    async with open_configured_store(config_from_args(args)) as store:
        try:
            match verb:
                case "hold":
                    n = await store.queue_hold(args.queue_id)
                case "release":
                    n = await store.queue_release(args.queue_id)
                case "retry":
                    n = await store.queue_retry_now(args.queue_id)
                case "flush":
                    n = await store.queue_retry_now(None)
                case _:
                    await store.queue_delete(args.queue_id)
                    io.out(f"deleted {args.queue_id}")
                    return 0
        except NotFound:
            raise CliError(f"no queued message {args.queue_id}") from None
    io.out(f"{verb}: {n} recipient(s)")
    return 0


async def queue_hold(args: argparse.Namespace, io: Io) -> int:
    """Keep a message's waiting recipients in the queue until released."""
    return await _each(args, io, "hold")


async def queue_release(args: argparse.Namespace, io: Io) -> int:
    """Make held recipients due now."""
    return await _each(args, io, "release")


async def queue_retry(args: argparse.Namespace, io: Io) -> int:
    """Make a message's deferred recipients due now."""
    return await _each(args, io, "retry")


async def queue_flush(args: argparse.Namespace, io: Io) -> int:
    """Make every deferred recipient due now."""
    return await _each(args, io, "flush")


async def queue_delete(args: argparse.Namespace, io: Io) -> int:
    """Remove a message from the queue without a bounce."""
    return await _each(args, io, "delete")


def add_queue_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``postel queue ...``."""
    queue = commands.add_parser("queue", help="the outbound queue")
    sub = queue.add_subparsers(dest="action", metavar="<action>", required=True)
    listing = sub.add_parser("list", parents=[common], help="queued messages and recipients")
    listing.add_argument(
        "--state", choices=[s.value for s in RecipientState], help="only this state"
    )
    listing.add_argument("--domain", metavar="D", help="only recipients at domain D")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    listing.set_defaults(async_handler=queue_list)
    for name, handler, text in (
        ("show", queue_show, "one message, every recipient"),
        ("retry", queue_retry, "try a message's deferred recipients now"),
        ("hold", queue_hold, "hold a message"),
        ("release", queue_release, "release a held message"),
        ("delete", queue_delete, "remove a message without a bounce"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("queue_id")
        if name == "show":
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(async_handler=handler)
    flush = sub.add_parser("flush", parents=[common], help="try every deferred recipient now")
    flush.set_defaults(async_handler=queue_flush)
