"""The composition root: the only place that builds stores, trackers and listeners.

``serve(config)`` runs postel until SIGTERM or SIGINT, then stops accepting, lets
transactions in flight finish, and returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import random
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from postel import delivery
from postel.abuse import AbuseTracker
from postel.clock import Clock, SystemClock
from postel.config import Config, Service
from postel.delivery import DeliveryWorker
from postel.delivery.dsn import Bouncer
from postel.delivery.mtasts import CACHE_FILE_NAME as MTA_STS_CACHE_FILE
from postel.delivery.mtasts import MtaStsPolicy
from postel.delivery.smarthost import Smarthost, SmarthostTls, parse_smarthost_address
from postel.delivery.worker import local_process_gone
from postel.directory import Directory, Forwarded, LocalRecipients, make_credentials, to_a_label
from postel.directory.passwords import generate_password
from postel.dkim.sign import SigningError, sign_as_author
from postel.dmarc.reporting import DmarcRecorder, DmarcReporter, ReporterSettings
from postel.errors import ConfigError
from postel.ids import new_queue_id
from postel.mail.srs import Srs, SrsError
from postel.mtasts import own_policy
from postel.pipeline import InboundDelivery, InboundEnvelope, Recipient
from postel.pipeline.authentication import AuthSettings, InboundAuthenticator
from postel.pipeline.dmarc_observer import DmarcObserver
from postel.pipeline.forwarding import Forwarder
from postel.resolver import DnsPythonResolver
from postel.server import tls
from postel.server.auth import Authenticator
from postel.server.delivery_ipc import DeliveryClient, RemoteDeliveryStore
from postel.server.imap_session import ImapService
from postel.server.listener import Listener, bind_socket
from postel.server.pop3_session import Pop3Service
from postel.server.smtp_session import SmtpService
from postel.server.smtp_workers import START_TIMEOUT_S, SmtpWorkers
from postel.server.submission_session import SubmissionService
from postel.store import Store, open_store
from postel.store.queue_api import BackoffPolicy, NewQueuedMessage, NewRecipient
from postel.web import WebServer, WebSettings, create_app

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0
"""How long SIGTERM waits for transactions in flight before cancelling them."""

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


def setup_logging(worker: int | None = None) -> None:
    """One line per event on stdout: ``time level event key=value...``; an SMTP worker
    process's lines end with ``worker=PID``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_KeyValueFormatter())
    if worker is not None:
        handler.addFilter(_WorkerTag(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("POSTEL_LOG_LEVEL", "INFO").upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's start and stop lines duplicate web.listening / server.stopped.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message"}  # uvicorn's terminal-colour copy of the text
)


def _log_value(value: object) -> str:
    """A value for a log line: strings with spaces, quotes or anything not printable
    (control characters, line and paragraph separators) are written escaped with repr(),
    so a client's input can never forge a log line or reach the terminal raw."""
    text = str(value)
    if isinstance(value, str) and (
        not text or not text.isprintable() or " " in text or "'" in text or '"' in text
    ):
        return repr(text)
    return text


class _WorkerTag(logging.Filter):
    def __init__(self, pid: int) -> None:
        super().__init__()
        self._pid = pid

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self._pid
        return True


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_log_value(v)}" for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS
        )
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname} {record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            base += "\n" + self.formatException(record.exc_info)
        return f"{base} {extras}" if extras else base


async def first_start(store: Store, config: Config) -> str | None:
    """Embedded default only: create the demo domain and its admin account when the store
    has no domain yet. Returns the generated password (printed once) or None."""
    if not config.embedded or await store.list_domains():
        return None
    await store.add_domain(DEMO_DOMAIN)
    password = generate_password()
    await store.add_account(DEMO_ACCOUNT, make_credentials(password), is_admin=True)
    return password


async def _admin_address(store: Store, config: Config) -> str | None:
    if config.admin_address:
        return config.admin_address
    for account in await store.list_accounts():
        if account.is_admin:
            return account.address
    return None


SECRET_FILE = "secret"
"""Random octets under the data directory, made on first start: the key of values that
must be stable across restarts but unguessable (the fake SCRAM salts of unknown users)."""
SECRET_LENGTH = 32


def load_secret(data_dir: Path) -> bytes:
    """The installation secret, created (mode 0600) when missing."""
    path = data_dir / SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= SECRET_LENGTH:
            return data
    except FileNotFoundError:
        pass
    data = os.urandom(SECRET_LENGTH)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return data


def _owned_paths(data_dir: Path) -> list[Path]:
    """The data directory, its direct entries except ``tls/``, and blob directories."""
    paths = [data_dir]
    for entry in data_dir.iterdir():
        if entry.name == "tls":
            continue
        paths.append(entry)
        if entry.name == "blobs" and entry.is_dir():
            paths.extend(p for p in entry.iterdir() if p.is_dir())
    return paths


def _drop_privileges(user: str | None, data_dir: Path) -> None:
    """Started as root: switch to ``user`` once the ports are bound and the certificate
    is loaded (RELIABILITY.md D5). The data directory, its top-level files and the blob
    directories are handed to ``user`` first so the store stays writable."""
    if os.geteuid() != 0 or not user:
        return
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise ConfigError(f"run_as user {user!r} does not exist (set run_as)") from exc
    for path in _owned_paths(data_dir):
        if path.stat().st_uid != entry.pw_uid:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    log.info("server.privileges.dropped", extra={"user": user})


async def serve(config: Config, *, clock: Clock | None = None) -> int:
    """Run postel with ``config`` until SIGTERM/SIGINT. Returns the process exit code.

    Raises:
        ConfigError: a port cannot be bound or a certificate cannot be read (one line).
    """
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
    try:
        sockets = [
            bind_socket(listen, reuse_port=extra > 0 and listen.service is Service.SMTP)
            for listen in serving
        ]
        smtp_listens = [listen for listen in serving if listen.service is Service.SMTP]
        worker_sockets = [
            [bind_socket(listen, reuse_port=True) for listen in smtp_listens]
            for _ in range(extra if smtp_listens else 0)
        ]
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
            _location(config), [[s.fileno() for s in socks] for socks in worker_sockets]
        )
        workers.spawn()
    # Built before privileges are dropped: it imports the database driver.
    store = open_store(config.database_url, config.blob_dir, clock=clock)
    webs = _web_servers(config, store)  # bound and TLS loaded before privileges drop
    smarthost = _smarthost(config)  # its password file may be readable by root only
    _drop_privileges(config.run_as, config.data_dir)

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
    directory = Directory(store, await _admin_address(store, config), clock=clock)
    abuse = AbuseTracker(config.abuse, clock)
    inbound = InboundDelivery(store, config.hostname, clock, config.smtp.received_max)
    shutdown = asyncio.Event()
    resolver = DnsPythonResolver(  # one cache for all
        config.dns.servers(), clock=clock, temperror_ttl=config.dns.temperror_cache
    )
    smtp = SmtpService(
        config=config,
        directory=directory,
        inbound=inbound,
        store=store,
        abuse=abuse,
        ssl_context=ssl_context,
        clock=clock,
        shutdown=shutdown,
    )
    smtp.sender_checks = _sender_checks(config, resolver, clock)
    secret = load_secret(config.data_dir)
    smtp.forwarder = _forwarder(config, store, clock, resolver, secret)
    authenticator = Authenticator(
        store,
        abuse,
        secret,
        clock=clock,
        cache_seconds=config.auth.cache_seconds,
    )
    imap = ImapService(
        config=config,
        store=store,
        authenticator=authenticator,
        abuse=abuse,
        ssl_context=ssl_context,
        clock=clock,
    )
    pop = Pop3Service(
        config=config,
        store=store,
        authenticator=authenticator,
        abuse=abuse,
        ssl_context=ssl_context,
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
    }
    listeners: list[Listener] = []
    for listen, sock in zip(serving, sockets, strict=True):
        match listen.service:
            case Service.IMAP:
                listener = Listener(listen, sock, imap.plain_factory)
            case Service.IMAPS:
                listener = Listener(listen, sock, imap.tls_factory, ssl_context)
            case Service.SUBMISSION:
                listener = Listener(listen, sock, submission[False])
            case Service.SUBMISSIONS:
                listener = Listener(listen, sock, submission[True], ssl_context)
            case Service.POP3:
                listener = Listener(listen, sock, pop.plain_factory)
            case Service.POP3S:
                listener = Listener(listen, sock, pop.tls_factory, ssl_context)
            case _:
                listener = Listener(listen, sock, smtp)
        await listener.start()
        listeners.append(listener)
    for web in webs:
        await web.start()

    worker = _delivery_worker(config, store, clock, resolver, smarthost)
    worker_task = asyncio.create_task(worker.run()) if worker is not None else None
    wake = worker.wake if worker is not None else None
    send_report = _report_sender(config, store, directory, inbound, wake, smtp.forwarder)
    workers_task = None
    if workers is not None:
        workers.on_wake = wake
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
        backoff=_backoff(config),
    )
    bouncer_task = asyncio.create_task(bouncer.run())
    reporter = _dmarc_reporting(config, store, clock, resolver, smtp, send_report)
    reporter_task = asyncio.create_task(reporter.run()) if reporter is not None else None
    for service in submission.values():
        service.on_enqueued = worker.wake if worker is not None else None
    _print_banner(config, password)
    await stop.wait()

    log.info("server.stopping")
    if reporter is not None and reporter_task is not None:
        reporter.stop()
        with contextlib.suppress(Exception):
            await reporter_task
    bouncer.stop()
    with contextlib.suppress(Exception):
        await bouncer_task
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
    imap.stop()
    pop.stop()
    cancelled = await smtp.drain(SHUTDOWN_GRACE_SECONDS)
    for service in submission.values():
        cancelled += await service.drain(5.0)
    cancelled += await imap.drain(5.0)
    cancelled += await pop.drain(5.0)
    await store.close()
    log.info("server.stopped", extra={"cancelled_sessions": cancelled})
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    return 0


