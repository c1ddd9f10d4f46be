"""The asyncio driver of the POP3 server core.

One ``asyncio.Protocol`` per connection feeds ``pop3.ServerConnection``; one task per
session takes the core's events in order. The core answers STAT, LIST, UIDL, DELE,
RSET, NOOP and CAPA itself from the maildrop listing it was given at login; this driver
checks logins (the shared Authenticator), takes the maildrop lock, streams RETR and TOP
from the store through the core's dot-stuffer, and applies the deletions of the UPDATE
state in one transaction.

The maildrop is the INBOX as of login (RFC 1939 §8); UIDL values are
``<UIDVALIDITY>.<UID>``, stable for as long as the message exists and the same messages
IMAP sees. A RETR sets ``\\Seen``. Only one POP3 session per account holds the maildrop
(a lease in the store, renewed while the session lives, so a crashed node's lock ends
by itself); a second one gets ``-ERR [IN-USE]``.

Spec: RFC 1939 §3-§8; RFC 2449; RFC 2595 §4 (STLS); RFC 5034 (AUTH); RFC 3206;
RFC 8314 §3 (995); RELIABILITY.md D4 (timeouts), D6 (abuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl

from postel import limits, pop3
from postel.abuse import AbuseEvent, AbuseTracker
from postel.config import Config
from postel.errors import StoreError
from postel.ids import MailboxId
from postel.sasl import CANCELLED, Cancelled, SaslError, UnsupportedMechanism, decode_response
from postel.server import tls
from postel.server.auth import Authenticator, AuthResult, plaintext_allowed
from postel.server.listener import Peer, drain_sessions
from postel.store import Account, Store
from postel.store.api import UidSet

log = logging.getLogger(__name__)

READ_BUFFER_MAX = 64 * 1024
"""Octets of unprocessed input after which reading pauses (RELIABILITY.md D7)."""
WHOLE_SEND_MAX = 256 * 1024
"""Messages up to this size are read and sent in one piece; larger ones are streamed
in chunks, so memory per session stays bounded (RELIABILITY.md D7)."""
MAILDROP_LEASE = 60.0
"""Seconds a maildrop lock lasts unless renewed; renewed every third of it. It bounds
how long a node that died keeps an account's maildrop locked (RFC 1939 §8)."""


class SessionEnded(Exception):
    """The session must end now (EOF, timeout, ban, shutdown)."""


class Pop3Service:
    """What every POP3 session of one process shares, and the protocol factories."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        authenticator: Authenticator,
        abuse: AbuseTracker,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.config = config
        self.store = store
        self.authenticator = authenticator
        self.abuse = abuse
        self.ssl_context = ssl_context
        self.sessions: set[Pop3Session] = set()
        self.stopping = False
        self.node = f"{os.uname().nodename}:{os.getpid()}"

    def plain_factory(self) -> Pop3Session:
        """Factory for the port with STLS (110)."""
        return Pop3Session(self, implicit_tls=False)

    def tls_factory(self) -> Pop3Session:
        """Factory for the implicit-TLS port (995, RFC 8314)."""
        return Pop3Session(self, implicit_tls=True)

    def stop(self) -> None:
        """Begin shutdown: sessions end at their next wait (nothing is deleted)."""
        self.stopping = True
        for session in list(self.sessions):
            session.wake()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for sessions to end; abort the rest."""
        return await drain_sessions(list(self.sessions), timeout)


