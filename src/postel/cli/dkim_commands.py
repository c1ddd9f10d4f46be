"""``postel dkim generate DOMAIN``: make the signing keys of a domain and print the DNS
records to publish. Keys live in ``<data>/dkim/<domain>/<selector>.pem``; submitted
mail whose From: is in the domain is signed with every key there (RSA and Ed25519
together, as RFC 8463 §1 recommends while verifiers learn Ed25519).

Spec: RFC 6376 §3.6.1, RFC 8463, RFC 8301.
"""

from __future__ import annotations

import argparse

from postel.cli.context import CliError, Io, config_from_args, domain_argument, require_hosted
from postel.cli.output import Column, JsonValue, show
from postel.directory import to_a_label
from postel.dkim import KeyAlgorithm, dns_record, generate_key, write_key

DEFAULT_SELECTOR_PREFIX = "postel"
"""Selectors made by default: ``postel-rsa`` and ``postel-ed25519``."""


def dkim_generate(args: argparse.Namespace, io: Io) -> int:
    """Generate the keys (RSA-2048 and Ed25519 unless ``--algorithm`` picks one) and
    print ``name TXT value`` for each. Refuses to replace an existing key."""
    config = config_from_args(args)
    domain = to_a_label(args.domain).lower()
    require_hosted(config, domain)
    algorithms = list(KeyAlgorithm) if args.algorithm == "both" else [KeyAlgorithm(args.algorithm)]
    prefix = args.selector or DEFAULT_SELECTOR_PREFIX
    rows: list[dict[str, JsonValue]] = []
    for algorithm in algorithms:
        selector = f"{prefix}-{algorithm.value}" if args.algorithm == "both" else prefix
        try:
            key = generate_key(domain, selector, algorithm)
            write_key(config.data_dir / "dkim", key)
        except FileExistsError:
            raise CliError(f"a key for selector {selector} of {domain} exists already") from None
        except ValueError as exc:
            raise CliError(str(exc)) from None
        name, value = dns_record(key)
        rows.append(
            {"selector": selector, "algorithm": algorithm.value, "name": name, "value": value}
        )
    columns = [
        Column("selector", "selector"),
        Column("algorithm", "algorithm"),
        Column("name", "TXT record name"),
        Column("value", "value"),
    ]
    show(io, columns, rows, as_json=args.json, empty="no key made")
    return 0


def add_dkim_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``postel dkim generate``."""
    dkim = commands.add_parser("dkim", help="DKIM signing keys")
    sub = dkim.add_subparsers(dest="action", metavar="<action>", required=True)
    generate = sub.add_parser(
        "generate", parents=[common], help="make signing keys and print their DNS records"
    )
    generate.add_argument("domain", type=domain_argument)
    generate.add_argument(
        "--selector", metavar="S", help="selector (default postel-rsa, postel-ed25519)"
    )
    generate.add_argument(
        "--algorithm", choices=["both", "rsa", "ed25519"], default="both", help="key type"
    )
    generate.add_argument("--json", action="store_true", help="print JSON for scripts")
    generate.set_defaults(handler=dkim_generate)
