"""``postel domain | account | alias``: manage the directory in the store.

Every command opens the store as ``serve`` does (``--config`` or ``--data``), acts, and
closes it. Names are normalised as the directory compares them (``postel.directory``):
domains in lower-case A-label form, local parts kept as typed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from postel.cli.context import CliError, Io, config_from_args, open_configured_store
from postel.cli.output import Column, JsonValue, show, timestamp
from postel.cli.password_input import credentials_for, obtain_password
from postel.cli.quota_commands import QUOTA_JSON_COLUMNS, QUOTA_TABLE_COLUMNS, usage_cells
from postel.directory import (
    Directory,
    Forwarded,
    LocalRecipients,
    normalize_domain,
    parse_address,
)
from postel.errors import AlreadyExists, NotFound
from postel.store.api import Alias, SenderPolicy, Store

SENDER_POLICIES = tuple(p.value for p in SenderPolicy)
"""The values of ``--sender`` and ``account sender``: own, domain, any."""

# -- domains ---------------------------------------------------------------------------


async def domain_add(args: argparse.Namespace, io: Io) -> int:
    """`postel domain add DOMAIN`: add a domain (stored as lower-case A-labels)."""
    name = normalize_domain(args.domain)
    async with open_configured_store(config_from_args(args, creates=True)) as store:
        try:
            await store.add_domain(name)
        except AlreadyExists:
            raise CliError(f"domain {name} already exists") from None
    io.out(f"added domain {name}")
    return 0


async def domain_list(args: argparse.Namespace, io: Io) -> int:
    """`postel domain list [--json]`: the domains we receive mail for."""
    async with open_configured_store(config_from_args(args)) as store:
        domains = await store.list_domains()
    rows: list[dict[str, JsonValue]] = [
        {"name": d.name, "created": timestamp(d.created)} for d in domains
    ]
    columns = (Column("name", "DOMAIN"), Column("created", "CREATED"))
    show(io, columns, rows, as_json=args.json, empty="no domains")
    return 0


async def domain_remove(args: argparse.Namespace, io: Io) -> int:
    """`postel domain remove DOMAIN`: remove a domain that has no accounts. Its DKIM
    keys stay on disk (a key in DNS may still be needed to verify mail already sent):
    a note says where."""
    name = normalize_domain(args.domain)
    config = config_from_args(args)
    async with open_configured_store(config) as store:
        try:
            await store.remove_domain(name)
        except NotFound:
            raise CliError(f"no domain {name}") from None
    io.out(f"removed domain {name}")
    keys = config.data_dir / "dkim" / name
    if keys.is_dir() and any(keys.glob("*.pem")):
        io.note(
            f"its DKIM keys stay in {keys}: they sign again if the domain is added back; "
            "delete that directory to drop them"
        )
    return 0


# -- accounts --------------------------------------------------------------------------


async def _require_domain(store: Store, domain: str) -> None:
    if await store.get_domain(domain) is None:
        raise CliError(
            f"domain {domain} does not exist: add it first with `postel domain add {domain}`"
        )


async def account_add(args: argparse.Namespace, io: Io) -> int:
    """`postel account add ADDRESS [--password-file F | --generate] [--admin]
    [--sender own|domain|any]`; the domain must exist."""
    address = parse_address(args.address)
    config = config_from_args(args)
    async with open_configured_store(config) as store:
        await _require_domain(store, address.domain)
        if await store.get_account(str(address)) is not None:
            raise CliError(f"account {address} already exists")
        new = obtain_password(args, io)
        try:
            account = await store.add_account(
                str(address),
                credentials_for(new),
                is_admin=args.admin,
                sender_policy=SenderPolicy(args.sender),
                storage_limit=config.quota.storage_limit,
                message_limit=config.quota.message_limit,
            )
        except AlreadyExists:
            raise CliError(f"account {address} already exists") from None
        alias = await store.get_alias(account.address)
    if alias is not None:
        _note_shadowed(io, account.address, alias.targets)
    _report_password(
        io,
        args,
        "added account",
        account.address,
        new.password if new.generated else None,
        admin=account.is_admin,
    )
    return 0


async def account_passwd(args: argparse.Namespace, io: Io) -> int:
    """`postel account passwd ADDRESS [--password-file F | --generate]`."""
    address = parse_address(args.address)
    async with open_configured_store(config_from_args(args)) as store:
        account = await store.get_account(str(address))
        if account is None:
            raise CliError(f"no account {address}")
        new = obtain_password(args, io)
        await store.set_credentials(account.address, credentials_for(new))
    _report_password(
        io,
        args,
        "changed the password of",
        account.address,
        new.password if new.generated else None,
        admin=account.is_admin,
    )
    return 0


def _report_password(
    io: Io,
    args: argparse.Namespace,
    action: str,
    address: str,
    generated: str | None,
    *,
    admin: bool,
) -> None:
    if args.json:  # one object: one account was added or changed
        row: dict[str, JsonValue] = {"address": address, "admin": admin, "password": generated}
        io.out(json.dumps(row, ensure_ascii=False))
        return
    io.out(f"{action} {address}")
    if generated is not None:
        io.out(f"password (shown only this once): {generated}")


async def account_list(args: argparse.Namespace, io: Io) -> int:
    """`postel account list [--domain D] [--json]`, sorted by address, with each
    account's quota usage and limits (``used/limit``)."""
    domain = normalize_domain(args.domain) if args.domain else None
    async with open_configured_store(config_from_args(args)) as store:
        accounts = await store.list_accounts(domain)
        usages = await store.quota_usages([a.id for a in accounts])
    rows: list[dict[str, JsonValue]] = [
        {
            "address": a.address,
            "admin": a.is_admin,
            "sender": a.sender_policy.value,
            "created": timestamp(a.created),
            **usage_cells(usages.get(a.id)),
        }
        for a in sorted(accounts, key=lambda a: a.address.lower())
    ]
    columns = (
        Column("address", "ADDRESS"),
        Column("admin", "ADMIN"),
        Column("sender", "SENDER"),
        *(QUOTA_JSON_COLUMNS if args.json else QUOTA_TABLE_COLUMNS),
        Column("created", "CREATED"),
    )
    show(io, columns, rows, as_json=args.json, empty="no accounts")
    return 0


