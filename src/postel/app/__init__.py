"""The composition root: the only place that builds stores, trackers and listeners.

``serve(config)`` runs postel until SIGTERM or SIGINT, then stops accepting, lets
transactions in flight finish, and returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from postel.app.build import (
    SHUTDOWN_GRACE_SECONDS,
    WEB_TLS_PORTS,
    backoff,
    blob_sweeper,
    delivery_worker,
    dmarc_reporting,
    drop_privileges,
    fulltext_indexer,
    load_secret,
    port25,
    report_sender,
    smarthost,
    web_servers,
)
from postel.app.logs import _KeyValueFormatter, setup_logging
from postel.app.memory import limit_malloc_arenas, settle
from postel.app.runtime import set_switch_interval
from postel.app.worker import location, run_smtp_worker, serve_smtp_worker
from postel.clock import Clock, SystemClock
from postel.config import Config, Service
from postel.directory import make_credentials
from postel.directory.passwords import generate_password
from postel.errors import ConfigError
from postel.server import tls
from postel.server.listener import Listener, bind_group, bind_socket
from postel.server.smtp_workers import START_TIMEOUT_S, SmtpWorkers
from postel.store import Store, open_store

__all__ = [
    "DEMO_ACCOUNT",
    "DEMO_DOMAIN",
    "SERVING",
    "SHUTDOWN_GRACE_SECONDS",
    "WEB_TLS_PORTS",
    "_KeyValueFormatter",
    "first_start",
    "load_secret",
    "run",
    "run_smtp_worker",
    "serve",
    "serve_smtp_worker",
    "setup_logging",
]

log = logging.getLogger(__name__)

DEMO_DOMAIN = "demo.test"
"""The embedded default's demo domain (RFC 2606 reserves .test)."""
DEMO_ACCOUNT = f"demo@{DEMO_DOMAIN}"

SERVING: frozenset[Service] = frozenset(
    {
        Service.SMTP,
        Service.SUBMISSION,
        Service.SUBMISSIONS,
        Service.IMAP,
        Service.IMAPS,
        Service.POP3,
        Service.POP3S,
    }
)
"""Services this version serves; the other configured ports are reserved."""


async def first_start(store: Store, config: Config) -> str | None:
    """Embedded default only: create the demo domain and its admin account when the store
    has no domain yet. Returns the generated password (printed once) or None."""
    if not config.embedded or await store.list_domains():
        return None
    await store.add_domain(DEMO_DOMAIN)
    password = generate_password()
    await store.add_account(DEMO_ACCOUNT, make_credentials(password), is_admin=True)
    return password