class Pop3Session(asyncio.Protocol):
    """One POP3 connection. See the module docstring."""

    def __init__(self, service: Pop3Service, *, implicit_tls: bool) -> None:
        self.service = service
        self.store = service.store
        self.loop = asyncio.get_running_loop()
        self.peer = Peer("", 0)
        self.transport: asyncio.Transport | None = None
        self.tls_active = implicit_tls
        self.conn: pop3.ServerConnection | None = None
        self.account: Account | None = None
        self.mailbox_id: MailboxId | None = None
        self.uids: list[int] = []
        self.retrieved: set[int] = set()
        """UIDs sent by RETR: marked \\Seen in the UPDATE state, with the deletions."""
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._eof = self._closed = self._reading_paused = self._admitted = False
        self._task: asyncio.Task[None] | None = None
        self._lease: asyncio.Task[None] | None = None
        self._handshake_data: list[bytes] | None = None
        """Input the TLS transport delivered before ``start_tls`` returned."""
        self.holder = f"{service.node}:{secrets.token_hex(6)}"
        """This session's name on the maildrop lock."""

    # -- transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(str(peername[0]), int(peername[1]))
        self.conn = pop3.ServerConnection(self._core_config(), tls_active=self.tls_active)
        self.service.sessions.add(self)
        self._task = self.loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._closed or self.conn is None:
            return
        if self._handshake_data is not None:
            self._handshake_data.append(data)  # decrypted, arrived with the handshake
            return
        self.conn.receive_data(data)
        self._readable.set()
        if self.conn.buffered > READ_BUFFER_MAX and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._readable.set()
        if self.transport is not None and self.transport.get_extra_info("sslcontext"):
            return None
        return True

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
        self._readable.set()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- helpers ---------------------------------------------------------------------

    def _core_config(self) -> pop3.Pop3Config:
        return pop3.Pop3Config(
            tls_available=self.service.ssl_context is not None,
            plaintext_without_tls=plaintext_allowed(
                self.service.config.auth, self.peer.ip, tls_active=False
            ),
        )

    @property
    def core(self) -> pop3.ServerConnection:
        assert self.conn is not None
        return self.conn

    async def write(self, data: bytes) -> None:
        if self._closed or self.transport is None:
            raise SessionEnded
        self.transport.write(data)
        if not self._writable.is_set():
            try:
                async with asyncio.timeout(limits.POP3_TIMEOUT_SEND):
                    await self._writable.wait()
            except TimeoutError:
                raise SessionEnded from None
            if self._closed:
                raise SessionEnded

    async def next_event(self) -> pop3.Event:
        cfg = self.service.config.pop3
        timeout = (
            cfg.timeout_authenticated if self.account is not None else cfg.timeout_not_authenticated
        )
        deadline = self.loop.time() + timeout
        while True:
            event = self.core.next_event()
            if not isinstance(event, pop3.NeedData):
                return event
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            if self._eof or self._closed:
                self.core.receive_data(b"")
                continue
            if self.service.stopping:
                raise SessionEnded
            self._readable.clear()
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                await self._readable.wait()

    # -- the session -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._serve()
        except (SessionEnded, ConnectionError, asyncio.CancelledError):
            pass
        except ssl.SSLError as exc:  # e.g. plaintext after STARTTLS: the client's doing
            log.info(
                "pop3.session.dropped", extra={"client": self.peer.ip, "error": type(exc).__name__}
            )
        except Exception:
            log.exception("pop3.session.failed", extra={"client": self.peer.ip})
        finally:
            await self._release()
            log.info(
                "pop3.session.closed",
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
        if not self.service.abuse.admit(self.peer.ip).allowed:
            await self.write(
                self.core.greeting(pop3.Response(False, "Too many connections from your address"))
            )
            return
        self._admitted = True
        await self.write(self.core.greeting())
        while True:
            try:
                event = await self.next_event()
            except TimeoutError:
                await self.write(self.core.abort(pop3.Response(False, "Autologout; idle too long")))
                return
            except SessionEnded:
                with contextlib.suppress(SessionEnded, ConnectionError):
                    await self.write(
                        self.core.abort(
                            pop3.Response(False, "Server shutting down", pop3.ResponseCode.SYS_TEMP)
                        )
                    )
                raise
            if isinstance(event, pop3.ConnectionClosed):
                return
            if isinstance(event, pop3.Answered):
                await self.write(event.response)
                if isinstance(event, pop3.TooManyErrors):
                    self.service.abuse.record(self.peer.ip, AbuseEvent.PROTOCOL_ERROR)
                    return
                continue
            if await self._policy(event):
                return

    async def _policy(self, event: pop3.Event) -> bool:
        """Answer one policy event; True when the session ends."""
        try:
            match event:
                case pop3.User():
                    await self.write(self.core.send(pop3.SEND_PASS))
                case pop3.Pass(user=user, password=password):
                    result = await self.service.authenticator.login(
                        self.peer.ip, user, password, protocol="pop3"
                    )
                    return await self._logged_in(result)
                case pop3.AuthStarted(mechanism=mechanism, initial_response=initial):
                    return await self._authenticate(mechanism, initial)
                case pop3.StartTls():
                    await self._starttls()
                case pop3.Retr(msg=msg, size=size) if size <= WHOLE_SEND_MAX:
                    await self._send_whole(msg)
                case pop3.Retr(msg=msg):
                    await self._send_message(msg, None)
                case pop3.Top(msg=msg, lines=lines):
                    await self._send_message(msg, lines)
                case pop3.Quit(deleted=deleted):
                    await self._quit(deleted)
                    return True
        except StoreError as exc:
            log.warning("pop3.store_error", extra={"error": str(exc)})
            if self.core.response_due:
                await self.write(self.core.send(pop3.SYS_TEMP))
        return False

    async def _starttls(self) -> None:
        context = self.service.ssl_context
        if context is None or self.transport is None:
            await self.write(self.core.send(pop3.Response(False, "TLS not available")))
            return
        await self.write(self.core.send(pop3.BEGIN_TLS))
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
        self.core.tls_established()
        for data in early:
            self.core.receive_data(data)
            self._readable.set()
        log.info(
            "pop3.tls",
            extra={
                "client": self.peer.ip,
                "tls": tls.describe(transport.get_extra_info("ssl_object")),
            },
        )

    async def _authenticate(self, mechanism: str, initial: bytes | None) -> bool:
        async def ask(challenge: bytes) -> bytes | Cancelled:
            await self.write(self.core.challenge(challenge))
            event = await self.next_event()
            if not isinstance(event, pop3.AuthResponse):
                # The core answered a bad line itself; the exchange is over.
                if isinstance(event, pop3.Answered):
                    await self.write(event.response)
                raise SessionEnded
            if event.line == b"*":
                return CANCELLED
            return decode_response(event.line)

        try:
            first = None if initial is None else decode_response(initial)
            if isinstance(first, Cancelled):
                await self.write(self.core.send(pop3.AUTH_CANCELLED))
                return False
            result = await self.service.authenticator.authenticate(
                self.peer.ip, mechanism, first, ask, protocol="pop3"
            )
            # POP3 has no additional data with success (RFC 5034 §4): one more
            # challenge, answered by an empty response.
            if (
                result.account is not None
                and result.server_final is not None
                and await ask(result.server_final) != b""
            ):
                await self.write(self.core.send(pop3.AUTH_CANCELLED))
                return False
        except UnsupportedMechanism:
            await self.write(self.core.send(pop3.Response(False, "Unsupported mechanism")))
            return False
        except SaslError:
            await self.write(self.core.send(pop3.Response(False, "Malformed response")))
            return False
        if result.cancelled:
            await self.write(self.core.send(pop3.AUTH_CANCELLED))
            return False
        return await self._logged_in(result)

    async def _logged_in(self, result: AuthResult) -> bool:
        account = result.account
        if account is None:
            await self.write(self.core.send(pop3.AUTH_FAILED))
            return result.banned
        store = self.store
        if not await store.acquire_maildrop(account.id, self.holder, MAILDROP_LEASE):
            # The credentials were right (auth.succeeded is logged) but the session
            # stays unauthenticated: say why in the log too.
            log.info(
                "pop3.maildrop_in_use",
                extra={"client": self.peer.ip, "user": account.address},
            )
            await self.write(self.core.send(pop3.IN_USE))
            return False
        self.account = account
        self._lease = self.loop.create_task(self._renew())
        inbox = await store.get_mailbox(account.id, "INBOX")
        if inbox is None:
            await self.write(self.core.send(pop3.SYS_TEMP))
            return True
        self.mailbox_id = inbox.id
        listing = await store.message_sizes(inbox.id)
        self.uids = [uid for uid, _ in listing]
        uidls = [f"{inbox.uidvalidity}.{uid}" for uid in self.uids]
        await self.write(self.core.logged_in([size for _, size in listing], uidls))
        return False

    async def _renew(self) -> None:
        assert self.account is not None
        while True:
            await asyncio.sleep(MAILDROP_LEASE / 3)
            with contextlib.suppress(StoreError):
                await self.store.acquire_maildrop(self.account.id, self.holder, MAILDROP_LEASE)

    async def _release(self) -> None:
        if self._lease is not None:
            self._lease.cancel()
        if self.account is not None:
            with contextlib.suppress(Exception):
                await self.store.release_maildrop(self.account.id, self.holder)

    async def _send_whole(self, msg: int) -> None:
        """RETR of a small message: one read, one write (status line and payload)."""
        assert self.mailbox_id is not None
        uid = self.uids[msg - 1]
        try:
            data = await self.store.read_message(self.mailbox_id, uid)
        except StoreError:
            await self.write(self.core.send(pop3.Response(False, "Message is gone")))
            return
        stuffer = pop3.DotStuffer()
        await self.write(self.core.message_follows() + stuffer.feed(data) + stuffer.end())
        self.retrieved.add(uid)

    async def _send_message(self, msg: int, lines: int | None) -> None:
        """RETR (``lines`` None; sets \\Seen) or TOP. Spec: RFC 1939 §7 (RETR, TOP)."""
        assert self.mailbox_id is not None
        uid = self.uids[msg - 1]
        chunks = self.store.open_message(self.mailbox_id, uid)
        try:
            first = await anext(chunks, b"")  # a message of no octets has no chunk
        except StoreError:
            await self.write(self.core.send(pop3.Response(False, "Message is gone")))
            return
        await self.write(self.core.message_follows())
        stuffer = pop3.DotStuffer()
        cut = pop3.TopFilter(lines) if lines is not None else None
        chunk: bytes | None = first
        while chunk is not None:
            text = cut.feed(chunk) if cut is not None else chunk
            out = stuffer.feed(text)
            if out:
                await self.write(out)
            if cut is not None and cut.done:
                break
            chunk = await anext(chunks, None)
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
        tail = cut.end() if cut is not None and not cut.done else b""
        await self.write(stuffer.feed(tail) + stuffer.end())
        if lines is None:
            self.retrieved.add(uid)

    async def _quit(self, deleted: tuple[int, ...]) -> None:
        """QUIT: in TRANSACTION the deletions, and \\Seen on the messages retrieved, are
        applied in one transaction, all or none (RFC 1939 §6); a failure answers ``-ERR``
        and changes nothing. A session that ends without QUIT changes nothing."""
        if self.mailbox_id is None or not (deleted or self.retrieved):
            await self.write(self.core.send(pop3.SIGNING_OFF))
            return
        uids = UidSet.of(self.uids[n - 1] for n in deleted)
        seen = UidSet.of(self.retrieved)
        try:
            await self.store.delete_messages(self.mailbox_id, uids, seen=seen)
        except StoreError as exc:
            log.warning("pop3.update_failed", extra={"error": str(exc)})
            await self.write(self.core.send(pop3.UPDATE_FAILED))
            return
        await self.write(self.core.send(pop3.SIGNING_OFF))
