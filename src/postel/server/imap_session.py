"""The asyncio driver of the IMAP server core.

Each connection is an ``asyncio.Protocol`` that feeds ``imap.ServerConnection`` and one
task per session that pulls the core's events in order and runs each command to its
end before the next (commands of one session never overlap, so the MailboxView is only
touched by that task). The commands themselves are in ``imap_mailboxes`` (mailbox
level) and ``imap_messages`` (the selected mailbox); this module owns the transport,
timeouts, TLS, login, IDLE and the sync points.

Timeouts: the whole wait for a command (before login ``timeout_not_authenticated``,
after it ``timeout_authenticated``, in IDLE ``timeout_idle``) ends the session with
``* BYE``; a client that stops reading our responses is cut after
``limits.IMAP_TIMEOUT_SEND``. Reading pauses while the core holds more than one
command's worth of input, so memory per connection stays within the core's bound.

Spec: RFC 9051 §3 (states), §5.4 (autologout), §5.5 (pipelining), §6.2.1 (STARTTLS),
§7.5.1 (when EXPUNGE may be sent); RFC 2177 (IDLE); RFC 7162 §3.1.4.1, §3.2.10
(MODSEQ and VANISHED in unsolicited responses); RELIABILITY.md D4.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field

from postel import imap, limits
from postel.abuse import AbuseEvent, AbuseTracker
from postel.clock import Clock
from postel.config import Config
from postel.errors import BlobMissing, NotFound, PostelError, StoreError
from postel.ids import MailboxId
from postel.imap import commands as cmd
from postel.imap import condstore as cs
from postel.imap import events as ev
from postel.imap import responses as r
from postel.imap.connection import ConnectionConfig, ServerConnection, State
from postel.imap.fetch import render_flags
from postel.imap.view import Exists, Expunge, FlagsChanged, MailboxView, ViewUpdate
from postel.sasl import CANCELLED, Cancelled, SaslError, UnsupportedMechanism, decode_response
from postel.server import imap_condstore as modseq
from postel.server import imap_mailboxes as mb
from postel.server import imap_messages as msg
from postel.server import tls
from postel.server.auth import Authenticator, plaintext_allowed
from postel.server.imap_compress import CompressionError, DeflateStream
from postel.server.imap_context import ContextSet, sync_contexts
from postel.server.imap_notify import NotifyState, deliver, wait_for_input
from postel.server.imap_scan import SearchTooCostly
from postel.server.listener import Peer, drain_sessions
from postel.store import Account, OverQuota, Store
from postel.store.changes import ChangeSubscription

log = logging.getLogger(__name__)

READ_BUFFER_MAX = 256 * 1024
"""Octets of unprocessed input after which reading pauses until the session task has
consumed them (bounds memory per connection; RELIABILITY.md D7)."""
CORK_OCTETS_MAX = 256 * 1024
"""Octets a corked session holds before writing them anyway (local bound)."""
WRITE_SLICE_OCTETS = 256 * 1024
"""A large response (a message's literal) is handed to the transport in slices of this
size, each after the previous one was taken: what waits in the transport for a slow
reader stays near this size instead of a copy of the whole response (RELIABILITY.md
D7)."""
BAD_COMMANDS_MAX_PREAUTH = 3
"""BAD answers before login after which the session ends (local policy against
scanners; RELIABILITY.md D6)."""
BAD_COMMANDS_MAX = 20
"""BAD answers after login after which the session ends (local policy)."""

_MESSAGE_COMMANDS: frozenset[type[cmd.Command]] = frozenset(
    {
        cmd.Fetch,
        cmd.Store,
        cmd.Search,
        cmd.Sort,
        cmd.Thread,
        cmd.CancelUpdate,
        cmd.Copy,
        cmd.Move,
        cmd.Expunge,
        cmd.Close,
        cmd.Unselect,
    }
)
"""Selected-state commands, answered by ``imap_messages.run``."""

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
"""The flags every mailbox supports. Spec: RFC 9051 §2.3.2."""


class _Cork:
    """``ImapSession.corked``'s context manager."""

    __slots__ = ("_session",)

    def __init__(self, session: ImapSession) -> None:
        self._session = session

    async def __aenter__(self) -> None:
        self._session.cork()

    async def __aexit__(self, *exc: object) -> None:
        await self._session.uncork()


class SessionEnded(Exception):
    """The session must end now (timeout, EOF, ban, shutdown); not a protocol error."""


@dataclass(slots=True)
class Selected:
    """The selected mailbox: its id and name, the view, and the change subscription."""

    mailbox_id: MailboxId
    name: str
    view: MailboxView
    subscription: ChangeSubscription
    exit_stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    recent: set[int] = field(default_factory=set)
    """UIDs with \\Recent in this session (RFC 3501 §2.3.2)."""
    contexts: ContextSet = field(default_factory=ContextSet)
    """Searches kept up to date, RETURN (UPDATE) (RFC 5267 §4)."""
    expunge_floor: int | None = None
    """While expunges are held back: the view's MODSEQ before the first of them was
    learnt, the HIGHESTMODSEQ a CONDSTORE client may safely keep (RFC 7162 §3.2)."""
    saved: frozenset[int] = frozenset()
    """The search result variable ``$``: UIDs saved by SEARCH RETURN (SAVE), empty when
    the mailbox is selected; expunged UIDs drop out where it is used (RFC 9051
    §6.4.4.1, RFC 5182 §2.1)."""

    def flags(self, uid: int, flags: frozenset[str], rev2: bool) -> list[str]:
        """The FLAGS to show for ``uid``: with ``\\Recent`` for IMAP4rev1 sessions."""
        shown = sorted(flags)
        if not rev2 and uid in self.recent:
            shown.append("\\Recent")
        return shown


class ImapService:
    """What every IMAP session of one postel process shares, and the protocol factory.

    Args:
        config: limits, hostname, embedded default (loopback plaintext rule).
        store: the message store.
        authenticator: checks logins (shared with POP3 and submission).
        abuse: the shared tracker.
        ssl_context: for STARTTLS (None: not offered).
        clock: time source.
    """

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        authenticator: Authenticator,
        abuse: AbuseTracker,
        ssl_context: ssl.SSLContext | None,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.authenticator = authenticator
        self.abuse = abuse
        self.ssl_context = ssl_context
        self.clock = clock
        self.sessions: set[ImapSession] = set()
        self.stopping = False
        self.core_config = ConnectionConfig(append_limit=config.imap.append_limit)

    def protocol(self, *, implicit_tls: bool) -> ImapSession:
        """A protocol instance for one new connection."""
        return ImapSession(self, implicit_tls=implicit_tls)

    def plain_factory(self) -> ImapSession:
        """Factory for the port with STARTTLS (143)."""
        return self.protocol(implicit_tls=False)

    def tls_factory(self) -> ImapSession:
        """Factory for the implicit-TLS port (993, RFC 8314)."""
        return self.protocol(implicit_tls=True)

    def stop(self) -> None:
        """Begin shutdown: every session says ``* BYE`` at its next wait and closes."""
        self.stopping = True
        for session in list(self.sessions):
            session.wake()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for sessions to end; abort the rest."""
        return await drain_sessions(list(self.sessions), timeout)


class ImapSession(asyncio.Protocol):
    """One IMAP connection. See the module docstring."""

    def __init__(self, service: ImapService, *, implicit_tls: bool) -> None:
        self.service = service
        self.store = service.store
        self.loop = asyncio.get_running_loop()
        self.conn = ServerConnection(service.core_config)
        self.transport: asyncio.Transport | None = None
        self.peer = Peer("", 0)
        self.tls_active = implicit_tls
        self.account: Account | None = None
        self.selected: Selected | None = None
        self.rev2 = False
        self.utf8 = False
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._eof = False
        self._closed = False
        self._reading_paused = False
        self._pending = 0
        self._read_deadline = 0.0
        """Loop time by which the waiting read must have its input (``next_event``)."""
        self._read_waiting = False
        self._read_timed_out = False
        self._watchdog: asyncio.TimerHandle | None = None
        """The timer that enforces ``_read_deadline`` (``_watch_read``)."""
        self._corked: list[bytes] | None = None
        """Writes held to go out as one (``corked``), or None."""
        self._task: asyncio.Task[None] | None = None
        self._admitted = False
        self._handshake_data: list[bytes] | None = None
        """Input the TLS transport delivered before ``start_tls`` returned."""
        self._enabled: set[str] = set()
        """Capabilities ENABLE has reported enabled (each is reported once)."""
        self.condstore = False
        """CONDSTORE is enabled (explicitly or by a first use; RFC 7162 §3.1)."""
        self.qresync = False
        """QRESYNC is enabled (ENABLE QRESYNC; RFC 7162 §3.2.3)."""
        self.notify_state = NotifyState()
        self.compression: DeflateStream | None = None
        """Set once COMPRESS DEFLATE is answered OK (RFC 4978)."""
        """Mailboxes watched with NOTIFY (RFC 5465)."""

    @property
    def enabled_names(self) -> frozenset[str]:
        """The capabilities ``* ENABLED`` has already named."""
        return frozenset(self._enabled)

    # -- transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(str(peername[0]), int(peername[1]))
        self.service.sessions.add(self)
        self._task = self.loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._handshake_data is not None:
            self._handshake_data.append(data)  # decrypted, arrived with the handshake
            return
        if self.compression is not None:
            self.compression.feed(data)
            self._inflate_input()
            return
        self.conn.receive_data(data)
        self._pending += len(data)
        self._readable.set()
        if self._pending > READ_BUFFER_MAX and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def _inflate_input(self, *, at_least_one: bool = False) -> bool:
        """Hand inflated input to the core while it holds under READ_BUFFER_MAX (one
        step regardless with ``at_least_one``: the core asked for more); keep the rest
        compressed and pause reading. True if any octets went to the core.
        Spec: RFC 4978 §6 (bounded inflation)."""
        stream = self.compression
        assert stream is not None
        produced = False
        while stream.backlog and (self._pending <= READ_BUFFER_MAX or at_least_one):
            at_least_one = False
            try:
                out = stream.inflate_step()
            except CompressionError:
                log.info("imap.compress.corrupt", extra={"client": self.peer.ip})
                self.abort()
                return produced
            if out:
                produced = True
                self.conn.receive_data(out)
                self._pending += len(out)
                self._readable.set()
        if stream.backlog and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        return produced

    def eof_received(self) -> bool | None:
        self._eof = True
        self._readable.set()
        if self.transport is not None and self.transport.get_extra_info("sslcontext"):
            return None  # TLS transports close on EOF by themselves
        return True  # keep writing the responses still due

    def connection_lost(self, exc: Exception | None) -> None:
        # The session task is not cancelled: it sees the closed connection at its next
        # read or write and ends through its ``finally`` (locks released, log written).
        self._closed = True
        self._readable.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def wake(self) -> None:
        """Interrupt a wait (shutdown)."""
        self._readable.set()
        if self.selected is not None:
            self.selected.subscription._signal(0)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- output ----------------------------------------------------------------------

    def corked(self) -> _Cork:
        """Hold this session's writes in the body and send them in one write at its end
        (the last responses of a command and its tagged status: one segment, one
        wake-up of the client, instead of several). Holds at most CORK_OCTETS_MAX;
        beyond that what is held goes out at once. Use: ``async with session.corked():``."""
        return _Cork(self)

    def cork(self) -> None:
        """Start holding writes (see ``corked``)."""
        self._corked = []

    async def uncork(self) -> None:
        """Send what ``corked`` held, in one write, and stop holding writes."""
        held, self._corked = self._corked, None
        if held and not self._closed:
            await self.write(b"".join(held))

    async def write(self, data: bytes) -> None:
        """Write ``data``; wait (bounded) while the client is not reading."""
        if self._closed or self.transport is None:
            raise SessionEnded
        corked = self._corked
        if corked is not None:
            corked.append(data)
            if sum(map(len, corked)) < CORK_OCTETS_MAX:
                return
            data = b"".join(corked)
            corked.clear()
        if len(data) <= WRITE_SLICE_OCTETS:  # nearly every write: as it is
            await self._write_piece(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), WRITE_SLICE_OCTETS):
            await self._write_piece(view[start : start + WRITE_SLICE_OCTETS])

    async def _write_piece(self, data: bytes | memoryview) -> None:
        assert self.transport is not None
        if self.compression is not None:
            data = self.compression.compress(bytes(data))
        self.transport.write(data)
        await self._writable_or_end()

    async def _writable_or_end(self) -> None:
        """Wait (at most IMAP_TIMEOUT_SEND) until the transport takes more output. A
        client that reads nothing for that long is cut, and what was waiting for it is
        dropped (an orderly close would keep it until the client reads)."""
        if self._writable.is_set():
            return
        try:
            async with asyncio.timeout(limits.IMAP_TIMEOUT_SEND):
                await self._writable.wait()
        except TimeoutError:
            log.info("imap.send_timeout", extra={"client": self.peer.ip})
            self.abort()
            raise SessionEnded from None
        if self._closed:
            raise SessionEnded

    async def tagged(
        self, tag: str, status: r.Status, text: str, code: r.Code | None = None
    ) -> None:
        await self.write(r.tagged(tag, status, text, code))

    # -- input -----------------------------------------------------------------------

    async def next_event(self, timeout: float) -> ev.Event:
        """The core's next event, reading as needed, within ``timeout`` seconds."""
        deadline = self.loop.time() + timeout
        while True:
            event = self.conn.next_event()
            if not isinstance(event, ev.NeedData):
                return event
            self._pending = self.conn.buffered
            compressed = self.compression is not None and self.compression.backlog > 0
            if compressed and self._inflate_input(at_least_one=True):
                # Yield between inflate steps: a small input that inflates hugely
                # (a line the core discards) must not hold the event loop.
                await asyncio.sleep(0)
                continue
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            if self._eof or self._closed:
                self.conn.receive_data(b"")
                continue
            if self.service.stopping:
                raise SessionEnded
            self._readable.clear()
            if deadline <= self.loop.time():
                raise TimeoutError
            self._read_deadline = deadline
            watchdog = self._watchdog
            if watchdog is None or watchdog.when() > deadline:
                if watchdog is not None:
                    watchdog.cancel()
                self._watchdog = self.loop.call_at(deadline, self._watch_read)
            self._read_waiting = True
            self._read_timed_out = False
            try:
                await self._readable.wait()
            finally:
                self._read_waiting = False
            if self._read_timed_out:
                self._read_timed_out = False
                raise TimeoutError

    def _watch_read(self) -> None:
        """The read deadline's timer: one per session, not one per read. It fires at
        the deadline of the read that set it; by then a later read has usually
        replaced that deadline, and it sets itself again for the current one."""
        self._watchdog = None
        if not self._read_waiting or self._closed:
            return
        if self.loop.time() >= self._read_deadline:
            self._read_timed_out = True
            self._readable.set()
        else:
            self._watchdog = self.loop.call_at(self._read_deadline, self._watch_read)

    def command_timeout(self) -> float:
        cfg = self.service.config.imap
        if self.conn.state is State.NOT_AUTHENTICATED:
            return cfg.timeout_not_authenticated
        return cfg.timeout_authenticated

    # -- the session -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._serve()
        except (SessionEnded, ConnectionError, asyncio.CancelledError):
            pass
        except ssl.SSLError as exc:  # e.g. plaintext after STARTTLS: the client's doing
            log.info(
                "imap.session.dropped", extra={"client": self.peer.ip, "error": type(exc).__name__}
            )
        except Exception:
            log.exception("imap.session.failed", extra={"client": self.peer.ip})
            with contextlib.suppress(Exception):
                await self.write(r.bye("Internal error, closing connection", r.SERVERBUG))
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            await self._unselect_quietly()
            with contextlib.suppress(Exception):
                await self.notify_state.close()
            log.info(
                "imap.session.closed",
                extra={
                    "client": self.peer.ip,
                    "user": self.account.address if self.account is not None else "",
                    "tls": self.tls_active,
                },
            )
            if self._admitted:
                self.service.abuse.release(self.peer.ip)
            if self.transport is not None:
                self.transport.close()
            self.service.sessions.discard(self)
            if not self.finished.done():
                self.finished.set_result(None)

    async def _serve(self) -> None:
        admission = self.service.abuse.admit(self.peer.ip)
        if not admission.allowed:
            await self.write(r.bye("Too many connections from your address"))
            return
        self._admitted = True
        if self.tls_active and self.transport is not None:
            self._note_tls(self.transport)
        await self.write(
            r.untagged(
                r.Status.OK, "postel IMAP4rev2 ready", r.capability_code(self.capabilities())
            )
        )
        while True:
            try:
                event = await wait_for_input(self, self.command_timeout())
            except TimeoutError:
                await self.write(r.bye("Autologout; idle for too long"))
                return
            except SessionEnded:
                with contextlib.suppress(SessionEnded, ConnectionError):
                    await self.write(r.bye("Server shutting down", r.UNAVAILABLE))
                raise
            if isinstance(event, ev.ConnectionClosed):
                return
            try:
                await self._handle(event)
            except TimeoutError:  # a command's own deadline (an APPEND literal)
                await self.write(r.bye("Autologout; command took too long"))
                return
            except SessionEnded:
                if self.service.stopping:  # e.g. shutdown during IDLE
                    with contextlib.suppress(SessionEnded, ConnectionError):
                        await self.write(r.bye("Server shutting down", r.UNAVAILABLE))
                raise
            if self.conn.state is State.LOGOUT:
                return
            if self.notify_state.watches:
                await deliver(self)
            limit = BAD_COMMANDS_MAX_PREAUTH if self.account is None else BAD_COMMANDS_MAX
            if self.conn.bad_commands >= limit:
                self.service.abuse.record(self.peer.ip, AbuseEvent.PROTOCOL_ERROR)
                await self.write(r.bye("Too many invalid commands"))
                return

    async def _handle(self, event: ev.Event) -> None:
        match event:
            case ev.CommandReceived(command=command):
                await self._command(command)
            case ev.BadCommand(tag=tag, text=text, code=code):
                code_obj = r.Code(code) if code else None
                if tag is None:
                    await self.write(r.untagged(r.Status.BAD, text, code_obj))
                else:
                    await self.tagged(tag, r.Status.BAD, text, code_obj)
            case ev.CommandRefused(tag=tag, text=text, code=code):
                await self.tagged(tag, r.Status.NO, text, r.Code(code) if code else None)
            case ev.LiteralContinuationNeeded():
                await self.write(self.conn.accept_literal())
            case ev.AppendStarted() | ev.CatenateStarted():
                await msg.append(self, event)
            case _:
                raise PostelError(f"unexpected IMAP event {event!r}")

    async def _command(self, command: cmd.Command) -> None:
        tag = command.tag
        await self.check_selected()
        try:
            await modseq.note_command(self, command)
            if type(command) in _MESSAGE_COMMANDS:  # the most frequent, matched first
                await msg.run(self, command)
                return
            match command:
                case cmd.Capability():
                    await self.write(r.capability(self.capabilities()))
                    await self.tagged(tag, r.Status.OK, "CAPABILITY completed")
                case cmd.Noop() | cmd.Check():
                    await self.sync(allow_expunge=True)
                    verb = "NOOP" if isinstance(command, cmd.Noop) else "CHECK"
                    await self.tagged(tag, r.Status.OK, f"{verb} completed")
                case cmd.Logout():
                    await self.write(r.bye("postel logging out"))
                    self.conn.logout()
                    await self.tagged(tag, r.Status.OK, "LOGOUT completed")
                case cmd.StartTls():
                    await self.starttls(tag)
                case cmd.Login(userid=userid, password=password):
                    await self.login(tag, userid, password)
                case cmd.Authenticate(mechanism=mechanism, initial_response=initial):
                    await self.authenticate(tag, mechanism, initial)
                case cmd.Enable(capabilities=caps):
                    await self.enable(tag, caps)
                case cmd.Id():
                    await self.write(r.id_response((("name", "postel"), ("vendor", "postel"))))
                    await self.tagged(tag, r.Status.OK, "ID completed")
                case cmd.Idle():
                    await self.idle(tag)
                case cmd.Namespace():
                    await self.write(r.namespace((("", "/"),), utf8=self.utf8))
                    await self.tagged(tag, r.Status.OK, "NAMESPACE completed")
                case (
                    cmd.Select()
                    | cmd.Create()
                    | cmd.Delete()
                    | cmd.Rename()
                    | cmd.Subscribe()
                    | cmd.Unsubscribe()
                    | cmd.List()
                    | cmd.Lsub()
                    | cmd.Status()
                ):
                    await mb.run(self, command)
                case (
                    cmd.GenUrlAuth()
                    | cmd.ResetKey()
                    | cmd.UrlFetch()
                    | cmd.Notify()
                    | cmd.Compress()
                ):
                    from postel.server import imap_ext

                    await imap_ext.run(self, command)
                case cmd.GetQuota() | cmd.GetQuotaRoot() | cmd.SetQuota():
                    from postel.server import imap_quota

                    await imap_quota.run(self, command)
                case cmd.GetMetadata() | cmd.SetMetadata():
                    from postel.server import imap_metadata

                    await imap_metadata.run(self, command)
                case _:
                    await msg.run(self, command)
        except BlobMissing as exc:
            log.error(
                "imap.blob_missing",
                extra={"command": type(command).__name__, "error": str(exc)},
            )
            await self.tagged(tag, r.Status.NO, "Message data is missing", r.SERVERBUG)
        except NotFound:
            if self.selected is not None and await self._selected_gone():
                # Another session deleted (or renamed away) the selected mailbox.
                await self.write(r.bye("Selected mailbox was deleted, have to disconnect"))
                raise SessionEnded from None
            await self.tagged(tag, r.Status.NO, "No such mailbox or message", r.NONEXISTENT)
        except OverQuota as exc:
            msg.log_over_quota(self, type(command).__name__, str(exc))
            await self.tagged(tag, r.Status.NO, "Over quota", r.OVERQUOTA)
        except SearchTooCostly as exc:
            user = self.account.address if self.account is not None else ""
            log.info(
                "imap.search_limit",
                extra={
                    "command": type(command).__name__,
                    "user": user,
                    "client": self.peer.ip,
                    "error": str(exc),
                },
            )
            await self.tagged(
                tag,
                r.Status.NO,
                "Search reads too much message text; narrow it (message or UID range, flags, dates)",
                r.LIMIT,
            )
        except StoreError as exc:
            log.warning(
                "imap.store_error", extra={"command": type(command).__name__, "error": str(exc)}
            )
            await self.tagged(tag, r.Status.NO, "Temporary failure, try again", r.UNAVAILABLE)

    async def _selected_gone(self) -> bool:
        """Whether the selected mailbox no longer exists as this session selected it:
        deleted, or its id now names another mailbox (SQLite may give a deleted row's
        id to the next mailbox created, of any account): UIDVALIDITY comes from a
        server-wide counter that never repeats, so id, UIDVALIDITY and owner together
        identify it. Spec: RFC 9051 §2.3.1.1 (UIDVALIDITY)."""
        selected = self.selected
        if selected is None:
            return False
        box = await self.store.get_mailbox_by_id(selected.mailbox_id)
        account = self.account
        return (
            box is None
            or box.uidvalidity != selected.view.uidvalidity
            or account is None
            or box.account_id != account.id
        )

    async def check_selected(self) -> None:
        """After a change signal, end the session (BYE) when the selected mailbox is
        gone, before any command or update reads it by id. Spec: RFC 9051 §7.1.5
        (BYE)."""
        selected = self.selected
        if selected is None or not selected.subscription.pending:
            return
        if await self._selected_gone():
            await self.write(r.bye("Selected mailbox was deleted, have to disconnect"))
            raise SessionEnded

    # -- capabilities, login, TLS --------------------------------------------------------

    def plaintext_allowed(self) -> bool:
        """See ``auth.plaintext_allowed``."""
        return plaintext_allowed(self.service.config.auth, self.peer.ip, self.tls_active)

    def capabilities(self) -> list[str]:
        """The CAPABILITY list for the session's state. Spec: RFC 9051 §7.2.2."""
        caps = ["IMAP4rev1", "IMAP4rev2"]
        if self.account is None:
            if not self.tls_active and self.service.ssl_context is not None:
                caps.append("STARTTLS")
            if self.plaintext_allowed():
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")
            caps += ["AUTH=SCRAM-SHA-256", "SASL-IR"]
        caps += [
            "LITERAL+",
            "ENABLE",
            "ID",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "ESEARCH",
            "SEARCHRES",
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "CONTEXT=SEARCH",
            "CONTEXT=SORT",
            "MULTIAPPEND",
            "CATENATE",
            "URLAUTH",
            "NOTIFY",
            "COMPRESS=DEFLATE",
            "BINARY",
            f"APPENDLIMIT={self.service.config.imap.append_limit}",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "QUOTA=RES-MESSAGE",
            "METADATA",
            "METADATA-SERVER",
            "STATUS=SIZE",
            "UTF8=ACCEPT",
            "CONDSTORE",
            "QRESYNC",
            "PREVIEW",
            "OBJECTID",
            "SAVEDATE",
        ]
        return caps

    async def starttls(self, tag: str) -> None:
        context = self.service.ssl_context
        if self.tls_active or context is None or self.transport is None:
            self.conn.starttls_refused()
            await self.tagged(tag, r.Status.BAD, "TLS not available")
            return
        await self.tagged(tag, r.Status.OK, "Begin TLS negotiation now")
        self._handshake_data = []
        try:
            transport = await self.loop.start_tls(
                self.transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=limits.SMTP_TIMEOUT_TLS_HANDSHAKE,
            )
        finally:
            early, self._handshake_data = self._handshake_data, None
        if transport is None:
            raise SessionEnded
        self.transport = transport
        self.tls_active = True
        self.conn.tls_established()
        for data in early:
            self.conn.receive_data(data)
            self._readable.set()
        self._note_tls(transport)

    def _note_tls(self, transport: asyncio.BaseTransport) -> None:
        log.info(
            "imap.tls",
            extra={
                "client": self.peer.ip,
                "tls": tls.describe(transport.get_extra_info("ssl_object")),
            },
        )

    async def login(self, tag: str, userid: str, password: str) -> None:
        if not self.plaintext_allowed():
            await self.tagged(tag, r.Status.NO, "Plaintext login needs TLS", r.PRIVACYREQUIRED)
            return
        result = await self.service.authenticator.login(
            self.peer.ip, userid, password, protocol="imap"
        )
        await self._logged_in(tag, result.account, result.banned)

    async def authenticate(self, tag: str, mechanism: str, initial: bytes | None) -> None:
        name = mechanism.upper()
        if name in ("PLAIN", "LOGIN") and not self.plaintext_allowed():
            await self.tagged(tag, r.Status.NO, "Plaintext mechanisms need TLS", r.PRIVACYREQUIRED)
            return
        self.conn.begin_authenticate(tag)

        async def ask(challenge: bytes) -> bytes | Cancelled:
            await self.write(r.continuation_data(challenge))
            event = await self.next_event(self.command_timeout())
            if isinstance(event, ev.BadCommand) and event.tag == tag:
                raise SaslError(event.text)  # an overlong response: tagged BAD
            if not isinstance(event, ev.AuthenticateResponse):
                raise SessionEnded
            return CANCELLED if event.cancelled else _decoded(event.line)

        try:
            result = await self.service.authenticator.authenticate(
                self.peer.ip, name, initial, ask, protocol="imap"
            )
        except UnsupportedMechanism:
            self.conn.end_authenticate()
            await self.tagged(tag, r.Status.NO, "Unsupported authentication mechanism")
            return
        except SaslError as exc:
            self.conn.end_authenticate()
            await self.tagged(tag, r.Status.BAD, f"Malformed authentication response: {exc}")
            return
        if result.account is not None and result.server_final is not None:
            # IMAP has no additional data with success: send it as one more challenge
            # and take the client's empty response (RFC 4422 §3.6, RFC 9051 §6.2.2).
            try:
                if await ask(result.server_final) != b"":
                    self.conn.end_authenticate()
                    await self.tagged(tag, r.Status.BAD, "Authentication cancelled")
                    return
            except SaslError:
                self.conn.end_authenticate()
                await self.tagged(tag, r.Status.BAD, "Malformed authentication response")
                return
        self.conn.end_authenticate()
        if result.cancelled:
            await self.tagged(tag, r.Status.BAD, "Authentication cancelled")
            return
        await self._logged_in(tag, result.account, result.banned)

    async def _logged_in(self, tag: str, account: Account | None, banned: bool) -> None:
        if account is None:
            await self.tagged(tag, r.Status.NO, "Authentication failed", r.AUTHENTICATIONFAILED)
            if banned:
                await self.write(r.bye("Too many failed logins"))
                raise SessionEnded
            return
        self.account = account
        self.conn.authenticated()
        await self.tagged(tag, r.Status.OK, "Logged in", r.capability_code(self.capabilities()))

    async def enable(self, tag: str, caps: tuple[str, ...]) -> None:
        from postel.server import imap_condstore

        done: list[str] = []
        wanted = {cap.upper() for cap in caps}
        if "IMAP4REV2" in wanted and not self.rev2:
            self.rev2 = True
            done.append("IMAP4rev2")
        if wanted & {"UTF8=ACCEPT", "IMAP4REV2"} and not self.utf8:
            # IMAP4rev2 implies UTF-8 names; UTF8=ACCEPT asked for is reported enabled.
            self.utf8 = True
            self.conn.enable_utf8()
        if "UTF8=ACCEPT" in wanted and self.utf8 and "UTF8=ACCEPT" not in self._enabled:
            done.append("UTF8=ACCEPT")
        done += await imap_condstore.enable(self, wanted)
        self._enabled.update(c.upper() for c in done)
        await self.write(r.enabled(done))
        await self.tagged(tag, r.Status.OK, "ENABLE completed")

    # -- selected mailbox: sync points and IDLE ------------------------------------------

    async def select(self, selected: Selected) -> None:
        await self._unselect_quietly()
        self.selected = selected
        self.conn.selected(read_only=selected.view.read_only)

    async def unselect(self) -> None:
        await self._unselect_quietly()
        self.conn.unselected()

    async def _unselect_quietly(self) -> None:
        if self.selected is not None:
            selected, self.selected = self.selected, None
            with contextlib.suppress(Exception):
                await selected.exit_stack.aclose()

    async def sync(self, *, allow_expunge: bool, force: bool = False) -> None:
        """A sync point: tell the client what changed in the selected mailbox. The store
        is asked only when the change hub signalled (or ``force``). Spec: RFC 9051 §5.2,
        §7.5.1."""
        selected = self.selected
        if selected is None:
            return
        view = selected.view
        changed: list[int] = []
        before = view.modseq
        await self.check_selected()
        if selected.subscription.consume() or force:
            changes = await self.store.changes_since(selected.mailbox_id, view.modseq)
            updates = view.update(
                changes.changed,
                changes.expunged,
                changes.highestmodseq,
                allow_expunge=allow_expunge,
            )
            changed = [uid for uid, _, _ in changes.changed]
        elif allow_expunge and view.has_pending_expunge:
            updates = view.update([], [], view.modseq, allow_expunge=True)
        else:
            return
        if any(isinstance(u, Exists) for u in updates) and not view.read_only and view.uids:
            claimed = await self.store.claim_recent(selected.mailbox_id, view.uids[-1])
            selected.recent.update(u for u in view.uids if u > claimed)
        if not view.has_pending_expunge:
            selected.expunge_floor = None
        elif selected.expunge_floor is None:
            selected.expunge_floor = before
        if selected.contexts:
            await sync_contexts(self, updates, changed)
        else:
            await self.write_updates(updates)
        floor = selected.expunge_floor
        if (
            floor is not None
            and self.condstore
            and any(isinstance(u, FlagsChanged) for u in updates)
        ):
            # MODSEQs above a held-back expunge were sent: the client must not cache a
            # HIGHESTMODSEQ that would skip the expunge (RFC 7162 §3.2, §6).
            await self.write(r.untagged(r.Status.OK, "Expunges pending", r.highestmodseq(floor)))

    async def write_updates(self, updates: list[ViewUpdate]) -> None:
        selected = self.selected
        assert selected is not None
        out: list[bytes] = []
        vanished: list[int] = []
        for u in updates:
            match u:
                case Expunge(msn=msn, uid=uid):
                    selected.recent.discard(uid)
                    if self.qresync:
                        vanished.append(uid)  # one VANISHED for the run (RFC 7162 §3.2.10)
                        continue
                    out.append(r.expunge(msn))
                case Exists(count=count):
                    out.append(r.exists(count))
                    if not self.rev2:
                        out.append(b"* %d RECENT\r\n" % len(selected.recent))
                case FlagsChanged(msn=msn, uid=uid, flags=flags, modseq=modseq):
                    shown = selected.flags(uid, flags, self.rev2)
                    items = [(b"UID", b"%d" % uid), (b"FLAGS", render_flags(shown))]
                    if self.condstore:
                        items.append(cs.modseq_item(modseq))
                    out.append(r.fetch_response(msn, items))
        if vanished:
            out.insert(0, cs.vanished(vanished, earlier=False))
        if out:
            await self.write(b"".join(out))

    async def idle(self, tag: str) -> None:
        """Report changes as they happen until DONE. Spec: RFC 9051 §6.3.13, RFC 2177."""
        self.conn.begin_idle(tag)
        await self.write(r.continuation("idling"))
        await self.sync(allow_expunge=True)
        deadline = self.loop.time() + self.service.config.imap.timeout_idle
        reader = self.loop.create_task(self._idle_read(deadline))
        try:
            while True:
                sub = self.selected.subscription if self.selected is not None else None
                # The waiter leaves the change signal for the sync that asks the store:
                # a waiter that ends in the same turn as DONE must not take it, or a
                # change committed before DONE would miss the tagged OK (RFC 9051 §5.2).
                waiter: asyncio.Task[object] = self.loop.create_task(
                    sub.signalled(limits.IMAP_CHANGE_RECHECK)
                    if sub is not None
                    else asyncio.sleep(limits.IMAP_CHANGE_RECHECK)
                )
                notifier = self.loop.create_task(self.notify_state.wait_pending())
                done, _ = await asyncio.wait(
                    {reader, waiter, notifier}, return_when=asyncio.FIRST_COMPLETED
                )
                notifier.cancel()
                if reader in done:
                    waiter.cancel()
                    break
                if waiter in done:
                    # A signal (taken by this sync) or the periodic re-check: ask the store.
                    await self.sync(allow_expunge=True, force=True)
                else:
                    waiter.cancel()
                await deliver(self)
            event = reader.result()
        finally:
            if not reader.done():
                reader.cancel()
        if isinstance(event, ev.IdleDone):
            await self.sync(allow_expunge=True)
            await self.tagged(event.tag, r.Status.OK, "IDLE terminated")
        elif isinstance(event, ev.BadCommand):
            await self.tagged(event.tag or tag, r.Status.BAD, event.text)
        else:
            raise SessionEnded

    async def _idle_read(self, deadline: float) -> ev.Event:
        try:
            return await self.next_event(max(deadline - self.loop.time(), 0.0))
        except TimeoutError:
            await self.write(r.bye("IDLE for too long"))
            raise SessionEnded from None


def _decoded(line: bytes) -> bytes | Cancelled:
    return decode_response(line)


__all__ = ["ImapService", "ImapSession", "Selected", "SessionEnded", "imap"]