def _report_sender(
    config: Config,
    store: Store,
    directory: Directory,
    inbound: InboundDelivery,
    wake: Callable[[], None] | None,
    forwarder: Forwarder | None = None,
) -> Callable[[str, bytes], Awaitable[None]]:
    """How a delivery report reaches its recipient, with a null sender, DKIM-signed
    with the keys of its From: domain when it has some: into the mailbox when the
    address is ours, through the outbound queue otherwise. A report to one of
    our SRS addresses (a forwarded copy failed) goes to the reversed address; one to an
    alias that forwards goes to its remote targets.
    Spec: RFC 3464 §2, RFC 5321 §4.5.5; RFC 7208 Appendix D."""

    async def send(address: str, report: bytes) -> None:
        if forwarder is not None and forwarder.is_srs(address):
            try:
                address = forwarder.reverse(address)
            except SrsError as exc:
                log.warning("dsn.srs_invalid", extra={"to": address, "error": str(exc)})
                return
        try:
            signatures = await asyncio.to_thread(sign_as_author, report, config.data_dir / "dkim")
        except SigningError as exc:
            log.warning("report.unsigned", extra={"to": address, "error": str(exc)})
            signatures = b""
        writer = store.blob_writer()
        writer.write(signatures + report)
        ref = await writer.commit()
        queue_id = new_queue_id()
        resolution = await directory.resolve(address)
        if isinstance(resolution, LocalRecipients):
            envelope = InboundEnvelope(
                queue_id=queue_id,
                reverse_path="",
                recipients=(Recipient(address, resolution.accounts),),
                helo=config.hostname,
                client_ip="127.0.0.1",
                client_rdns=config.hostname,
                protocol="LOCAL",
                tls=None,
            )
            await inbound.deliver(envelope, ref)
            return
        targets = resolution.remote if isinstance(resolution, Forwarded) else (address,)
        message = NewQueuedMessage(queue_id=str(queue_id), blob=ref, reverse_path="")
        await store.enqueue(
            message,
            [NewRecipient(address=a, domain=to_a_label(a.rsplit("@", 1)[-1])) for a in targets],
        )
        if wake is not None:
            wake()

    return send