async def account_sender(args: argparse.Namespace, io: Io) -> int:
    """`postel account sender ADDRESS own|domain|any`: which senders (MAIL FROM and
    From:) submission accepts from the account: its own addresses and aliases, any
    address at its domain, or any address. A running server applies it from the
    account's next session. Spec: RFC 6409 §6.1."""
    address = parse_address(args.address)
    policy = SenderPolicy(args.policy)
    async with open_configured_store(config_from_args(args)) as store:
        try:
            account = await store.set_sender_policy(str(address), policy)
        except NotFound:
            raise CliError(f"no account {address}") from None
    io.out(f"sender policy of {account.address}: {account.sender_policy.value}")
    return 0


async def account_remove(args: argparse.Namespace, io: Io) -> int:
    """`postel account remove ADDRESS`: the account, its mailboxes and messages; the
    account leaves the targets of every alias, and an alias with no target left goes
    too: a note names each alias so changed."""
    address = parse_address(args.address)
    async with open_configured_store(config_from_args(args)) as store:
        naming = await _aliases_naming(store, str(address))
        try:
            await store.remove_account(str(address))
        except NotFound:
            raise CliError(f"no account {address}") from None
    io.out(f"removed account {address}")
    deleted = [a.source for a in naming if len(a.targets) == 1]
    narrowed = [a.source for a in naming if len(a.targets) > 1]
    if deleted:
        io.note(f"removed alias {', '.join(deleted)} too ({address} was its only target)")
    if narrowed:
        io.note(f"{address} is no longer a target of alias {', '.join(narrowed)}")
    return 0


# -- aliases ---------------------------------------------------------------------------


