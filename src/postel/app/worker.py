"""The process of an extra port-25 worker (``[smtp] processes``, docs/adr/0005).

The main process starts it as ``python -c`` with ``main`` as the program
(``postel.server.smtp_workers.worker_argv``), not through the ``postel`` command: a
worker imports only what port 25 needs (no administration commands, IMAP, POP3,
submission or web modules), so that each one costs less memory (docs/adr/0005, Memory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from postel.app.build import (
    SHUTDOWN_GRACE_SECONDS,
    dmarc_reporting,
    drop_privileges,
    load_secret,
    port25,
    report_sender,
)
from postel.app.logs import setup_logging
from postel.app.memory import limit_malloc_arenas, settle
from postel.app.runtime import set_switch_interval
from postel.clock import SystemClock
from postel.config import Config, Service, resolve_config
from postel.errors import PostelError
from postel.server import tls
from postel.server.delivery_ipc import DeliveryClient
from postel.server.listener import Listener
from postel.server.worker_store import WorkerStore
from postel.store import Store

__all__ = [
    "location",
    "main",
    "run_smtp_worker",
    "serve_smtp_worker",
]

log = logging.getLogger(__name__)

EXIT_ERROR = 1
"""A worker that could not start (bad configuration, unreadable TLS key)."""


def location(config: Config) -> list[str]:
    """The CLI options that make another postel process read this configuration."""
    if config.source is not None:
        return ["--config", str(config.source)]
    return ["--data", str(config.data_dir)]


def main(argv: Sequence[str] | None = None) -> int:
    """A worker process's entry (``argv``: the options of
    ``postel.server.smtp_workers.worker_argv``; default: the process arguments): read the
    configuration, serve until told to stop. Returns the exit status: 0, or 1 with one
    line on standard error (never a traceback) when the configuration or the TLS key
    cannot be read or serving failed."""
    limit_malloc_arenas()  # before any thread starts
    set_switch_interval()
    os.umask(0o077)
    parser = argparse.ArgumentParser(prog="postel-smtp-worker")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--listen-fds", default="")
    parser.add_argument("--ipc-fd", type=int, required=True)
    args = parser.parse_args(argv)
    fds = [int(fd) for fd in args.listen_fds.split(",") if fd]
    try:
        config = resolve_config(args.config, args.data)
        return run_smtp_worker(config, fds, args.ipc_fd)
    except PostelError as exc:
        print(f"postel smtp worker: error: {exc}", file=sys.stderr)
    except Exception as exc:  # the top of the process: one line, never a traceback
        print(f"postel smtp worker: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_ERROR


async def serve_smtp_worker(config: Config, listen_fds: list[int], ipc_fd: int) -> int:
    """One extra port-25 process of ``[smtp] processes`` (docs/adr/0005): serves the
    inherited SMTP sockets with the sender checks, its deliveries committed by the main
    process through ``ipc_fd``. Ends on SIGTERM or when the main process is gone."""
    setup_logging(worker=os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    os.umask(0o077)
    clock = SystemClock()
    ssl_context = tls.server_context(config.tls.cert_file, config.tls.key_file)
    sockets = [socket.socket(fileno=fd) for fd in listen_fds]
    for sock in sockets:
        sock.setblocking(False)
    ipc = socket.socket(fileno=ipc_fd)
    drop_privileges(config.run_as, config.data_dir)
    client = DeliveryClient()
    await client.connect(ipc)  # the main process has opened (and migrated) the store
    # No database connection here: the main process answers (worker_store.py).
    remote = cast(Store, WorkerStore(client, config.blob_dir))
    shutdown = asyncio.Event()
    port = await port25(config, remote, ssl_context, clock, shutdown, load_secret(config.data_dir))
    directory, inbound, resolver, smtp = port.directory, port.inbound, port.resolver, port.smtp
    if smtp.forwarder is not None:
        smtp.forwarder.on_enqueued = client.wake_queue
    send_report = report_sender(
        config, remote, directory, inbound, client.wake_queue, smtp.forwarder
    )
    smtp.send_report = send_report
    reporter = dmarc_reporting(
        config, remote, clock, resolver, smtp, send_report, send_reports=False
    )
    reporter_task = asyncio.create_task(reporter.run()) if reporter is not None else None
    smtp_listens = [listen for listen in config.listen if listen.service is Service.SMTP]
    listeners = [
        Listener(listen, sock, smtp) for listen, sock in zip(smtp_listens, sockets, strict=True)
    ]
    for listener in listeners:
        await listener.start()
    client.up()
    log.info("smtp.worker.ready", extra={"pid": os.getpid()})
    settle()
    gone = asyncio.create_task(client.closed.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({gone, stopped}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    stopped.cancel()
    for listener in listeners:
        listener.stop_accepting()
    smtp.stop()
    cancelled = await smtp.drain(SHUTDOWN_GRACE_SECONDS)
    if smtp.sender_checks is not None:
        await smtp.sender_checks.aclose()  # the DKIM worker process
    if reporter is not None and reporter_task is not None:
        reporter.stop()
        with contextlib.suppress(Exception):
            await reporter_task
    await client.close()
    log.info("smtp.worker.stopped", extra={"cancelled_sessions": cancelled})
    return 0


def run_smtp_worker(config: Config, listen_fds: list[int], ipc_fd: int) -> int:
    """Run ``serve_smtp_worker`` on asyncio's event loop (see ``run``)."""
    return asyncio.run(serve_smtp_worker(config, listen_fds, ipc_fd))
