"""The parts the composition root assembles: the secret, privileges, the report
sender, the delivery worker, the web listeners, the sender checks, forwarding, DMARC
reporting, the smarthost and the retry schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import random
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from postel import delivery
from postel.abuse import AbuseTracker
from postel.clock import Clock
from postel.config import Config, Service
from postel.delivery import DeliveryWorker
from postel.delivery.smarthost import Smarthost, SmarthostTls, parse_smarthost_address
from postel.delivery.worker import local_process_gone
from postel.directory import Directory, Forwarded, LocalRecipients, to_a_label
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
from postel.server.listener import bind_socket
from postel.server.smtp_session import SmtpService
from postel.store import OverQuota, Store
from postel.store.blobs import LOCK_NAME as BLOB_REUSE_LOCK
from postel.store.changes import ChangeHub
from postel.store.queue_api import BackoffPolicy, NewQueuedMessage, NewRecipient

if TYPE_CHECKING:  # imported where used: a port-25 worker process needs neither
    from postel.delivery.mtasts import MtaStsPolicy
    from postel.web import WebServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0
"""How long SIGTERM waits for transactions in flight before cancelling them."""


async def admin_address(store: Store, config: Config) -> str | None:
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
    """The data directory, its direct entries except ``tls/``, the blob directories and
    the blob reuse lock."""
    paths = [data_dir]
    for entry in data_dir.iterdir():
        if entry.name == "tls":
            continue
        paths.append(entry)
        if entry.name == "blobs" and entry.is_dir():
            paths.extend(p for p in entry.iterdir() if p.is_dir() or p.name == BLOB_REUSE_LOCK)
    return paths


def drop_privileges(user: str | None, data_dir: Path) -> None:
    """Started as root: switch to ``user`` once the ports are bound and the certificate
    is loaded (RELIABILITY.md D5). The data directory, its top-level files and the blob
    directories are handed to ``user`` first so the store stays writable."""
    if os.geteuid() != 0:
        return
    if not user:
        hint = "set run_as to an unprivileged user in the config file (postel serve --config FILE)"
        log.warning("server.running_as_root", extra={"hint": hint})
        return
    import pwd
    import timeit  # noqa: F401

    # Modules loaded lazily later (the schema migrations' template engine imports
    # ``timeit``) must be loaded while Python's own files are still readable.
    import alembic.command  # noqa: F401
    import mako.template  # noqa: F401

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


def report_sender(
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
            try:
                await inbound.deliver(envelope, ref)
            except OverQuota as exc:
                # A report has the null reverse-path: nothing reports its failure, so one
                # that finds the mailbox full is dropped (no loop). RFC 5321 §4.5.5.
                log.warning("report.dropped_over_quota", extra={"to": address, "error": str(exc)})
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


def delivery_worker(
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
        backoff=backoff(config),
        ca_file=Path(config.delivery.ca_file) if config.delivery.ca_file else None,
        smarthost=smarthost,
    )
    tls_policy: MtaStsPolicy | None = None
    if config.mta_sts.outbound:
        from postel.delivery.mtasts import CACHE_FILE_NAME as MTA_STS_CACHE_FILE
        from postel.delivery.mtasts import MtaStsPolicy

        tls_policy = MtaStsPolicy(
            resolver,
            clock=clock,
            cache_file=config.data_dir / MTA_STS_CACHE_FILE,
            ca_file=settings.ca_file,
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


def web_servers(config: Config, store: Store) -> list[WebServer]:
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
    from postel.web import WebServer, WebSettings, create_app

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


def sender_checks(
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


def forwarder(
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


def dmarc_reporting(
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


def smarthost(config: Config) -> Smarthost | None:
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


def backoff(config: Config) -> BackoffPolicy:
    """The queue's retry schedule from ``[delivery]``: the worker's retries and the
    Bouncer's delay notices. Spec: RFC 5321 §4.5.4.1; RFC 3464 §2.3.9."""
    return BackoffPolicy(
        first_retry=config.delivery.first_retry,
        factor=config.delivery.retry_factor,
        max_interval=max(config.delivery.max_retry_interval, config.delivery.first_retry),
        lifetime=config.delivery.lifetime,
        delay_notice_after=config.delivery.delay_notice_after,
    )


