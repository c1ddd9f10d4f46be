"""The asyncio driver of the SMTP server core (port 25 role).

Each connection is an ``asyncio.Protocol`` that moves bytes between the socket and
``smtp.ServerConnection``: events the core can answer at once are answered inside
``data_received``; the policy decisions that wait on the store (recipient lookups, the
durable delivery before 250, the TLS handshake) run as a task; input that arrives
meanwhile waits in the core (reading pauses past ``PIPELINE_BUFFER_MAX``), so a
pipelining client's commands are processed strictly in order. Replies are written in command order and flushed when
the core needs more input (RFC 2920 §3.1).

Timeouts are timers, not awaits: a whole command must arrive within the command
timeout (a client trickling bytes is cut as surely as a silent one), each DATA block
within the data timeout and the whole content within ``limits.SMTP_TIMEOUT_DATA_TOTAL``;
a client that stops reading our replies is cut after ``[smtp] send_timeout`` (default
``limits.SMTP_TIMEOUT_SEND``), whatever commands of it are still being answered.

Spec: RFC 5321 §4.1, §4.5.3.2 (timeouts), RFC 3207 (STARTTLS), RELIABILITY.md D1, D4.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import ssl
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from postel import limits, smtp
from postel.abuse import AbuseEvent, AbuseTracker
from postel.clock import Clock
from postel.config import BareLineEndings, Config
from postel.directory import (
    AliasExpansionError,
    Directory,
    Forwarded,
    LocalRecipients,
    NotLocal,
    UnknownRecipient,
    split_recipient,
)
from postel.errors import (
    BlobMissing,
    NotFound,
    PermanentFailure,
    PostelError,
    StoreBusy,
    StoreError,
)
from postel.ids import QueueId, new_queue_id
from postel.mail.authres import strip_ours
from postel.pipeline import (
    InboundDelivery,
    InboundEnvelope,
    MailLoop,
    Recipient,
    StructureTooLarge,
)
from postel.pipeline.authentication import AuthAction, EarlyChecks, InboundAuthenticator
from postel.pipeline.dmarc_observer import DmarcObserver
from postel.pipeline.forwarding import ForwardEnvelope, Forwarder, ForwardTarget, SrsError
from postel.resolver.addresses import parse_ip
from postel.server import tls
from postel.server.delivery_ipc import IpcClosed
from postel.server.listener import Peer
from postel.server.quota_gate import MAILBOX_FULL, QuotaGate
from postel.server.success_reports import ReportSender, send_reports, wants
from postel.store import BlobRef, BlobWriter, OverQuota, SpecialUse, Store

log = logging.getLogger(__name__)

_BARE = {
    BareLineEndings.NORMALIZE: smtp.BareLineEndings.NORMALIZE,
    BareLineEndings.STRICT: smtp.BareLineEndings.STRICT,
}

SHUTTING_DOWN = smtp.Reply(421, "4.3.2", "Service shutting down, try again later")
TIMEOUT = smtp.Reply(421, "4.4.2", "Timeout waiting for input, closing connection")
BANNED = smtp.Reply(421, "4.7.0", "Too many errors from your address, closing connection")
LOCAL_ERROR = smtp.Reply(451, "4.3.0", "Local error in processing, try again later")
STRUCTURE_TOO_LARGE = smtp.Reply(552, "5.3.4", "Message MIME structure too large")
"""A message over limits.MIME_SUMMARY_MAX. Spec: RFC 3463 §3.4."""

PUMP_EVENTS_MAX = 256
"""Events answered for one session before other sessions get a turn (fairness)."""
PIPELINE_BUFFER_MAX = 64 * 1024
"""Octets a client may send ahead while a step (lookup, delivery) is in progress before
reading pauses; bounds memory per connection. Spec: RFC 2920 §3.1 (clients pipeline)."""


@dataclass(slots=True)
class _Transaction:
    queue_id: QueueId
    reverse_path: str
    params: smtp.MailParams
    recipients: list[Recipient] = field(default_factory=list)
    writer: BlobWriter | None = None
    head: bytearray = field(default_factory=bytearray)
    """The start of the content, up to ``limits.SMTP_TRACE_SCAN_MAX`` (loop check)."""
    rcpt_params: dict[str, smtp.RcptParams | None] = field(default_factory=dict)
    """The RCPT TO parameters of each accepted local recipient: the NOTIFY of its
    delivered or failed report (RFC 3461 §4.1)."""
    looped: list[str] = field(default_factory=list)
    """Recipients left out because the message was already delivered to them."""
    blob: BlobRef | None = None
    """The committed content, once committed."""
    checks: EarlyChecks | None = None
    """Sender authentication started at MAIL FROM (port 25 only)."""
    forwards: list[ForwardTarget] = field(default_factory=list)
    """Accepted recipients forwarded to remote addresses (aliases, SRS bounces)."""
    auth_field: bytes | None = None
    """Our Authentication-Results field, once sender authentication ran."""
    auth: str = ""
    """The sender authentication verdict for the transaction's log line."""

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        self.checks = None


