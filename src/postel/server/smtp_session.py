"""The asyncio driver of the SMTP server core (port 25 role).

It moves bytes between the socket and ``smtp.ServerConnection``, answers the policy
events (recipients through the directory, content into the blob store, the durable
delivery before 250), enforces timeouts, and reports abuse to the shared tracker.

Replies are written in command order and flushed whenever the core needs more input,
so a pipelining client gets its replies in one write (RFC 2920 §3.1).

Spec: RFC 5321 §4.1, §4.5.3.2 (timeouts), RFC 3207 (STARTTLS), RELIABILITY.md D1, D4.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field

from postel import limits, smtp
from postel.abuse import AbuseEvent, AbuseTracker
from postel.clock import Clock
from postel.config import BareLineEndings, Config
from postel.directory import (
    AliasExpansionError,
    Directory,
    LocalRecipients,
    NotLocal,
    UnknownRecipient,
)
from postel.errors import PermanentFailure, PostelError, StoreError
from postel.ids import QueueId, new_queue_id
from postel.pipeline import InboundDelivery, InboundEnvelope, Recipient
from postel.server import tls
from postel.server.listener import Peer
from postel.store import BlobWriter, Store

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
"""Octets read from the socket at once; the core bounds what it buffers."""
WRITE_BUFFER_HIGH = 64 * 1024
"""Unsent reply octets above which the session waits for the client to read."""

_BARE = {
    BareLineEndings.NORMALIZE: smtp.BareLineEndings.NORMALIZE,
    BareLineEndings.STRICT: smtp.BareLineEndings.STRICT,
}

SHUTTING_DOWN = smtp.Reply(421, "4.3.2", "Service shutting down, try again later")
TIMEOUT = smtp.Reply(421, "4.4.2", "Timeout waiting for input, closing connection")
BANNED = smtp.Reply(421, "4.7.0", "Too many errors from your address, closing connection")
LOCAL_ERROR = smtp.Reply(451, "4.3.0", "Local error in processing, try again later")


class _Closed(Exception):
    """The session ends (client gone, timeout, shutdown, QUIT)."""


@dataclass(slots=True)
class _Transaction:
    queue_id: QueueId
    reverse_path: str
    params: smtp.MailParams
    recipients: list[Recipient] = field(default_factory=list)
    writer: BlobWriter | None = None
    head: bytearray = field(default_factory=bytearray)
    """The start of the content, up to ``limits.SMTP_TRACE_SCAN_MAX`` (loop check)."""

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class SmtpService:
    """What every SMTP session of one postel process shares.

    Args:
        config: limits and hostname.
        directory: resolves RCPT TO.
        inbound: stores accepted messages durably.
        store: blob writers.
        abuse: the shared tracker.
        ssl_context: offered with STARTTLS (None: STARTTLS not offered).
        clock: time source.
        shutdown: set when the server stops; idle sessions say 421 and close.
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
        self.sessions: set[SmtpSession] = set()
        self.core_config = smtp.ServerConfig(
            hostname=config.hostname,
            message_size_max=config.smtp.message_size_max,
            recipients_max=config.smtp.recipients_max,
            errors_max=config.smtp.errors_max,
            bare_line_endings=_BARE[config.smtp.bare_line_endings],
            tls_available=ssl_context is not None,
        )

    def stop(self) -> None:
        """Begin shutdown: new reads end with 421; sessions waiting for a command stop
        waiting; transactions in flight complete."""
        self.shutdown.set()
        for session in list(self.sessions):
            session.interrupt_if_idle()

    async def refuse(self, writer: asyncio.StreamWriter, reason: str) -> None:
        """Greet a refused client with 421 and close. Spec: RFC 5321 §3.1."""
        reply = smtp.Reply(421, "4.7.0", f"{self.config.hostname} Service not available: {reason}")
        writer.write(_render(reply))
        with contextlib.suppress(Exception):
            await writer.drain()
        writer.close()

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        """Run one session to its end. Never raises."""
        session = SmtpSession(self, reader, writer, peer)
        self.sessions.add(session)
        try:
            await session.run()
        except _Closed:
            pass
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.info("smtp.session.dropped", extra={"ip": peer.ip, "error": type(exc).__name__})
        except Exception:
            log.exception("smtp.session.crashed", extra={"ip": peer.ip})
            with contextlib.suppress(Exception):
                writer.write(_render(LOCAL_ERROR))
        finally:
            self.sessions.discard(session)
            session.abort()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)


def _render(reply: smtp.Reply) -> bytes:
    """A reply outside the core's state machine (refusal before greeting)."""
    return reply.render()