FULLTEXT_QUIET_S = 1.0
"""The full-text indexer waits for this many seconds without a mailbox change before it
indexes, so that it does not compete with a burst of deliveries; unindexed messages are
searched by a scan meanwhile, so answers never depend on it."""
FULLTEXT_LAG_MAX_S = 10.0
"""...but never waits longer than this after the first change."""
FULLTEXT_IDLE_S = 60.0
"""With no change at all it still looks for pending messages this often (catch-up)."""
FULLTEXT_BUSY_SHARE = 0.25
"""While mail keeps arriving during a catch-up, indexing takes at most this share of the
time (after a batch that took t seconds it pauses t * (1 - share) / share): deliveries
come first, and the index still advances under a steady load."""


def indexing_pause(batch_s: float, arrivals: bool, share: float = FULLTEXT_BUSY_SHARE) -> float:
    """Seconds to pause after an index batch that took ``batch_s`` seconds: none when
    no mail arrived meanwhile, else enough to keep indexing at ``share`` of the time."""
    if not arrivals or batch_s <= 0:
        return 0.0
    return batch_s * (1 - share) / share


async def fulltext_indexer(store: Store) -> None:
    """Keep the full-text index up to date: catch up at start, then index after each
    burst of mailbox changes (see the bounds above), yielding to deliveries that go on
    meanwhile (FULLTEXT_BUSY_SHARE). Store trouble is logged and retried. Runs until
    cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            indexed = 0
            started = loop.time()
            while done := await store.index_pending():
                indexed += done
                arrived = store.changes.take_arrivals()  # their messages: the next batch
                await asyncio.sleep(indexing_pause(loop.time() - started, arrived))
                started = loop.time()
            if indexed:
                log.info("fulltext.indexed", extra={"messages": indexed})
        except asyncio.CancelledError:
            raise
        except Exception:  # a background task that must outlive store trouble
            log.exception("fulltext.index_failed")
        await store.changes.wait_arrivals(FULLTEXT_IDLE_S)
        await quiet_period(store.changes, loop)


async def quiet_period(
    changes: ChangeHub,
    loop: asyncio.AbstractEventLoop,
    quiet_s: float = FULLTEXT_QUIET_S,
    lag_max_s: float = FULLTEXT_LAG_MAX_S,
) -> None:
    """Return after a ``quiet_s`` interval in which no message arrived, or ``lag_max_s``
    seconds after the call, whichever comes first. It looks once per interval (never
    once per commit), so a stream of deliveries costs it nothing per message."""
    deadline = loop.time() + lag_max_s
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(quiet_s, left))
        if not changes.take_arrivals():
            return


BLOB_SWEEP_INTERVAL_S = 3600.0
"""Seconds between two sweeps of unreferenced blobs while serving; the first comes one
interval after the start, whose recovery has just removed them (RELIABILITY.md D2)."""


async def blob_sweeper(store: Store) -> None:
    """Give back the space of blobs nothing names any more: expunged messages' and the
    files refused messages left (``Store.sweep_orphan_blobs``), every
    BLOB_SWEEP_INTERVAL_S. Store trouble is logged and retried. Runs until cancelled."""
    while True:
        await asyncio.sleep(BLOB_SWEEP_INTERVAL_S)
        try:
            removed = await store.sweep_orphan_blobs()
            if removed:
                log.info("store.blob_sweep.done", extra={"removed": removed})
        except asyncio.CancelledError:
            raise
        except Exception:  # a background task that must outlive store trouble
            log.exception("store.blob_sweep.failed")


@dataclass(frozen=True, slots=True)
class Port25:
    """What serves port 25 in one process: the SMTP service with its sender checks and
    forwarder, and the directory, abuse tracker, delivery and resolver it uses (the
    main process shares them with its other services)."""

    directory: Directory
    abuse: AbuseTracker
    inbound: InboundDelivery
    resolver: DnsPythonResolver
    smtp: SmtpService


async def port25(
    config: Config,
    store: Store,
    ssl_context: ssl.SSLContext,
    clock: Clock,
    shutdown: asyncio.Event,
    secret: bytes,
) -> Port25:
    """Build the port-25 service of one process (see ``Port25``)."""
    directory = Directory(store, await admin_address(store, config), clock=clock)
    abuse = AbuseTracker(config.abuse, clock)
    inbound = InboundDelivery(store, config.hostname, clock, config.smtp.received_max)
    resolver = DnsPythonResolver(  # one cache for the whole process
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
    smtp.sender_checks = sender_checks(config, resolver, clock)
    smtp.forwarder = forwarder(config, store, clock, resolver, secret)
    return Port25(directory, abuse, inbound, resolver, smtp)
