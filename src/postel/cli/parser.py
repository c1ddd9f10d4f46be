"""The argument parser of ``postel``: ``postel [--data DIR | --config FILE] <command>``.

``--data`` and ``--config`` are accepted before the command and after it.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path

from postel.cli import config_commands, directory_commands, mailbox_commands
from postel.cli.context import Io, domain_argument
from postel.cli.dkim_commands import add_dkim_commands
from postel.cli.dmarc_commands import add_dmarc_commands
from postel.cli.dns_commands import add_dns_commands
from postel.cli.password_input import add_password_options
from postel.cli.queue_commands import add_queue_commands
from postel.cli.quota_commands import add_quota_command

SyncHandler = Callable[[argparse.Namespace, Io], int]
AsyncHandler = Callable[[argparse.Namespace, Io], Awaitable[int]]


def _location_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("where the data is")
    group.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        default=default,
        help="data directory of the embedded default (no configuration file)",
    )
    group.add_argument(
        "--config", type=Path, metavar="FILE", default=default, help="configuration file (TOML)"
    )


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _location_options(common, suppress=True)
    return common


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each leaf command sets ``handler`` (sync) or ``async_handler``."""
    parser = argparse.ArgumentParser(
        prog="postel", description="postel mail server and its administration."
    )
    _location_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    common = _common()

    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.set_defaults(handler=config_commands.serve)
    # An SMTP worker process of [smtp] processes (started by postel itself).
    serve.add_argument("--worker-listen-fds", help=argparse.SUPPRESS)
    serve.add_argument("--worker-ipc-fd", type=int, help=argparse.SUPPRESS)

    config = commands.add_parser("config", help="check the configuration")
    config_sub = config.add_subparsers(dest="action", metavar="<action>", required=True)
    check = config_sub.add_parser("check", parents=[common], help="validate and summarise")
    check.set_defaults(handler=config_commands.config_check)

    _domain_commands(commands, common)
    _account_commands(commands, common)
    _alias_commands(commands, common)
    _mailbox_commands(commands, common)
    add_dkim_commands(commands, common)
    add_dns_commands(commands, common)
    add_queue_commands(commands, common)
    add_dmarc_commands(commands, common)
    return parser


def _domain_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    domain = commands.add_parser("domain", help="manage the domains we receive mail for")
    sub = domain.add_subparsers(dest="action", metavar="<action>", required=True)
    add = sub.add_parser("add", parents=[common], help="add a domain")
    add.add_argument("domain", type=domain_argument)
    add.set_defaults(async_handler=directory_commands.domain_add)
    listing = sub.add_parser("list", parents=[common], help="list domains")
    _json_option(listing)
    listing.set_defaults(async_handler=directory_commands.domain_list)
    remove = sub.add_parser("remove", parents=[common], help="remove a domain without accounts")
    remove.add_argument("domain", type=domain_argument)
    remove.set_defaults(async_handler=directory_commands.domain_remove)


def _account_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    account = commands.add_parser("account", help="manage accounts")
    sub = account.add_subparsers(dest="action", metavar="<action>", required=True)
    add = sub.add_parser("add", parents=[common], help="add an account")
    add.add_argument("address")
    add_password_options(add)
    add.add_argument("--admin", action="store_true", help="an administrator account")
    add.add_argument(
        "--sender",
        choices=directory_commands.SENDER_POLICIES,
        default="own",
        help="senders allowed in submission: own addresses (default), own domain, any",
    )
    _json_option(add)
    add.set_defaults(async_handler=directory_commands.account_add)
    listing = sub.add_parser("list", parents=[common], help="list accounts")
    listing.add_argument(
        "--domain", type=domain_argument, metavar="D", help="only the accounts of domain D"
    )
    _json_option(listing)
    listing.set_defaults(async_handler=directory_commands.account_list)
    passwd = sub.add_parser("passwd", parents=[common], help="set an account's password")
    passwd.add_argument("address")
    add_password_options(passwd)
    _json_option(passwd)
    passwd.set_defaults(async_handler=directory_commands.account_passwd)
    remove = sub.add_parser("remove", parents=[common], help="remove an account and its mail")
    remove.add_argument("address")
    remove.set_defaults(async_handler=directory_commands.account_remove)
    sender = sub.add_parser(
        "sender", parents=[common], help="set which senders an account may submit as"
    )
    sender.add_argument("address")
    sender.add_argument(
        "policy",
        choices=directory_commands.SENDER_POLICIES,
        help="own: its addresses and aliases; domain: any at its domain; any: any address",
    )
    sender.set_defaults(async_handler=directory_commands.account_sender)
    add_quota_command(sub, common)


def _alias_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    alias = commands.add_parser("alias", help="manage aliases and catch-alls")
    sub = alias.add_subparsers(dest="action", metavar="<action>", required=True)
    add = sub.add_parser("add", parents=[common], help="add an alias (@domain: catch-all)")
    add.add_argument("source", metavar="SOURCE", help="local@domain, or @domain for a catch-all")
    add.add_argument("targets", metavar="TARGET", nargs="+", help="local addresses")
    add.set_defaults(async_handler=directory_commands.alias_add)
    listing = sub.add_parser("list", parents=[common], help="list aliases")
    listing.add_argument(
        "--domain", type=domain_argument, metavar="D", help="only the aliases of domain D"
    )
    _json_option(listing)
    listing.set_defaults(async_handler=directory_commands.alias_list)
    remove = sub.add_parser("remove", parents=[common], help="remove an alias")
    remove.add_argument("source", metavar="SOURCE")
    remove.set_defaults(async_handler=directory_commands.alias_remove)


def _mailbox_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    mailbox = commands.add_parser("mailbox", help="look at an account's mailboxes")
    sub = mailbox.add_subparsers(dest="action", metavar="<action>", required=True)
    listing = sub.add_parser("list", parents=[common], help="mailboxes and message counts")
    listing.add_argument("address")
    _json_option(listing)
    listing.set_defaults(async_handler=mailbox_commands.mailbox_list)

    message = commands.add_parser("message", help="look at the messages in a mailbox")
    sub = message.add_subparsers(dest="action", metavar="<action>", required=True)
    listing = sub.add_parser("list", parents=[common], help="messages in a mailbox")
    listing.add_argument("address")
    listing.add_argument("--mailbox", default="INBOX", metavar="NAME", help="default INBOX")
    _json_option(listing)
    listing.set_defaults(async_handler=mailbox_commands.message_list)
    show = sub.add_parser("show", parents=[common], help="print one stored message")
    show.add_argument("address")
    show.add_argument("uid", type=int, metavar="UID")
    show.add_argument("--mailbox", default="INBOX", metavar="NAME", help="default INBOX")
    show.set_defaults(async_handler=mailbox_commands.message_show)
