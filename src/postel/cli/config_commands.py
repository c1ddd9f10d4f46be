"""``postel config check`` and ``postel serve``."""

from __future__ import annotations

import argparse
import re

from postel.cli.context import Io, config_from_args
from postel.config import Config, check

_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact_url(url: str) -> str:
    """The database URL without its password: ``postgresql://u:***@host/db``."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def summary(config: Config) -> list[str]:
    """Human-readable lines describing ``config`` (no secrets)."""
    source = str(config.source) if config.source else "embedded default (no configuration file)"
    listen = ", ".join(
        f"{item.service.value} {_endpoint(item.host, item.port)}" for item in config.listen
    )
    tls = str(config.tls.cert_file)
    if config.tls.generate_self_signed:
        # Say where the generated pair goes: with cert_file/key_file kept from the
        # example it is outside the data directory (e.g. /etc), which is rarely meant.
        tls = f"self-signed, made if missing: {config.tls.cert_file}, {config.tls.key_file}"
        if not config.tls.cert_file.is_relative_to(config.data_dir):
            tls += " (outside data_dir)"
    return [
        f"source:   {source}",
        f"hostname: {config.hostname}",
        f"data:     {config.data_dir}",
        f"database: {redact_url(config.database_url)}",
        f"admin:    {config.admin_address or '(first admin account)'}",
        f"tls:      {tls}",
        f"listen:   {listen or '(nothing)'}",
        f"smtp:     message_size_max={config.smtp.message_size_max} "
        f"recipients_max={config.smtp.recipients_max} "
        f"bare_line_endings={config.smtp.bare_line_endings.value} "
        f"processes={config.smtp.processes}",
        f"delivery: {'on' if config.delivery.enabled else 'off (mail for other domains waits)'}",
        f"run as:   {config.run_as or '(the starting user; root is logged as a warning)'}",
        f"abuse:    {'on' if config.abuse.enabled else 'off'}",
    ]


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def config_check(args: argparse.Namespace, io: Io) -> int:
    """Print ``ok`` and a summary, or each problem as ``FILE:LINE: message`` (exit 1)."""
    if getattr(args, "config", None) is None:
        config = config_from_args(args, existing=False)
        io.out("ok")
        for line in summary(config):
            io.out(line)
        return 0
    loaded, errors = check(args.config)
    for error in errors:
        print(str(error), file=io.stderr)
    if errors or loaded is None:
        return 1
    io.out("ok")
    for line in summary(loaded):
        io.out(line)
    return 0


def serve(args: argparse.Namespace, io: Io) -> int:
    """Run the server until SIGTERM (``postel.app.run``)."""
    config = config_from_args(args, existing=False)
    if args.worker_ipc_fd is not None:
        from postel.app import run_smtp_worker

        fds = [int(fd) for fd in (args.worker_listen_fds or "").split(",") if fd]
        return run_smtp_worker(config, fds, args.worker_ipc_fd)
    from postel.app import run as run_app

    return run_app(config)
