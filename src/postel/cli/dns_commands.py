"""``postel dns records DOMAIN`` prints every DNS record the domain needs (a table,
``--json``, or zone-file lines with ``--zone``); ``postel dns check DOMAIN`` looks each
one up through postel's resolver (``[dns] nameservers`` honoured) and says ok, missing,
different or error per record. ``check`` exits 0 when every required record is ok and
1 otherwise.

Whatever DNS serves is printed safely: in the table every character that is not
printable (controls such as NUL and ESC, format characters such as bidi overrides,
separators) is written as ``\\DDD`` escapes of its UTF-8 octets, as in a zone file;
``--json`` is ASCII with JSON escapes, the values themselves kept exact.

Spec: RFC 1035 §5.1, RFC 7208, RFC 6376, RFC 7489, RFC 8461, RFC 8460, RFC 6186.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json

from postel.cli.context import (
    CliError,
    Io,
    config_from_args,
    domain_argument,
    ensure_hosted,
    require_hosted,
)
from postel.cli.dns_records import (
    CheckStatus,
    DnsRecord,
    DomainRecords,
    Finding,
    RecordType,
    Role,
    compare,
    domain_records,
    zone_lines,
)
from postel.cli.output import Column, JsonValue, show
from postel.clock import SystemClock
from postel.config import Config
from postel.directory import to_a_label
from postel.dkim import load_keys
from postel.resolver import (
    DnsError,
    DnsNxDomain,
    DnsPythonResolver,
    DnsTempError,
)

LOOKUP_GRACE_S = 1.0
"""Seconds an SRV lookup may run beyond ``DNS_LIFETIME_S`` before it is cancelled."""

RECORD_COLUMNS = (
    Column("name", "name"),
    Column("type", "type"),
    Column("value", "value"),
    Column("purpose", "purpose"),
    Column("rfc", "rfc"),
    Column("required", "required"),
)
RECORD_JSON_COLUMNS = (*RECORD_COLUMNS[:3], Column("placeholder", "fill in"), *RECORD_COLUMNS[3:])
"""In JSON a placeholder's ``value`` is "" and ``placeholder`` says what to fill in."""
CHECK_COLUMNS = (
    Column("status", "status"),
    Column("name", "name"),
    Column("type", "type"),
    Column("required", "required"),
    Column("expected", "expected"),
    Column("served", "served"),
    Column("detail", "detail"),
)


def _records(args: argparse.Namespace, config: Config) -> DomainRecords:
    domain = to_a_label(args.domain).lower()
    ipv4: list[ipaddress.IPv4Address] = []
    ipv6: list[ipaddress.IPv6Address] = []
    for text in args.ipv4 or ():
        try:
            ipv4.append(ipaddress.IPv4Address(text))
        except ValueError:
            raise CliError(f"--ipv4 {text!r} is not an IPv4 address") from None
    for text in args.ipv6 or ():
        try:
            ipv6.append(ipaddress.IPv6Address(text))
        except ValueError:
            raise CliError(f"--ipv6 {text!r} is not an IPv6 address") from None
    keys = load_keys(config.data_dir / "dkim", domain)
    try:
        return domain_records(config, domain, keys, ipv4=ipv4, ipv6=ipv6)
    except ValueError as exc:
        raise CliError(str(exc)) from None


_LOCAL_SUFFIXES = ("localhost", "localdomain", "local", "invalid")
"""Names that never lead another host to this one: RFC 6761 §6.3 (localhost), §6.4
(invalid), RFC 6762 (local, multicast DNS), and the usual ``localdomain``. (``test`` and
``example`` names work in a test network with its own DNS.)"""


def _public_name(hostname: str) -> bool:
    """Whether ``hostname`` could be the name peers find in an MX record: at least two
    labels and not under a special-use suffix."""
    labels = hostname.rstrip(".").lower().split(".")
    return len(labels) >= 2 and labels[-1] not in _LOCAL_SUFFIXES


def _shown_value(record: DnsRecord) -> str:
    return record.placeholder or record.value