class SmtpSession:
    """One SMTP connection. See the module docstring."""

    def __init__(
        self,
        service: SmtpService,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
    ) -> None:
        self.service = service
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.conn = smtp.ServerConnection(service.core_config)
        self.out: list[bytes] = []
        self.helo = ""
        self.extended = False
        self.tls: str | None = None
        self.txn: _Transaction | None = None
        self.command_deadline: float | None = None
        """Monotonic time by which the command being received must be complete."""
        self.data_deadline: float | None = None
        """Monotonic time by which the message content must be complete."""
        self.idle_deadline: asyncio.Timeout | None = None
        """The timeout of a wait for a command, rescheduled to now at shutdown."""

    def abort(self) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn = None

    # -- I/O ------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write the replies due; wait for the client to read them only when the
        transport's buffer passes WRITE_BUFFER_HIGH (a client that reads nothing is cut
        after limits.SMTP_TIMEOUT_SEND)."""
        if not self.out:
            return
        data = b"".join(self.out)
        self.out.clear()
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
            async with asyncio.timeout(limits.SMTP_TIMEOUT_SEND):
                await self.writer.drain()

    async def read(self) -> bytes:
        """Wait for input with the RFC 5321 §4.5.3.2 timeouts; an idle session ends at
        shutdown. The command timeout covers a whole command, from the end of the previous
        one to its CRLF, so a client trickling one byte at a time is cut all the same;
        in DATA the timeout applies to each block read (§4.5.3.2.5) and the whole content
        must arrive within limits.SMTP_TIMEOUT_DATA_TOTAL."""
        in_data = self.txn is not None and self.txn.writer is not None
        now = self.service.clock.monotonic()
        if in_data:
            assert self.data_deadline is not None
            timeout = max(0.0, min(self.service.config.smtp.data_timeout, self.data_deadline - now))
        else:
            if self.service.shutdown.is_set():
                await self.close_with(SHUTTING_DOWN)
            if self.command_deadline is None:
                self.command_deadline = now + self.service.config.smtp.command_timeout
            timeout = max(0.0, self.command_deadline - now)
        try:
            async with asyncio.timeout(timeout) as deadline:
                if not in_data:
                    self.idle_deadline = deadline
                return await self.reader.read(READ_CHUNK)
        except TimeoutError:
            pass
        finally:
            self.idle_deadline = None
        await self.close_with(SHUTTING_DOWN if self.service.shutdown.is_set() else TIMEOUT)
        raise AssertionError("unreachable")

    def interrupt_if_idle(self) -> None:
        """Shutdown: a session waiting for a command stops waiting now (it answers 421);
        one in a transaction finishes it first."""
        if self.idle_deadline is not None and self.txn is None:
            self.idle_deadline.reschedule(asyncio.get_running_loop().time())

    async def close_with(self, reply: smtp.Reply) -> None:
        """Send an unsolicited closing reply (421) and end the session."""
        self.out.append(self.conn.abort(reply))
        await self.flush()
        raise _Closed

    # -- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        if self.service.shutdown.is_set():
            self.out.append(self.conn.abort(SHUTTING_DOWN))
            await self.flush()
            return
        self.out.append(
            self.conn.greeting(
                smtp.Reply(220, None, f"{self.service.config.hostname} ESMTP postel")
            )
        )
        while True:
            event = self.conn.next_event()
            if isinstance(event, smtp.NeedData):
                await self.flush()
                self.conn.receive_data(await self.read())
                continue
            if not isinstance(event, smtp.MessageData):
                self.command_deadline = None
            if await self.dispatch(event):
                await self.flush()
                return

    async def dispatch(self, event: smtp.Event) -> bool:
        """Answer one event; True when the session ends."""
        match event:
            case smtp.AutoReply(reply=reply):
                self.send(reply)
                if reply.code >= 500 and self.service.abuse.record(
                    self.peer.ip, AbuseEvent.PROTOCOL_ERROR
                ):
                    await self.close_with(BANNED)
            case smtp.Reset(reply=reply):
                self.abort()
                self.send(reply)
            case smtp.Quit(reply=reply) | smtp.TooManyErrors(reply=reply):
                self.abort()
                self.send(reply)
                return True
            case smtp.ConnectionClosed():
                self.abort()
                return True
            case smtp.Hello(name=name, extended=extended):
                self.abort()
                self.helo, self.extended = name, extended
                self.send(self.conn.ehlo_reply() if extended else self.conn.helo_reply())
            case smtp.MailFrom(reverse_path=path, params=params):
                self.abort()
                self.txn = _Transaction(new_queue_id(), _path_text(path), params)
                self.send(smtp.Reply(250, "2.1.0", "Sender OK"))
            case smtp.RcptTo(forward_path=path):
                self.send(await self.recipient(path))
                if self.service.abuse.banned(self.peer.ip):
                    await self.close_with(BANNED)
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
                self.send(await self.complete())
            case smtp.StartTls():
                await self.start_tls()
            case _:
                raise PostelError(f"unexpected SMTP event {event!r}")
        return False

    def send(self, reply: smtp.Reply) -> None:
        self.out.append(self.conn.send(reply))

    # -- policy ---------------------------------------------------------------------
    async def recipient(self, path: smtp.Path) -> smtp.Reply:
        """Resolve RCPT TO. Spec: RFC 5321 §3.3, §4.1.1.3; RFC 3463 for the codes."""
        txn = self.txn
        assert txn is not None
        if path.postmaster:
            address = "postmaster"
        elif path.mailbox is not None:
            address = f"{path.mailbox.local_part}@{path.mailbox.domain}"
        else:
            return smtp.Reply(501, "5.1.3", "Bad recipient address syntax")
        try:
            resolution = await self.service.directory.resolve(address)
        except AliasExpansionError:
            return smtp.Reply(550, "5.4.6", "Alias expansion failed")
        except StoreError:
            log.exception("smtp.rcpt.store_error", extra={"ip": self.peer.ip})
            return smtp.Reply(451, "4.3.0", "Temporary lookup failure")
        match resolution:
            case LocalRecipients(accounts=accounts):
                txn.recipients.append(Recipient(address, tuple(accounts)))
                return smtp.Reply(250, "2.1.5", "Recipient OK")
            case NotLocal():
                self.service.abuse.record(self.peer.ip, AbuseEvent.RELAY_DENIED)
                log.info("smtp.rcpt.relay_denied", extra={"ip": self.peer.ip, "rcpt": address})
                return smtp.Reply(550, "5.7.1", "Relay access denied")
            case UnknownRecipient():
                self.service.abuse.record(self.peer.ip, AbuseEvent.UNKNOWN_RECIPIENT)
                log.info("smtp.rcpt.unknown", extra={"ip": self.peer.ip, "rcpt": address})
                return smtp.Reply(550, "5.1.1", "No such user here")

    def begin_content(self) -> None:
        assert self.txn is not None
        self.txn.writer = self.service.store.blob_writer()
        self.data_deadline = self.service.clock.monotonic() + limits.SMTP_TIMEOUT_DATA_TOTAL

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

        Spec: RELIABILITY.md D1, RFC 5321 §4.1.1.4 and §6.1 (a 250 is a promise).
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
        )
        try:
            self.service.inbound.check_loops(envelope, bytes(txn.head))
            ref = await writer.commit()
            delivered = await self.service.inbound.deliver(envelope, ref)
        except PermanentFailure as exc:
            writer.abort()
            self.log_transaction(envelope, size, f"rejected: {exc}")
            return smtp.Reply(554, "5.4.6", str(exc))
        except (StoreError, OSError):
            writer.abort()
            log.exception("smtp.data.store_error", extra={"queue_id": txn.queue_id})
            self.log_transaction(envelope, size, "deferred: store error")
            return LOCAL_ERROR
        self.log_transaction(envelope, size, f"delivered to {len(delivered)} mailbox(es)")
        return smtp.Reply(250, "2.0.0", f"Ok: queued as {txn.queue_id}")

    def protocol(self, txn: _Transaction) -> str:
        """The Received WITH value. Spec: RFC 3848 §2, RFC 6531 §3.7.4."""
        base = "UTF8SMTP" if txn.params.smtputf8 else "ESMTP" if self.extended else "SMTP"
        return base + ("S" if self.tls else "")

    def log_transaction(self, envelope: InboundEnvelope, size: int, result: str) -> None:
        log.info(
            "smtp.transaction",
            extra={
                "queue_id": envelope.queue_id,
                "client": f"[{envelope.client_ip}]",
                "helo": envelope.helo,
                "mail_from": f"<{envelope.reverse_path}>",
                "rcpt": ",".join(r.address for r in envelope.recipients),
                "size": size,
                "result": result,
            },
        )

    async def start_tls(self) -> None:
        """Answer 220, then handshake. Plaintext read ahead is thrown away first
        (the core discards what it was given; the stream buffer is emptied here).
        Spec: RFC 3207 §4.2, §5; CVE-2011-0411."""
        context = self.service.ssl_context
        if context is None:
            self.send(smtp.TLS_NOT_AVAILABLE)
            return
        self.send(smtp.READY_TO_START_TLS)
        # Everything already read arrived before the client could see the 220: it is
        # plaintext to throw away. Nothing may be awaited between emptying the buffer and
        # starting TLS, or a prompt ClientHello would be thrown away with it.
        _discard_buffered(self.reader)
        self.writer.write(b"".join(self.out))
        self.out.clear()
        await asyncio.wait_for(self.writer.start_tls(context), limits.SMTP_TIMEOUT_TLS_HANDSHAKE)
        self.conn.tls_established()
        self.helo, self.extended = "", False
        self.abort()
        self.tls = tls.describe(self.writer.get_extra_info("ssl_object"))


def _path_text(path: smtp.Path) -> str:
    """A reverse-path without angle brackets; ``""`` for ``<>``."""
    return "" if path.mailbox is None else str(path.mailbox)


def _discard_buffered(reader: asyncio.StreamReader) -> None:
    """Empty the StreamReader's buffer: bytes there arrived before the TLS handshake."""
    buffer = getattr(reader, "_buffer", None)
    if isinstance(buffer, bytearray):
        del buffer[:]
