"""``postel account quota``: show or set an account's quota; sizes for people.

Limits are STORAGE (octets over all the account's mailboxes) and MESSAGE (messages over
them); sizes are given with an optional 1024-based suffix (``500K``, ``10M``, ``1G``,
``2T``) and printed the same way. A running server applies a new limit from its next
delivery (SMTP RCPT checks see it within a few seconds).

Spec: RFC 9208 §5 (STORAGE, MESSAGE), §4.3 (SETQUOTA).
"""

from __future__ import annotations

import argparse
import re

from postel.cli.context import CliError, Io, config_from_args, open_configured_store
from postel.cli.output import Column, JsonValue, show
from postel.directory import parse_address
from postel.errors import NotFound, StoreError
from postel.store import QuotaUsage
from postel.store.quota_api import QUOTA_LIMIT_MAX

UNLIMITED_WORDS = ("none", "unlimited")
"""What ``--storage`` and ``--messages`` take to remove one limit."""
_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d{1,20})\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """``10M`` -> 10485760 (suffixes K, M, G, T, 1024-based; an optional ``B`` or
    ``iB`` after them); ``none`` or ``unlimited`` -> None. Raises CliError."""
    if text.strip().lower() in UNLIMITED_WORDS:
        return None
    match = _SIZE.match(text)
    if match is None:
        raise CliError(f"bad size {text!r}: give octets, or a number with K, M, G or T")
    value = int(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    if value > QUOTA_LIMIT_MAX:
        raise CliError(f"size {text!r} is too large")
    return value


def parse_count(text: str) -> int | None:
    """A message count, or ``none`` / ``unlimited`` -> None. Raises CliError."""
    if text.strip().lower() in UNLIMITED_WORDS:
        return None
    if not text.strip().isdigit() or int(text) > QUOTA_LIMIT_MAX:
        raise CliError(f"bad message count {text!r}")
    return int(text)


def format_size(octets: int) -> str:
    """``10485760`` -> ``10M``; ``1536`` -> ``1.5K``; below 1024 the octets."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SUFFIXES[suffix]
        if octets >= unit:
            value = octets / unit
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(octets)


def usage_cells(usage: QuotaUsage | None) -> dict[str, JsonValue]:
    """The quota keys of one account's row: raw numbers (``storage_limit`` and
    ``messages_limit`` None when unlimited) and the table's ``used/limit`` text."""
    if usage is None:
        return {
            "storage_used": None,
            "storage_limit": None,
            "messages": None,
            "messages_limit": None,
            "storage_text": "",
            "messages_text": "",
        }
    storage = format_size(usage.storage_used)
    if usage.storage_limit is not None:
        storage += f"/{format_size(usage.storage_limit)}"
    messages = str(usage.messages_used)
    if usage.messages_limit is not None:
        messages += f"/{usage.messages_limit}"
    return {
        "storage_used": usage.storage_used,
        "storage_limit": usage.storage_limit,
        "messages": usage.messages_used,
        "messages_limit": usage.messages_limit,
        "storage_text": storage,
        "messages_text": messages,
    }


QUOTA_TABLE_COLUMNS = (Column("storage_text", "STORAGE"), Column("messages_text", "MESSAGES"))
"""The table columns of ``account list`` (``used/limit``; no ``/limit`` when none)."""
QUOTA_JSON_COLUMNS = (
    Column("storage_used", ""),
    Column("storage_limit", ""),
    Column("messages", ""),
    Column("messages_limit", ""),
)
"""The JSON keys of ``account list`` (octets and message counts; null: no limit)."""


async def account_quota(args: argparse.Namespace, io: Io) -> int:
    """`postel account quota ADDRESS [--storage SIZE] [--messages N] [--none] [--json]`:
    set the given limits (``none`` removes one; ``--none`` removes both), then show the
    usage and limits. Spec: RFC 9208 §4.3, §5."""
    address = parse_address(args.address)
    if args.none and (args.storage is not None or args.messages is not None):
        raise CliError("--none removes both limits: give it alone")
    async with open_configured_store(config_from_args(args)) as store:
        account = await store.get_account(str(address))
        if account is None:
            raise CliError(f"no account {address}")
        try:
            if args.none or args.storage is not None or args.messages is not None:
                current = await store.quota_usage(account.id)
                storage = current.storage_limit
                messages = current.messages_limit
                if args.none:
                    storage = messages = None
                if args.storage is not None:
                    storage = parse_size(args.storage)
                if args.messages is not None:
                    messages = parse_count(args.messages)
                usage = await store.set_quota(account.id, storage, messages)
            else:
                usage = await store.quota_usage(account.id)
        except NotFound:
            raise CliError(f"no account {address}") from None
        except StoreError as exc:
            raise CliError(str(exc)) from None
    row: dict[str, JsonValue] = {"address": account.address, **usage_cells(usage)}
    if args.json:
        show(io, (Column("address", ""), *QUOTA_JSON_COLUMNS), [row], as_json=True, empty="")
        return 0
    storage_limit = "none" if usage.storage_limit is None else format_size(usage.storage_limit)
    message_limit = "none" if usage.messages_limit is None else str(usage.messages_limit)
    io.out(f"quota of {account.address}:")
    io.out(f"  storage:  {format_size(usage.storage_used)} used, limit {storage_limit}")
    io.out(f"  messages: {usage.messages_used}, limit {message_limit}")
    return 0


def add_quota_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``account quota`` under the ``account`` sub-commands ``sub``."""
    quota = sub.add_parser(
        "quota", parents=[common], help="show or set an account's storage and message limits"
    )
    quota.add_argument("address")
    quota.add_argument(
        "--storage",
        metavar="SIZE",
        help="limit on the size of all its messages: octets or 500K, 10M, 1G (1024-based); "
        "none removes it",
    )
    quota.add_argument(
        "--messages", metavar="N", help="limit on the number of its messages; none removes it"
    )
    quota.add_argument("--none", action="store_true", help="remove both limits")
    quota.add_argument("--json", action="store_true", help="print JSON")
    quota.set_defaults(async_handler=account_quota)