def _delivery_worker(
    config: Config,
    store: Store,
    clock: Clock,
    resolver: DnsPythonResolver,
    smarthost: Smarthost | None = None,
) -> DeliveryWorker | None:
    """The outbound queue's worker, unless ``[delivery] enabled = false``."""
    if not config.delivery.enabled:
        return None
    settings = delivery.DeliveryConfig(
        hostname=config.hostname,
        worker_name=f"{os.uname().nodename}:{os.getpid()}",
        port=config.delivery.port,
        bind_address=ipaddress.ip_address(config.delivery.bind_address)
        if config.delivery.bind_address
        else None,
        connections_max=config.delivery.connections_max,
        connections_per_domain_max=config.delivery.connections_per_domain_max,
        backoff=_backoff(config),
        ca_file=Path(config.delivery.ca_file) if config.delivery.ca_file else None,
        smarthost=smarthost,
    )
    tls_policy = (
        MtaStsPolicy(
            resolver,
            clock=clock,
            cache_file=config.data_dir / MTA_STS_CACHE_FILE,
            ca_file=settings.ca_file,
        )
        if config.mta_sts.outbound
        else None
    )
    return DeliveryWorker(
        store,
        resolver,
        settings,
        clock=clock,
        rng=random.Random(),
        tls_policy=tls_policy,
        holder_is_gone=local_process_gone,
    )