def dns_records(args: argparse.Namespace, io: Io) -> int:
    """Print the records of ``args.domain``: a table followed by the MTA-STS policy
    file, ``--json`` (a list of objects), ``--zone`` (master-file lines) or
    ``--mta-sts-policy`` (the policy file itself, CRLF line ends)."""
    config = config_from_args(args)
    require_hosted(config, to_a_label(args.domain).lower())
    records = _records(args, config)
    if not _public_name(config.hostname):
        io.note(
            f"the hostname {config.hostname!r} is not a public DNS name, and the MX and "
            "MTA-STS records name it: set `hostname` in the configuration file to this "
            "server's public name first"
        )
    if args.mta_sts_policy:
        io.out_bytes(records.policy_text.encode("ascii"))
        return 0
    if args.zone:
        for line in zone_lines(records):
            io.out(line)
        return 0
    rows: list[dict[str, JsonValue]] = [
        {
            "name": record.name,
            "type": record.type.value,
            "value": record.value if args.json else _shown_value(record),
            "placeholder": record.placeholder,
            "purpose": record.purpose,
            "rfc": record.spec,
            "required": record.required,
        }
        for record in records.records
    ]
    columns = RECORD_JSON_COLUMNS if args.json else RECORD_COLUMNS
    show(io, columns, rows, as_json=args.json, empty="no records")
    if not args.json:
        io.out("")
        io.out(f"MTA-STS policy file, to serve at {records.policy_url}:")
        for line in records.policy_text.splitlines():
            io.out(f"  {line}")
    return 0


async def dns_check(args: argparse.Namespace, io: Io) -> int:
    """Look up every record of ``args.domain`` and print one finding per record;
    return 0 when every required record is ok, else 1."""

    config = config_from_args(args)
    await ensure_hosted(config, to_a_label(args.domain).lower())
    records = _records(args, config)
    lookups = _Lookups(DnsPythonResolver(config.dns.servers(), clock=SystemClock(), cache_size=0))
    findings = await lookups.check_all(records)
    rows: list[dict[str, JsonValue]] = [
        {
            "status": finding.status.value,
            "name": finding.record.name,
            "type": finding.record.type.value,
            "required": finding.record.required,
            "expected": _shown_value(finding.record),
            "served": list(finding.served),
            "detail": finding.detail,
        }
        for finding in findings
    ]
    failed = [f for f in findings if f.record.required and f.status is not CheckStatus.OK]
    if args.json:
        io.out(terminal_safe_json(rows))
    else:
        show(
            io,
            CHECK_COLUMNS,
            [_printable_row(row) for row in rows],
            as_json=False,
            empty="no records",
        )
        required = sum(1 for f in findings if f.record.required)
        io.out("")
        io.out(f"{required - len(failed)} of {required} required records ok")
    return 1 if failed else 0