async def serve(config: Config, *, clock: Clock | None = None) -> int:
    """Run postel with ``config`` until SIGTERM/SIGINT. Returns the process exit code.

    Raises:
        ConfigError: a port cannot be bound or a certificate cannot be read (one line).
    """
    # The services of the main process only (a port-25 worker imports this package),
    # loaded while Python's files are readable (before privileges drop), as is the
    # MTA-STS client that ``delivery_worker`` uses later; IMAP, POP3 and submission
    # only when the configuration serves them (their modules hold a few MB).
    import postel.delivery.mtasts  # noqa: F401
    from postel.delivery.dsn import Bouncer
    from postel.server.auth import Authenticator

    served = {listen.service for listen in config.listen if listen.service in SERVING}
    if served & {Service.IMAP, Service.IMAPS}:
        from postel.server.imap_session import ImapService
    if served & {Service.POP3, Service.POP3S}:
        from postel.server.pop3_session import Pop3Service
    if served & {Service.SUBMISSION, Service.SUBMISSIONS}:
        from postel.server.submission_session import SubmissionService

    limit_malloc_arenas()  # before the store's threads start
    set_switch_interval()
    setup_logging()
    # Signal handlers first: a SIGTERM that arrives while starting up still ends the
    # process cleanly (exit 0 once started), never by the default action.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    os.umask(0o077)  # the store, blobs and keys are readable by postel's user only
    clock = clock or SystemClock()
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if config.tls.generate_self_signed:
        tls.ensure_self_signed(config.tls.cert_file, config.tls.key_file, config.hostname)
    ssl_context = tls.server_context(config.tls.cert_file, config.tls.key_file)

    serving = [listen for listen in config.listen if listen.service in SERVING]
    extra = config.smtp.processes - 1
    own = 1 if extra == 0 or config.smtp.main_serves else 0  # this process's port-25 share
    try:
        # With worker processes each port-25 address gets one SO_REUSEPORT socket per
        # serving process: [0] for this one unless main_serves is false, then the
        # workers'.
        groups = {
            index: bind_group(listen, own + extra)
            for index, listen in enumerate(serving)
            if extra > 0 and listen.service is Service.SMTP
        }
        sockets = [
            (groups[index][0] if own else None) if index in groups else bind_socket(listen)
            for index, listen in enumerate(serving)
        ]
        worker_sockets = [
            [group[own + slot] for group in groups.values()]
            for slot in range(extra if groups else 0)
        ]
        worker_listens = [serving[index] for index in groups]
    except ConfigError as exc:
        if config.embedded:
            raise ConfigError(
                f"{exc.message}; the embedded default uses fixed ports: stop the other "
                "server, or write a config file (docs/postel.example.toml) and use --config"
            ) from exc
        raise
    workers = None
    if worker_sockets:
        # Started before privileges are dropped, so that they can read the TLS key.
        workers = SmtpWorkers(
            location(config),
            [[s.fileno() for s in socks] for socks in worker_sockets],
            config.blob_dir,
        )
        workers.spawn()
    # Built before privileges are dropped: it imports the database driver.
    store = open_store(config.database_url, config.blob_dir, clock=clock)
    webs = web_servers(config, store)  # bound and TLS loaded before privileges drop
    relay = smarthost(config)  # its password file may be readable by root only
    drop_privileges(config.run_as, config.data_dir)

    report = await store.open()
    log.info(
        "store.opened",
        extra={
            "orphan_blobs_removed": report.orphan_blobs_removed,
            "temp_files_removed": report.temp_files_removed,
            "missing_blobs": len(report.missing_blobs),
        },
    )
    await store.listen_for_changes()
    password = await first_start(store, config)
    shutdown = asyncio.Event()
    secret = load_secret(config.data_dir)
    port = await port25(config, store, ssl_context, clock, shutdown, secret)
    directory, abuse, inbound, resolver, smtp = (
        port.directory,
        port.abuse,
        port.inbound,
        port.resolver,
        port.smtp,
    )
    authenticator = Authenticator(
        store,
        abuse,
        secret,
        clock=clock,
        cache_seconds=config.auth.cache_seconds,
    )
    imap = (
        ImapService(
            config=config,
            store=store,
            authenticator=authenticator,
            abuse=abuse,
            ssl_context=ssl_context,
            clock=clock,
        )
        if served & {Service.IMAP, Service.IMAPS}
        else None
    )
    pop = (
        Pop3Service(
            config=config,
            store=store,
            authenticator=authenticator,
            abuse=abuse,
            ssl_context=ssl_context,
        )
        if served & {Service.POP3, Service.POP3S}
        else None
    )
    submission = {
        implicit: SubmissionService(
            config=config,
            directory=directory,
            inbound=inbound,
            store=store,
            abuse=abuse,
            ssl_context=ssl_context,
            clock=clock,
            shutdown=shutdown,
            authenticator=authenticator,
            implicit_tls=implicit,
        )
        for implicit in (False, True)
        if served & {Service.SUBMISSION, Service.SUBMISSIONS}
    }
    listeners: list[Listener] = []
    for listen, sock in zip(serving, sockets, strict=True):
        if sock is None:
            continue  # served by the worker processes alone
        match listen.service:
            case Service.IMAP | Service.IMAPS:
                assert imap is not None  # built for every IMAP listener (``served``)
                if listen.service is Service.IMAPS:
                    listener = Listener(listen, sock, imap.tls_factory, ssl_context)
                else:
                    listener = Listener(listen, sock, imap.plain_factory)
            case Service.SUBMISSION:
                listener = Listener(listen, sock, submission[False])
            case Service.SUBMISSIONS:
                listener = Listener(listen, sock, submission[True], ssl_context)
            case Service.POP3 | Service.POP3S:
                assert pop is not None  # built for every POP3 listener (``served``)
                if listen.service is Service.POP3S:
                    listener = Listener(listen, sock, pop.tls_factory, ssl_context)
                else:
                    listener = Listener(listen, sock, pop.plain_factory)
            case _:
                listener = Listener(listen, sock, smtp)
        listeners.append(listener)

    worker = delivery_worker(config, store, clock, resolver, relay)
    worker_task = asyncio.create_task(worker.run()) if worker is not None else None
    wake = worker.wake if worker is not None else None
    send_report = report_sender(config, store, directory, inbound, wake, smtp.forwarder)
    workers_task = None
    if workers is not None:
        workers.on_wake = wake

        async def adopt(slot: int) -> None:
            # A worker left down: its sockets are served here from now on.
            for listen, sock in zip(worker_listens, worker_sockets[slot], strict=True):
                listener = Listener(listen, sock, smtp)
                listeners.append(listener)
                await listener.start()
            log.warning("smtp.worker.sockets_adopted", extra={"slot": slot})

        workers.on_abandoned = adopt
        workers_task = asyncio.create_task(workers.serve(store))
        if not await workers.wait_up(START_TIMEOUT_S):
            log.warning("smtp.workers.slow", extra={"timeout": START_TIMEOUT_S})
        log.info("smtp.workers", extra={"pids": ",".join(map(str, workers.pids))})
    if smtp.forwarder is not None:
        smtp.forwarder.on_enqueued = worker.wake if worker is not None else None
    smtp.send_report = send_report
    for service in submission.values():
        service.send_report = send_report
    bouncer = Bouncer(
        store,
        send_report,
        hostname=config.hostname,
        clock=clock,
        backoff=backoff(config),
    )
    bouncer_task = asyncio.create_task(bouncer.run())
    indexer_task = asyncio.create_task(fulltext_indexer(store))
    sweeper_task = asyncio.create_task(blob_sweeper(store))
    reporter = dmarc_reporting(config, store, clock, resolver, smtp, send_report)
    reporter_task = asyncio.create_task(reporter.run()) if reporter is not None else None
    for service in submission.values():
        service.on_enqueued = worker.wake if worker is not None else None
    # Only now, with every service wired (report sender, queue wake-ups), is a
    # connection accepted: a message taken earlier could miss its NOTIFY=SUCCESS report.
    for listener in listeners:
        await listener.start()
    for web in webs:
        await web.start()
    _print_banner(config, password)
    settle()
    await stop.wait()

    log.info("server.stopping")
    if reporter is not None and reporter_task is not None:
        reporter.stop()
        with contextlib.suppress(Exception):
            await reporter_task
    bouncer.stop()
    with contextlib.suppress(Exception):
        await bouncer_task
    indexer_task.cancel()
    sweeper_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await indexer_task
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await sweeper_task
    if worker is not None and worker_task is not None:
        await worker.stop()
        with contextlib.suppress(Exception):
            await worker_task
    for listener in listeners:
        listener.stop_accepting()
    if workers is not None:
        await workers.stop(SHUTDOWN_GRACE_SECONDS)  # their deliveries still answered
        if workers_task is not None:
            workers_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await workers_task
    for web in webs:
        await web.stop()
    smtp.stop()
    for service in submission.values():
        service.stop()
    for mailbox_service in (imap, pop):
        if mailbox_service is not None:
            mailbox_service.stop()
    cancelled = await smtp.drain(SHUTDOWN_GRACE_SECONDS)
    for service in submission.values():
        cancelled += await service.drain(5.0)
    for mailbox_service in (imap, pop):
        if mailbox_service is not None:
            cancelled += await mailbox_service.drain(5.0)
    if smtp.sender_checks is not None:
        await smtp.sender_checks.aclose()  # the DKIM worker process
    await store.close()
    log.info("server.stopped", extra={"cancelled_sessions": cancelled})
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    return 0


