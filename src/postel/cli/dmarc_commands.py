"""``postel dmarc reports|sent``: DMARC aggregate reports received for our domains
and those we sent. Safe beside a running server (reads only).

Spec: RFC 9990 §2.1 (report content).
"""

from __future__ import annotations

import argparse
import datetime as dt

from postel.cli.context import Io, config_from_args, open_configured_store
from postel.cli.output import Column, JsonValue, show, timestamp
from postel.store.dmarc_api import DMARC_LIST_MAX


def _period(begin: int, end: int) -> str:
    first = dt.datetime.fromtimestamp(begin, dt.UTC)
    last = dt.datetime.fromtimestamp(end, dt.UTC)
    return f"{timestamp(first)} .. {timestamp(last)}"


async def dmarc_reports(args: argparse.Namespace, io: Io) -> int:
    """Summaries of the aggregate reports received, newest first."""
    async with open_configured_store(config_from_args(args)) as store:
        reports = await store.list_received_dmarc_reports(args.limit)
    rows: list[dict[str, JsonValue]] = [
        {
            "received": timestamp(r.received_at),
            "org_name": r.org_name,
            "report_id": r.report_id,
            "email": r.email,
            "domain": r.policy_domain,
            "begin": r.begin,
            "end": r.end,
            "period": _period(r.begin, r.end),
            "records": r.records,
            "messages": r.messages,
            "pass": r.passing,
            "fail": r.messages - r.passing,
            "size": r.raw_size,
            "recipient": r.recipient,
        }
        for r in reports
    ]
    columns = [
        Column("received", "received"),
        Column("org_name", "reporter"),
        Column("domain", "domain"),
        Column("period", "period"),
        Column("messages", "messages"),
        Column("pass", "pass"),
        Column("fail", "fail"),
        Column("report_id", "report id"),
    ]
    show(io, columns, rows, as_json=args.json, empty="no DMARC reports received")
    return 0


async def dmarc_sent(args: argparse.Namespace, io: Io) -> int:
    """The aggregate reports sent, newest first, one row per reporting URI."""
    async with open_configured_store(config_from_args(args)) as store:
        reports = await store.list_sent_dmarc_reports(args.limit)
    rows: list[dict[str, JsonValue]] = [
        {
            "sent": timestamp(r.sent_at),
            "domain": r.policy_domain,
            "rua": r.rua,
            "report_id": r.report_id,
            "begin": r.begin,
            "end": r.end,
            "period": _period(r.begin, r.end),
            "records": r.records,
            "messages": r.messages,
        }
        for r in reports
    ]
    columns = [
        Column("sent", "sent"),
        Column("domain", "domain"),
        Column("rua", "rua"),
        Column("period", "period"),
        Column("messages", "messages"),
        Column("report_id", "report id"),
    ]
    show(io, columns, rows, as_json=args.json, empty="no DMARC reports sent")
    return 0


def add_dmarc_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``postel dmarc ...``."""
    dmarc = commands.add_parser("dmarc", help="DMARC aggregate reports")
    sub = dmarc.add_subparsers(dest="action", metavar="<action>", required=True)
    for name, handler, text in (
        ("reports", dmarc_reports, "aggregate reports received for our domains"),
        ("sent", dmarc_sent, "aggregate reports we sent"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument(
            "--limit", type=int, default=100, help=f"at most this many (max {DMARC_LIST_MAX})"
        )
        p.set_defaults(async_handler=handler)