def alias_source(text: str) -> str:
    """``local@domain`` or the catch-all ``@domain``, domain normalised."""
    if text.startswith("@"):
        return f"@{normalize_domain(text[1:])}"
    return str(parse_address(text))


async def _check_target(store: Store, directory: Directory, target: str) -> str:
    """A target of our domains must exist (an account or alias); any other address is a
    remote forward address, taken as given (mail to it is forwarded with SRS and ARC)."""
    address = parse_address(target)
    if not await directory.is_local_domain(address.domain):
        return str(address)
    if not await directory.has_own_entry(str(address)) or not isinstance(
        await directory.resolve(str(address)), LocalRecipients | Forwarded
    ):
        raise CliError(f"alias target {address}: no such account or alias")
    return str(address)


async def alias_add(args: argparse.Namespace, io: Io) -> int:
    """`postel alias add SOURCE TARGET...`: targets of our domains must be existing
    accounts or aliases; targets of other domains are forwarded to (port 25 mail to the
    alias is queued for them, ``[forwarding]``). Spec: RFC 5321 §3.9."""
    source = alias_source(args.source)
    config = config_from_args(args)
    async with open_configured_store(config) as store:
        await _require_domain(store, source.rpartition("@")[2])
        directory = Directory(store, config.admin_address)
        targets = [await _check_target(store, directory, t) for t in args.targets]
        try:
            alias = await store.add_alias(source, list(dict.fromkeys(targets)))
        except AlreadyExists:
            raise CliError(f"alias {source} already exists (remove it first)") from None
        account = None if source.startswith("@") else await store.get_account(source)
    io.out(f"added alias {alias.source} -> {', '.join(alias.targets)}")
    if account is not None:
        _note_shadowed(io, account.address, alias.targets)
    return 0


def _note_shadowed(io: Io, address: str, targets: Sequence[str]) -> None:
    """Say so when an alias and an account share ``address``: the alias decides where
    mail to it goes, so the account's mailbox gets a copy only if the alias names it."""
    if address.lower() in (t.lower() for t in targets):
        return
    io.note(
        f"{address} is both an account and an alias: its mail goes to the alias's "
        f"targets only; to keep a copy in the account, name {address} among them"
    )


async def alias_list(args: argparse.Namespace, io: Io) -> int:
    """`postel alias list [--domain D] [--json]`."""
    domain = normalize_domain(args.domain) if args.domain else None
    async with open_configured_store(config_from_args(args)) as store:
        aliases = await store.list_aliases(domain)
    rows: list[dict[str, JsonValue]] = [
        {"source": a.source, "targets": list(a.targets), "created": timestamp(a.created)}
        for a in aliases
    ]
    columns = (
        Column("source", "ALIAS"),
        Column("targets", "TARGETS"),
        Column("created", "CREATED"),
    )
    show(io, columns, rows, as_json=args.json, empty="no aliases")
    return 0


async def _aliases_naming(store: Store, address: str) -> list[Alias]:
    """The aliases with ``address`` among their targets (case-insensitively)."""
    key = address.lower()
    return [a for a in await store.list_aliases() if key in map(str.lower, a.targets)]


async def alias_remove(args: argparse.Namespace, io: Io) -> int:
    """`postel alias remove SOURCE`; notes the aliases that still name SOURCE when
    nothing of its own (an account, a role address) reaches it any more."""
    source = alias_source(args.source)
    config = config_from_args(args)
    async with open_configured_store(config) as store:
        try:
            await store.remove_alias(source)
        except NotFound:
            raise CliError(f"no alias {source}") from None
        naming = [a.source for a in await _aliases_naming(store, source)]
        if naming and await Directory(store, config.admin_address).has_own_entry(source):
            naming = []  # an account still takes it
    io.out(f"removed alias {source}")
    if naming:
        io.note(
            f"{source} is still a target of {', '.join(naming)}: unless a catch-all takes "
            "it, that copy is refused as an unknown recipient"
        )
    return 0