class SmtpService:
    """What every SMTP session of one postel process shares, and the protocol factory.

    Args:
        config: limits and hostname.
        directory: resolves RCPT TO.
        inbound: stores accepted messages durably.
        store: blob writers.
        abuse: the shared tracker.
        ssl_context: offered with STARTTLS (None: STARTTLS not offered).
        clock: time source.
        shutdown: set when the server stops.
    """

    def __init__(
        self,
        *,
        config: Config,
        directory: Directory,
        inbound: InboundDelivery,
        store: Store,
        abuse: AbuseTracker,
        ssl_context: ssl.SSLContext | None,
        clock: Clock,
        shutdown: asyncio.Event,
    ) -> None:
        self.config = config
        self.directory = directory
        self.inbound = inbound
        self.store = store
        self.abuse = abuse
        self.ssl_context = ssl_context
        self.clock = clock
        self.shutdown = shutdown
        self._auth_exempt = tuple(
            ipaddress.ip_network(n, strict=False) for n in config.authentication.ignore_clients
        )
        self.sender_checks: InboundAuthenticator | None = None
        """Checks SPF, DKIM, ARC, DMARC and iprev of received mail (set by the
        composition root for port 25; None: no checks)."""
        self.dmarc_observer: DmarcObserver | None = None
        """Counts DMARC evaluations for aggregate reports and takes in reports
        received (set by the composition root; None: off). Spec: RFC 9990."""
        self.send_report: ReportSender | None = None
        """Sends delivery reports (set by the composition root; None: no success
        reports). Spec: RFC 3461 §5.2.3."""
        self.forwarder: Forwarder | None = None
        """Queues mail for aliases' remote targets and bounces to our SRS addresses
        (set by the composition root for port 25; None: aliases reach their local
        targets only and SRS addresses are unknown). Spec: RFC 5321 §3.9."""
        self.quota = QuotaGate(store, clock)
        """Refuses recipients whose mailbox is full at RCPT TO (452 4.2.2)."""
        self.sessions: set[SmtpSession] = set()
        self.core_config = smtp.ServerConfig(
            hostname=config.hostname,
            message_size_max=config.smtp.message_size_max,
            recipients_max=config.smtp.recipients_max,
            errors_max=config.smtp.errors_max,
            bare_line_endings=_BARE[config.smtp.bare_line_endings],
            tls_available=ssl_context is not None,
            requiretls=True,  # mail for local mailboxes ends here, over the TLS it came on
        )

    def __call__(self) -> SmtpSession:
        """A protocol instance for one new connection (``loop.create_server``)."""
        return SmtpSession(self)

    def auth_exempt(self, ip: str) -> bool:
        """Whether mail from ``ip`` skips sender authentication (``[authentication]
        ignore_clients``)."""
        try:
            address = parse_ip(ip)
        except ValueError:
            return False
        return any(address in network for network in self._auth_exempt)

    def stop(self) -> None:
        """Begin shutdown: sessions waiting for a command answer 421 and close; those in
        a transaction finish it first, then close."""
        self.shutdown.set()
        for session in list(self.sessions):
            session.shutdown_if_idle()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every session to end; abort the rest.
        Returns the number of sessions aborted."""
        pending = [s.finished for s in self.sessions]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        rest = [s for s in self.sessions if not s.finished.done()]
        for session in rest:
            session.abort_connection()
        if rest:
            await asyncio.wait([s.finished for s in rest], timeout=5)
        return len(rest)


class SmtpSession(asyncio.Protocol):
    """One SMTP connection. See the module docstring."""

    def __init__(self, service: SmtpService) -> None:
        self.service = service
        self.loop = asyncio.get_running_loop()
        self.conn = smtp.ServerConnection(service.core_config)
        self.transport: asyncio.Transport | None = None
        self.peer = Peer("", 0)
        self.admitted = False
        self.out: list[bytes] = []
        self.helo = ""
        self.extended = False
        self.tls: str | None = None
        self.txn: _Transaction | None = None
        self.busy: asyncio.Task[None] | None = None
        """The policy task in progress; reading is paused while it runs."""
        self.closing = False
        self.handshake_data: list[bytes] | None = None
        """Set while the TLS handshake runs: what the new TLS transport delivered before
        ``start_tls`` returned (decrypted, so never pre-TLS plaintext)."""
        self.write_paused = False
        self.busy_turn = False
        """True while a turn is yielded to other sessions (see ``pump``)."""
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        """The pending timeout callback; it may be due before ``deadline`` (see ``arm``)."""
        self.deadline: float | None = None
        """Loop time at which the session times out; None while no deadline runs."""
        self.command_deadline: float | None = None
        """Loop time by which the command being received must be complete."""
        self.data_deadline: float | None = None
        """Loop time by which the message content must be complete."""

    # -- transport callbacks --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(str(peername[0]), int(peername[1]))
        admission = self.service.abuse.admit(self.peer.ip)
        if not admission.allowed:
            log.info("smtp.refused", extra={"ip": self.peer.ip, "reason": admission.reason})
            reply = smtp.Reply(
                421,
                "4.7.0",
                f"{self.service.config.hostname} Service not available: {admission.reason}",
            )
            transport.write(reply.render())
            self.closing = True
            transport.close()
            return
        self.admitted = True
        self.service.sessions.add(self)
        self.tls = tls.describe(transport.get_extra_info("ssl_object"))
        if self.service.shutdown.is_set():
            self.close_with(SHUTTING_DOWN)
            return
        greeting = smtp.Reply(220, None, f"{self.service.config.hostname} ESMTP postel")
        self.out.append(self.conn.greeting(greeting))
        self.pump()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.handshake_data is not None:
            # Decrypted input that arrived with the end of the TLS handshake, before the
            # core was told TLS is up: it is the client's first command over TLS.
            self.handshake_data.append(data)
            return
        self.conn.receive_data(data)
        if self.busy is None and not self.busy_turn:
            self.pump()
        elif self.conn.buffered > PIPELINE_BUFFER_MAX and self.transport is not None:
            self.transport.pause_reading()  # resumed when the step is done

    def eof_received(self) -> bool | None:
        """The client has finished sending. Keep the connection open for the replies
        still due (a step may be writing a 250); the core's ConnectionClosed closes it."""
        if not self.closing:
            self.conn.receive_data(b"")
            if self.busy is None:
                self.pump()
        if self.transport is not None and self.transport.get_extra_info("sslcontext"):
            return None  # TLS transports close on EOF by themselves
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.cancel_timer()
        if self.busy is not None and self.txn is not None and self.txn.writer is not None:
            self.busy.cancel()  # a client gone in the middle of DATA: nothing to finish
        self.abort()
        if self.admitted:
            self.service.abuse.release(self.peer.ip)
            self.admitted = False
        self.service.sessions.discard(self)
        if not self.finished.done():
            self.finished.set_result(None)

    def pause_writing(self) -> None:
        """The client is not reading our replies: read nothing more until it does."""
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()
        self.arm(self.loop.time() + self.service.config.smtp.send_timeout)

    def resume_writing(self) -> None:
        self.write_paused = False
        self.cancel_timer()
        if (
            self.busy is None
            and not self.busy_turn
            and not self.closing
            and self.transport is not None
        ):
            self.transport.resume_reading()
            self.pump()

    # -- the loop -------------------------------------------------------------------
    def pump(self) -> None:
        """Answer events until the core needs data or a policy decision has to wait.

        At most PUMP_EVENTS_MAX events are answered in one go: a client pipelining
        thousands of commands then gets the rest answered on later turns of the event
        loop, with reading paused meanwhile, so it cannot starve other sessions."""
        try:
            budget = PUMP_EVENTS_MAX
            while not self.closing and self.busy is None:
                budget -= 1
                if budget < 0:
                    self.flush()
                    self.yield_turn()
                    return
                event = self.conn.next_event()
                if isinstance(event, smtp.NeedData):
                    self.flush()
                    self.arm_read_timer()
                    return
                if not isinstance(event, smtp.MessageData):
                    self.command_deadline = None
                waiting = self.dispatch(event)
                if waiting is not None:
                    self.wait_for(waiting)
        except Exception:
            log.exception("smtp.session.crashed", extra={"ip": self.peer.ip})
            self.close_with(LOCAL_ERROR)

    def yield_turn(self) -> None:
        """Let other sessions run before answering more of this client's input."""
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()
        self.busy_turn = True
        self.loop.call_soon(self.resume_turn)

    def resume_turn(self) -> None:
        self.busy_turn = False
        if self.closing or self.transport is None or self.busy is not None:
            return
        if not self.write_paused and not self.transport.is_reading():
            self.transport.resume_reading()
        self.pump()

    def wait_for(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a policy step that must wait. Input that arrives meanwhile is given to the
        core, which holds it until the step is done; reading pauses once more than
        PIPELINE_BUFFER_MAX octets wait there."""
        self.flush()
        if not self.write_paused:  # a client not reading stays on its send deadline
            self.deadline = None  # the step bounds its own waits; the timer stays armed
        self.busy = self.loop.create_task(self.run_step(work))

    async def run_step(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            return
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.info(
                "smtp.session.dropped", extra={"ip": self.peer.ip, "error": type(exc).__name__}
            )
            self.abort_connection()
            # A TLS handshake that failed (timed out) never reports the end to this
            # protocol: end the session here (ending it twice is harmless).
            self.connection_lost(exc)
            return
        except Exception:
            log.exception("smtp.session.crashed", extra={"ip": self.peer.ip})
            self.busy = None
            self.close_with(LOCAL_ERROR)
            return
        self.busy = None
        if self.closing or self.transport is None:
            return
        if not self.write_paused and not self.transport.is_reading():
            self.transport.resume_reading()
        self.pump()

    def dispatch(self, event: smtp.Event) -> Coroutine[Any, Any, None] | None:
        """Answer one event now, or return the step that must wait for its answer."""
        match event:
            case smtp.AutoReply(reply=reply):
                self.send(reply)
                if reply.code >= 500 and self.service.abuse.record(
                    self.peer.ip, AbuseEvent.PROTOCOL_ERROR
                ):
                    self.close_with(BANNED)
            case smtp.Reset(reply=reply):
                self.abort()
                self.send(reply)
            case smtp.Quit(reply=reply) | smtp.TooManyErrors(reply=reply):
                self.abort()
                self.send(reply)
                self.close()
            case smtp.ConnectionClosed():
                self.abort()
                self.close()
            case smtp.Hello(name=name, extended=extended):
                self.abort()
                self.helo, self.extended = name, extended
                self.send(self.conn.ehlo_reply() if extended else self.conn.helo_reply())
            case smtp.MailFrom(reverse_path=path, params=params):
                self.abort()
                self.txn = _Transaction(new_queue_id(), _path_text(path), params)
                self.txn.checks = self.start_checks(self.txn.reverse_path)
                self.send(smtp.Reply(250, "2.1.0", "Sender OK"))
            case smtp.RcptTo(forward_path=path, params=params):
                return self.rcpt_step(path, params)
            case smtp.DataStarted():
                self.begin_content()
                self.send(smtp.START_MAIL_INPUT)
            case smtp.MessageData(chunk=chunk):
                self.content(chunk)
            case smtp.ChunkReceived(reply=reply):
                self.send(reply)
            case smtp.MessageRejected(reply=reply):
                self.abort()
                self.send(reply)
            case smtp.MessageComplete():
                return self.complete_step()
            case smtp.StartTls():
                if self.transport is not None:
                    # Nothing sent after our 220 (the ClientHello) may be read as plaintext.
                    self.transport.pause_reading()
                return self.start_tls()
            case _:
                raise PostelError(f"unexpected SMTP event {event!r}")
        return None

    def start_checks(self, reverse_path: str) -> EarlyChecks | None:
        """Begin SPF and iprev for this transaction unless the client is exempt.
        Spec: RFC 7208 §2.3-§2.4; RFC 8601 §3."""
        auth = self.service.sender_checks
        if auth is None or self.service.auth_exempt(self.peer.ip):
            return None
        return auth.start(self.peer.ip, self.helo or "", reverse_path)

    async def rcpt_step(self, path: smtp.Path, params: smtp.RcptParams | None = None) -> None:
        """Answer RCPT TO; a local recipient's parameters are kept for its delivered or
        failed report. Spec: RFC 5321 §4.1.1.3; RFC 3461 §4.1."""
        txn = self.txn
        before = len(txn.recipients) if txn is not None else 0
        reply = await self.recipient(path)
        self.send(reply)
        if reply.code == 250 and txn is not None and len(txn.recipients) > before:
            txn.rcpt_params[txn.recipients[-1].address] = params
        if self.service.abuse.banned(self.peer.ip):
            self.close_with(BANNED)

    async def complete_step(self) -> None:
        txn = self.txn
        reply = await self.complete()
        self.send(reply)
        self.data_deadline = None
        send = self.service.send_report
        if reply.code != 250 or txn is None or send is None:
            return
        delivered = [
            (a, p)
            for a, p in txn.rcpt_params.items()
            if a not in txn.looped and wants(p, smtp.Notify.SUCCESS)
        ]
        if not delivered and not txn.looped:
            return
        head = bytes(txn.head)
        await send_reports(
            send,
            hostname=self.service.config.hostname,
            now=self.service.clock.now(),
            reverse_path=txn.reverse_path,
            mail=txn.params,
            delivered=delivered,
            looped=[(a, txn.rcpt_params.get(a)) for a in txn.looped],
            head=self.added_fields(head) + head,
            queue_id=str(txn.queue_id),
        )

    # -- output and closing -----------------------------------------------------------
    def send(self, reply: smtp.Reply) -> None:
        self.out.append(self.conn.send(reply))

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def close(self) -> None:
        """Write what is due and close (QUIT, EOF)."""
        self.flush()
        self.closing = True
        self.cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def close_with(self, reply: smtp.Reply) -> None:
        """Send an unsolicited closing reply (421) and close."""
        if self.closing:
            return
        self.out.append(self.conn.abort(reply))
        self.close()

    def abort_connection(self) -> None:
        """Drop the connection without a word (shutdown grace over, broken TLS)."""
        self.closing = True
        self.cancel_timer()
        if self.busy is not None:
            self.busy.cancel()
        if self.transport is not None:
            self.transport.abort()

    def abort(self) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn = None

    def shutdown_if_idle(self) -> None:
        """Shutdown: a session waiting for a command answers 421 now; one in a
        transaction finishes it first (its next wait for a command ends it)."""
        if self.busy is None and self.txn is None:
            self.close_with(SHUTTING_DOWN)

    # -- timers -----------------------------------------------------------------------
    def arm_read_timer(self) -> None:
        """The deadline for the input the core is waiting for. Spec: RFC 5321
        §4.5.3.2.5 (data block), §4.5.3.2.7 (server timeout: a whole command)."""
        if self.write_paused:
            return  # the send deadline set by pause_writing stands
        now = self.loop.time()
        if self.txn is not None and self.txn.writer is not None:
            assert self.data_deadline is not None
            self.arm(min(now + self.service.config.smtp.data_timeout, self.data_deadline))
            return
        if self.service.shutdown.is_set():
            self.close_with(SHUTTING_DOWN)
            return
        if self.command_deadline is None:
            self.command_deadline = now + self.service.config.smtp.command_timeout
        self.arm(self.command_deadline)

    def arm(self, when: float) -> None:
        """Time the session out at loop time ``when``. A timer already due no later is
        kept (``on_timeout`` re-arms it for the rest): moving a deadline later, as
        every command does, costs no timer operation."""
        self.deadline = when
        if self.timer is not None:
            if self.timer.when() <= when:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self.on_timeout)

    def cancel_timer(self) -> None:
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_timeout(self) -> None:
        self.timer = None
        if self.deadline is None:
            return  # no deadline runs now (a policy step is in progress)
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self.on_timeout)
            return
        self.deadline = None
        if self.write_paused:
            self.abort_connection()  # the client reads nothing: no point in a 421
            return
        if self.busy is None:
            self.close_with(SHUTTING_DOWN if self.service.shutdown.is_set() else TIMEOUT)

    # -- policy ---------------------------------------------------------------------
    async def recipient(self, path: smtp.Path) -> smtp.Reply:
        """Resolve RCPT TO. Spec: RFC 5321 §3.3, §4.1.1.3; RFC 3463 for the codes."""
        txn = self.txn
        if txn is None:  # the connection was lost while this pipelined RCPT waited
            return smtp.Reply(421, "4.4.2", "Connection lost")
        if path.postmaster:
            address = "postmaster"
        elif path.mailbox is not None:
            address = f"{path.mailbox.local_part}@{path.mailbox.domain}"
        else:
            return smtp.Reply(501, "5.1.3", "Bad recipient address syntax")
        forwarder = self.service.forwarder
        split = split_recipient(address)
        seal_domain = split[1] if split is not None else ""  # the alias's domain
        bounce = forwarder is not None and forwarder.is_srs(address)
        if forwarder is not None and bounce:
            try:
                address = forwarder.reverse(address)
            except SrsError as exc:
                return self.unknown_recipient(address, str(exc))
            seal_domain = forwarder.srs_domain
        try:
            resolution = await self.service.directory.resolve(address)
        except AliasExpansionError:
            return smtp.Reply(550, "5.4.6", "Alias expansion failed")
        except StoreError:
            log.exception("smtp.rcpt.store_error", extra={"ip": self.peer.ip})
            return smtp.Reply(451, "4.3.0", "Temporary lookup failure")
        if bounce and isinstance(resolution, NotLocal):
            # A bounce to our SRS address for a remote sender: forward it there.
            split = split_recipient(address)
            if split is None:
                return self.unknown_recipient(address, "the reversed address is not valid")
            resolution = Forwarded((f"{split[0]}@{split[1]}",))
        match resolution:
            case LocalRecipients(accounts=accounts, remote=remote):
                full = await self.service.quota.refusal(accounts, txn.params.size)
                if full is not None:
                    log.info("smtp.rcpt.mailbox_full", extra={"ip": self.peer.ip, "rcpt": address})
                    return full
                txn.recipients.append(Recipient(address, tuple(accounts)))
                if remote and forwarder is not None:
                    txn.forwards.append(ForwardTarget(address, seal_domain, remote))
                return smtp.Reply(250, "2.1.5", "Recipient OK")
            case Forwarded(remote=remote):
                if forwarder is None:
                    return self.unknown_recipient(address, "forwarding is off")
                txn.forwards.append(ForwardTarget(address, seal_domain, remote))
                return smtp.Reply(250, "2.1.5", "Recipient OK")
            case NotLocal():
                self.service.abuse.record(self.peer.ip, AbuseEvent.RELAY_DENIED)
                log.info("smtp.rcpt.relay_denied", extra={"ip": self.peer.ip, "rcpt": address})
                return smtp.Reply(550, "5.7.1", "Relay access denied")
            case UnknownRecipient():
                return self.unknown_recipient(address, "no such user")

    def unknown_recipient(self, address: str, reason: str) -> smtp.Reply:
        """550 5.1.1, counted by the abuse tracker. Spec: RFC 3463 (5.1.1)."""
        self.service.abuse.record(self.peer.ip, AbuseEvent.UNKNOWN_RECIPIENT)
        log.info("smtp.rcpt.unknown", extra={"ip": self.peer.ip, "rcpt": address, "reason": reason})
        return smtp.Reply(550, "5.1.1", "No such user here")

    def begin_content(self) -> None:
        assert self.txn is not None
        self.txn.writer = self.service.store.blob_writer()
        self.data_deadline = self.loop.time() + limits.SMTP_TIMEOUT_DATA_TOTAL

    def content(self, chunk: bytes) -> None:
        txn = self.txn
        if txn is None:
            return
        if txn.writer is None:  # BDAT has no DataStarted event
            self.begin_content()
        assert txn.writer is not None
        txn.writer.write(chunk)
        room = limits.SMTP_TRACE_SCAN_MAX - len(txn.head)
        if room > 0:
            txn.head += chunk[:room]

    async def complete(self) -> smtp.Reply:
        """The durability point: 250 only after the delivery transaction committed.
        A recipient's account without room for the message refuses the whole
        transaction with 452 4.2.2 (one reply to DATA; nothing stored).

        Spec: RELIABILITY.md D1, RFC 5321 §4.1.1.4 and §6.1 (a 250 is a promise);
        RFC 3463 §3.3 (X.2.2); RFC 9208 §5.
        """
        txn = self.txn
        self.txn = None
        assert txn is not None
        writer, txn.writer = txn.writer or self.service.store.blob_writer(), None
        size = writer.size
        envelope = InboundEnvelope(
            queue_id=txn.queue_id,
            reverse_path=txn.reverse_path,
            recipients=tuple(txn.recipients),
            helo=self.helo,
            client_ip=self.peer.ip,
            client_rdns=None,
            protocol=self.protocol(txn),
            tls=self.tls,
            added_fields=self.added_fields(bytes(txn.head)),
        )
        try:
            looped = self.service.inbound.check_loops(envelope, bytes(txn.head))
            if looped:
                envelope = self._leave_out(txn, envelope, looped)
            ref = txn.blob = await writer.commit()
            if txn.checks is not None:
                judged = await self._authenticate(txn, txn.checks, envelope, ref, size)
                if isinstance(judged, smtp.Reply):
                    return judged
                envelope, ref = judged
            delivered = (
                await self.service.inbound.deliver(envelope, ref)
                if any(r.targets for r in envelope.recipients)
                else ()
            )
            forwarded = await self.forward(txn, envelope, ref)
        except OverQuota as exc:
            writer.abort()
            self.log_transaction(envelope, size, f"deferred: {exc}", txn.auth)
            return MAILBOX_FULL
        except StructureTooLarge as exc:
            writer.abort()
            self.log_transaction(envelope, size, f"rejected: {exc}", txn.auth)
            return STRUCTURE_TOO_LARGE
        except PermanentFailure as exc:
            writer.abort()
            self.log_transaction(envelope, size, f"rejected: {exc}", txn.auth)
            return smtp.Reply(554, "5.4.6", str(exc))
        except (StoreError, OSError) as exc:
            writer.abort()
            if _expected_store_error(exc):
                self.log_transaction(envelope, size, f"deferred: {exc}", txn.auth)
                return LOCAL_ERROR
            log.exception("smtp.data.store_error", extra={"queue_id": txn.queue_id})
            self.log_transaction(envelope, size, "deferred: store error", txn.auth)
            return LOCAL_ERROR
        result = f"delivered to {len(delivered)} mailbox(es)"
        if forwarded:
            result += f", forwarded as {','.join(forwarded)}"
        if txn.looped:
            result += f", mail loop for {','.join(txn.looped)}"
        self.log_transaction(envelope, size, result, txn.auth)
        return smtp.Reply(250, "2.0.0", f"Ok: queued as {txn.queue_id}")

    @staticmethod
    def _leave_out(
        txn: _Transaction, envelope: InboundEnvelope, looped: tuple[str, ...]
    ) -> InboundEnvelope:
        """The envelope without the recipients the message already reached (their
        failure report follows the 250); raises MailLoop when none is left, so the
        whole message is refused with 554 5.4.6. Spec: RFC 5321 §6.3; RFC 3461 §5.2.2."""
        gone = set(looped)
        kept = tuple(r for r in envelope.recipients if r.address not in gone)
        forwards = [f for f in txn.forwards if f.rcpt not in gone]
        if not kept and not forwards:
            raise MailLoop(f"mail loop: already delivered to {looped[0]}")
        txn.forwards = forwards
        txn.looped = list(dict.fromkeys(looped))
        return dataclasses.replace(envelope, recipients=kept)

    async def forward(
        self, txn: _Transaction, envelope: InboundEnvelope, ref: BlobRef
    ) -> tuple[str, ...]:
        """Queue the copies for remote targets (before the 250); the queue ids used.
        Spec: RFC 5321 §3.9; RFC 7208 Appendix D; RFC 8617 §5.1."""
        forwarder = self.service.forwarder
        if forwarder is None or not txn.forwards:
            return ()
        return await forwarder.forward(
            ForwardEnvelope(
                queue_id=txn.queue_id,
                reverse_path=txn.reverse_path,
                helo=self.helo,
                client_ip=self.peer.ip,
                protocol=envelope.protocol,
                tls=self.tls,
                auth_field=txn.auth_field,
                smtputf8=txn.params.smtputf8,
            ),
            txn.forwards,
            ref,
        )

    async def _authenticate(
        self,
        txn: _Transaction,
        checks: EarlyChecks,
        envelope: InboundEnvelope,
        ref: BlobRef,
        size: int,
    ) -> tuple[InboundEnvelope, BlobRef] | smtp.Reply:
        """Sender authentication of the committed message: the refusal to answer, or
        the envelope with our Authentication-Results (and Junk for a quarantine) and
        the blob to store (a new one without forged Authentication-Results claiming
        our authserv-id). Spec: RFC 9989; RFC 8601 §5; RFC 3463 (5.7.1, 4.7.5)."""
        auth = self.service.sender_checks
        assert auth is not None
        txn.checks = None
        store = self.service.store
        if ref.inline is not None:
            content = ref.inline
            verdict = await auth.verdict(checks, content)
        else:
            async with auth.large:
                content = await store.read_blob(ref)
                verdict = await auth.verdict(checks, content)
        txn.auth = f"{verdict.action} {verdict.summary}"
        if self.service.dmarc_observer is not None:  # never raises
            await self.service.dmarc_observer.observe(verdict, envelope, content)
        domain = verdict.dmarc.author_domain or "the sender's domain"
        if verdict.action is AuthAction.REJECT:
            self.log_transaction(envelope, size, "rejected: DMARC policy", txn.auth)
            return smtp.Reply(550, "5.7.1", f"Rejected by the DMARC policy of {domain}")
        if verdict.action is AuthAction.DEFER:
            self.log_transaction(envelope, size, "deferred: DMARC temperror", txn.auth)
            return smtp.Reply(451, "4.7.5", "DMARC evaluation failed temporarily, try again later")
        end = content.find(b"\r\n\r\n")
        header = content if end < 0 else content[:end]
        stripped, removed = strip_ours(header, auth.settings.authserv_id)
        if removed:
            writer = store.blob_writer()
            writer.write(stripped + content[len(header) :])
            ref = await writer.commit()
        use = SpecialUse.JUNK if verdict.action is AuthAction.QUARANTINE else None
        txn.auth_field = verdict.field  # also the results of a forwarded copy's ARC Set
        return (
            dataclasses.replace(
                envelope,
                added_fields=verdict.field + envelope.added_fields,
                mailbox_use=use,
            ),
            ref,
        )

    def added_fields(self, head: bytes) -> bytes:
        """Header fields to add to the message (none on port 25: a relay adds no
        fields but trace fields, RFC 5321 §7.9); the submission service overrides."""
        return b""

    def protocol(self, txn: _Transaction) -> str:
        """The Received WITH value. Spec: RFC 3848 §2, RFC 6531 §3.7.4."""
        base = "UTF8SMTP" if txn.params.smtputf8 else "ESMTP" if self.extended else "SMTP"
        return base + ("S" if self.tls else "")

    def log_transaction(
        self, envelope: InboundEnvelope, size: int, result: str, auth: str = ""
    ) -> None:
        """The one log line of a transaction; ``auth`` the sender authentication
        verdict (action, then the results) when the checks ran."""
        rcpts = [r.address for r in envelope.recipients]
        self.log_line(envelope.queue_id, envelope.reverse_path, rcpts, size, result, auth)

    def log_line(
        self,
        queue_id: QueueId,
        reverse_path: str,
        rcpts: Sequence[str],
        size: int,
        result: str,
        auth: str = "",
    ) -> None:
        """``smtp.transaction``: queue id, client, HELO, MAIL FROM, recipients, size
        (octets received), result, and the sender authentication verdict if any."""
        extra = {
            "queue_id": queue_id,
            "client": f"[{self.peer.ip}]",
            "helo": self.helo,
            "mail_from": f"<{reverse_path}>",
            "rcpt": ",".join(rcpts),
            "size": size,
            "result": result,
        }
        if auth:
            extra["auth"] = auth
        log.info("smtp.transaction", extra=extra)

    async def start_tls(self) -> None:
        """Answer 220, then hand the connection to TLS. Reading is paused before this
        step runs, so nothing sent after the 220 (the ClientHello) is read as plaintext,
        and what was read before it is discarded by the core.
        Spec: RFC 3207 §4.2, §5; CVE-2011-0411."""
        context = self.service.ssl_context
        if context is None or self.transport is None:
            self.send(smtp.TLS_NOT_AVAILABLE)
            return
        self.send(smtp.READY_TO_START_TLS)
        self.flush()
        self.handshake_data = []
        try:
            transport = await self.loop.start_tls(
                self.transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=limits.SMTP_TIMEOUT_TLS_HANDSHAKE,
            )
        finally:
            early, self.handshake_data = self.handshake_data, None
        if transport is None:
            raise ConnectionError("TLS handshake did not complete")
        self.transport = transport
        self.conn.tls_established()
        for data in early:
            self.conn.receive_data(data)
        self.helo, self.extended = "", False
        self.abort()
        self.tls = tls.describe(transport.get_extra_info("ssl_object"))


def _path_text(path: smtp.Path) -> str:
    """A reverse-path without angle brackets; ``""`` for ``<>``."""
    return "" if path.mailbox is None else str(path.mailbox)


def _expected_store_error(exc: Exception) -> bool:
    """A store failure that is part of normal operation, answered 451 without an error
    traceback: the main process of a worker is gone (the worker stops too), the
    database stayed locked by another writer past the busy timeout (logged by the
    store), or a recipient's account was removed during the transaction (retried, the
    others are delivered and that one is refused at RCPT TO). A missing blob file is
    not."""
    if isinstance(exc, IpcClosed | StoreBusy):
        return True
    return isinstance(exc, NotFound) and not isinstance(exc, BlobMissing)