def printable(text: str) -> str:
    """``text`` with every character that ``str.isprintable`` refuses (C0 and C1
    controls, DEL, format characters, line and paragraph separators, unassigned code
    points) written as ``\\DDD`` escapes of its UTF-8 octets, so that served DNS data
    cannot drive the terminal. Spec: RFC 1035 §5.1 (``\\DDD`` in master files)."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable()
        else "".join(f"\\{octet:03d}" for octet in c.encode("utf-8", "replace"))
        for c in text
    )


def terminal_safe_json(value: object) -> str:
    """``value`` as JSON holding ASCII printable characters only: JSON escapes for the
    rest (DEL included, which ``json.dumps`` leaves raw); values are unchanged once
    parsed. Spec: RFC 8259 §7."""
    return json.dumps(value, ensure_ascii=True).replace("\x7f", "\\u007f")


def _printable_row(row: dict[str, JsonValue]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for key, value in row.items():
        if isinstance(value, str):
            out[key] = printable(value)
        elif isinstance(value, list):
            out[key] = [printable(item) for item in value]
        else:
            out[key] = value
    return out


class _Lookups:
    """Served values per record, through postel's resolver."""

    def __init__(self, resolver: DnsPythonResolver) -> None:
        self._resolver = resolver

    async def check_all(self, records: DomainRecords) -> list[Finding]:
        """One finding per record, in order; lookups run concurrently."""
        async with asyncio.TaskGroup() as group:
            host = group.create_task(self._addresses(records.hostname))
            tasks = [group.create_task(self._served(record)) for record in records.records]
        findings: list[Finding] = []
        for record, task in zip(records.records, tasks, strict=True):
            served = task.result()
            if isinstance(served, DnsError):
                findings.append(Finding(record, CheckStatus.ERROR, (), str(served)))
                continue
            host_addresses = host.result()
            if record.role is Role.MTA_STS_HOST and isinstance(host_addresses, DnsError):
                findings.append(
                    Finding(
                        record, CheckStatus.ERROR, served, f"{records.hostname}: {host_addresses}"
                    )
                )
                continue
            reference = host_addresses if isinstance(host_addresses, tuple) else ()
            findings.append(compare(record, served, host_addresses=reference))
        return findings

    async def _served(self, record: DnsRecord) -> tuple[str, ...] | DnsError:
        if record.role is Role.DKIM and record.placeholder:
            return ()
        if record.role is Role.MTA_STS_HOST:
            return await self._addresses(record.name)
        try:
            return await self._values(record)
        except DnsNxDomain:
            return ()
        except DnsError as exc:
            return exc

    async def _values(self, record: DnsRecord) -> tuple[str, ...]:
        match record.type:
            case RecordType.MX:
                answer = await self._resolver.mx(record.name)
                if answer.null_mx:
                    return ("0 .",)
                return tuple(f"{mx.preference} {mx.exchange}." for mx in answer.records)
            case RecordType.A:
                return tuple(str(a) for a in await self._resolver.a(record.name))
            case RecordType.AAAA:
                return tuple(str(a) for a in await self._resolver.aaaa(record.name))
            case RecordType.TXT:
                texts = await self._resolver.txt(record.name)
                return tuple(text.decode("utf-8", "replace") for text in texts)
            case RecordType.SRV:
                return tuple(str(srv) for srv in await self._resolver.srv(record.name))
        raise DnsTempError(f"cannot look up {record.type} records")

    async def _addresses(self, name: str) -> tuple[str, ...] | DnsError:
        """A and AAAA of ``name`` (CNAMEs followed); NXDOMAIN is no address."""
        found: list[str] = []
        try:
            found += [str(a) for a in await self._resolver.a(name)]
            found += [str(a) for a in await self._resolver.aaaa(name)]
        except DnsNxDomain:
            return ()
        except DnsError as exc:
            return exc
        return tuple(found)


def add_dns_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``postel dns records`` and ``postel dns check``."""
    dns_parser = commands.add_parser("dns", help="the DNS records a domain needs")
    sub = dns_parser.add_subparsers(dest="action", metavar="<action>", required=True)
    records = sub.add_parser(
        "records", parents=[common], help="print the records to publish for a domain"
    )
    _domain_options(records)
    form = records.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON for scripts")
    form.add_argument("--zone", action="store_true", help="print zone-file lines")
    form.add_argument(
        "--mta-sts-policy", action="store_true", help="print the MTA-STS policy file only"
    )
    records.set_defaults(handler=dns_records)
    check = sub.add_parser(
        "check", parents=[common], help="compare the records with what DNS serves"
    )
    _domain_options(check)
    check.add_argument("--json", action="store_true", help="print JSON for scripts")
    check.set_defaults(async_handler=dns_check)


def _domain_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domain", type=domain_argument)
    parser.add_argument(
        "--ipv4",
        action="append",
        metavar="ADDR",
        help="public IPv4 address of the mail host (repeatable; default: from [listen])",
    )
    parser.add_argument(
        "--ipv6",
        action="append",
        metavar="ADDR",
        help="public IPv6 address of the mail host (repeatable; default: from [listen])",
    )