def _print_banner(config: Config, password: str | None) -> None:
    lines = [f"postel listening as {config.hostname} (data: {config.data_dir})"]
    for listen in config.listen:
        state = "serving" if listen.service in SERVING | {Service.WEB} else "reserved"
        if listen.service is Service.SMTP and config.smtp.processes > 1:
            if config.smtp.main_serves:
                state += f" ({config.smtp.processes} processes)"
            else:
                workers = config.smtp.processes - 1
                state += f" ({workers} worker process{'es' if workers > 1 else ''})"
        lines.append(f"  {listen.service:<12} {listen.host}:{listen.port:<6} {state}")
    if password is None and config.embedded:
        lines.append(
            f"  demo account: {DEMO_ACCOUNT} (reset: postel account passwd {DEMO_ACCOUNT})"
        )
    if password is not None:
        lines.append(f"  demo account created: {DEMO_ACCOUNT}  password: {password}")
        lines.append(
            "  (the password is shown only this once; change it with `postel account passwd`)"
        )
    print("\n".join(lines), flush=True)


def run(config: Config) -> int:
    """Run ``serve(config)`` on asyncio's event loop.

    uvloop is not used: its ``start_tls`` can lose a ClientHello that arrives right after
    the STARTTLS 220 (MagicStack/uvloop issue 707), which asyncio's loop does not.
    """
    return asyncio.run(serve(config))