WEB_TLS_PORTS = frozenset({443, 8443})
"""Web listen ports served over TLS with ``[tls]``'s certificate; others are plain HTTP
(for a TLS proxy in front). Spec: RFC 8461 §3.3 (the policy is fetched over HTTPS)."""


def _web_servers(config: Config, store: Store) -> list[WebServer]:
    """One web server per ``[listen] web`` entry: our MTA-STS policy file and a health
    check. A port that cannot be bound is logged and skipped (mail is served without
    it). Raises ConfigError for a bad ``[mta_sts]`` setting or certificate.
    Spec: RFC 8461 §3.2, §3.3."""
    listens = [listen for listen in config.listen if listen.service is Service.WEB]
    if not listens:
        return []
    try:
        policy = own_policy(config.mta_sts.mode, config.mta_sts.max_age, [config.hostname])
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    app = create_app(store, WebSettings(policy))
    servers: list[WebServer] = []
    for listen in listens:
        try:
            sock = bind_socket(listen)
        except ConfigError as exc:
            log.warning("web.bind_failed", extra={"error": exc.message})
            continue
        context = None
        if listen.port in WEB_TLS_PORTS:
            context = tls.server_context(config.tls.cert_file, config.tls.key_file)
        servers.append(
            WebServer(
                app,
                sock,
                ssl_context=context,
                connections_per_ip=config.abuse.max_connections_per_ip,
                exempt=config.abuse.exempt,
            )
        )
    return servers


def _sender_checks(
    config: Config, resolver: DnsPythonResolver, clock: Clock
) -> InboundAuthenticator | None:
    """SPF, DKIM, ARC, DMARC and iprev for port 25, unless ``[authentication] enabled
    = false``. Spec: RFC 8601; RFC 9989."""
    settings = config.authentication
    if not settings.enabled:
        return None
    return InboundAuthenticator(
        resolver,
        clock,
        AuthSettings(
            authserv_id=settings.authserv_id or config.hostname,
            temperror_defers=settings.temperror == "defer",
            trusted_forwarders=tuple(
                ipaddress.ip_network(n, strict=False) for n in settings.trusted_forwarders
            ),
            trusted_sealers=frozenset(d.lower().rstrip(".") for d in settings.trusted_arc_sealers),
        ),
    )


def _forwarder(
    config: Config, store: Store, clock: Clock, resolver: DnsPythonResolver, secret: bytes
) -> Forwarder | None:
    """Forwarding for port 25 (aliases with remote targets, bounces to SRS addresses),
    unless ``[forwarding] enabled = false``. Spec: RFC 5321 §3.9; RFC 7208 Appendix D;
    RFC 8617 §5.1."""
    settings = config.forwarding
    if not settings.enabled:
        return None
    return Forwarder(
        store,
        Srs(secret, (settings.srs_domain or config.hostname).lower().rstrip(".")),
        clock,
        hostname=config.hostname,
        authserv_id=config.authentication.authserv_id or config.hostname,
        dkim_dir=config.data_dir / "dkim",
        resolver=resolver,
    )


def _dmarc_reporting(
    config: Config,
    store: Store,
    clock: Clock,
    resolver: DnsPythonResolver,
    smtp: SmtpService,
    send: Callable[[str, bytes], Awaitable[None]],
    *,
    send_reports: bool = True,
) -> DmarcReporter | None:
    """DMARC aggregate reports (``[dmarc]``): the observer on port 25 (counting when
    ``reports``, intake when ``intake``) and the reporting task (None when ``reports``
    is off; with ``send_reports`` False it only moves the counts to the store: the
    main process mails the reports). Spec: RFC 9990."""
    settings = config.dmarc
    if smtp.sender_checks is None or not (settings.reports or settings.intake):
        return None
    recorder = DmarcRecorder(clock, settings.report_interval) if settings.reports else None
    smtp.dmarc_observer = DmarcObserver(store, clock, recorder, intake=settings.intake)
    if recorder is None:
        return None
    labels = config.hostname.split(".")
    domain = ".".join(labels[1:]) if len(labels) > 2 else config.hostname
    return DmarcReporter(
        store,
        recorder,
        send,
        clock=clock,
        settings=ReporterSettings(
            interval=settings.report_interval,
            submitter=domain,
            org_name=settings.org_name or domain,
            from_address=settings.report_from or f"noreply-dmarc@{domain}",
            send=send_reports,
            flush_interval=settings.flush_interval,
            history=dt.timedelta(days=settings.history_days),
        ),
        resolver=resolver,
        unique=lambda: secrets.token_hex(8),
    )


def _smarthost(config: Config) -> Smarthost | None:
    """``[delivery] smarthost`` and its TLS and AUTH settings (None: direct delivery).
    Raises ConfigError naming the key for a bad address or an unreadable password
    file. Spec: RFC 6409 §3; RFC 4954."""
    settings = config.delivery
    if not settings.smarthost:
        return None
    try:
        host, port = parse_smarthost_address(settings.smarthost)
    except ValueError as exc:
        raise ConfigError(f"[delivery] smarthost: {exc}") from None
    username = password = None
    if settings.smarthost_username:
        if not settings.smarthost_password_file:
            raise ConfigError("[delivery] smarthost_username needs smarthost_password_file")
        try:
            lines = Path(settings.smarthost_password_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"[delivery] smarthost_password_file: cannot read "
                f"{settings.smarthost_password_file}: {exc.strerror}"
            ) from None
        username, password = settings.smarthost_username, lines[0] if lines else ""
    return Smarthost(host, port, SmarthostTls(settings.smarthost_tls), username, password)


def _backoff(config: Config) -> BackoffPolicy:
    """The queue's retry schedule from ``[delivery]``: the worker's retries and the
    Bouncer's delay notices. Spec: RFC 5321 §4.5.4.1; RFC 3464 §2.3.9."""
    return BackoffPolicy(
        first_retry=config.delivery.first_retry,
        factor=config.delivery.retry_factor,
        max_interval=max(config.delivery.max_retry_interval, config.delivery.first_retry),
        lifetime=config.delivery.lifetime,
        delay_notice_after=config.delivery.delay_notice_after,
    )


def _print_banner(config: Config, password: str | None) -> None:
    lines = [f"postel listening as {config.hostname} (data: {config.data_dir})"]
    for listen in config.listen:
        state = "serving" if listen.service in SERVING | {Service.WEB} else "reserved"
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


def _location(config: Config) -> list[str]:
    """The CLI options that make another postel process read this configuration."""
    if config.source is not None:
        return ["--config", str(config.source)]
    return ["--data", str(config.data_dir)]


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
    store = open_store(config.database_url, config.blob_dir, clock=clock)
    _drop_privileges(config.run_as, config.data_dir)
    client = DeliveryClient()
    await client.connect(ipc)  # the main process has opened (and migrated) the store
    await store.open(recovery=False)
    remote = cast(Store, RemoteDeliveryStore(store, client))
    directory = Directory(remote, await _admin_address(store, config), clock=clock)
    abuse = AbuseTracker(config.abuse, clock)
    inbound = InboundDelivery(remote, config.hostname, clock, config.smtp.received_max)
    resolver = DnsPythonResolver(
        config.dns.servers(), clock=clock, temperror_ttl=config.dns.temperror_cache
    )
    shutdown = asyncio.Event()
    smtp = SmtpService(
        config=config,
        directory=directory,
        inbound=inbound,
        store=remote,
        abuse=abuse,
        ssl_context=ssl_context,
        clock=clock,
        shutdown=shutdown,
    )
    smtp.sender_checks = _sender_checks(config, resolver, clock)
    smtp.forwarder = _forwarder(config, remote, clock, resolver, load_secret(config.data_dir))
    if smtp.forwarder is not None:
        smtp.forwarder.on_enqueued = client.wake_queue
    send_report = _report_sender(
        config, remote, directory, inbound, client.wake_queue, smtp.forwarder
    )
    smtp.send_report = send_report
    reporter = _dmarc_reporting(
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
    gone = asyncio.create_task(client.closed.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({gone, stopped}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    stopped.cancel()
    for listener in listeners:
        listener.stop_accepting()
    smtp.stop()
    cancelled = await smtp.drain(SHUTDOWN_GRACE_SECONDS)
    if reporter is not None and reporter_task is not None:
        reporter.stop()
        with contextlib.suppress(Exception):
            await reporter_task
    await store.close()
    await client.close()
    log.info("smtp.worker.stopped", extra={"cancelled_sessions": cancelled})
    return 0


def run_smtp_worker(config: Config, listen_fds: list[int], ipc_fd: int) -> int:
    """Run ``serve_smtp_worker`` on asyncio's event loop (see ``run``)."""
    return asyncio.run(serve_smtp_worker(config, listen_fds, ipc_fd))


def run(config: Config) -> int:
    """Run ``serve(config)`` on asyncio's event loop.

    uvloop is not used: its ``start_tls`` can lose a ClientHello that arrives right after
    the STARTTLS 220 (MagicStack/uvloop issue 707), which asyncio's loop does not.
    """
    return asyncio.run(serve(config))
