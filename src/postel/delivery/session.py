"""One outbound SMTP connection: the asyncio driver of the sans-IO ``ClientConnection``.

``OutboundSession.open`` connects (from the configured source address, with a
timeout) to one target, reads the greeting, says EHLO (HELO when EHLO is refused with
5xx), and upgrades with STARTTLS as the ``TlsDecision`` says (opportunistic: when
offered, certificate not checked). ``send`` then runs one mail transaction per call
and returns one reply per recipient; the session stays usable for the next message.
``close`` says QUIT.

Connection trouble (refused, timeout, EOF, 421, a protocol error, a greeting other
than 220, HELO refused, required TLS not possible) raises ``SessionError``, a
temporary failure: the caller tries the next host or defers.

Spec: RFC 5321 §3.1-§3.3, §4.1.1, §4.5.3.2 (timeouts), §3.8; RFC 2920 (PIPELINING);
RFC 3030 (CHUNKING); RFC 3207 (STARTTLS); RFC 7435 (opportunistic TLS).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace

from postel.errors import LocalProtocolError, TemporaryFailure
from postel.smtp.client import (
    AuthChallenge,
    CannotDeliver,
    ClientConfig,
    ClientConnection,
    ClientEvent,
    ConnectionClosed,
    EhloDone,
    Extensions,
    Greeting,
    NeedData,
    NeedsConversion,
    Phase,
    ReplyReceived,
    ServiceClosing,
    SmtpClientProtocolError,
    plan_transaction,
)
from postel.smtp.grammar import Path
from postel.smtp.params import Body, MailParams, RcptParams, Ret
from postel.smtp.reply import Reply

from .link import Link
from .mx import Target
from .settings import DeliveryConfig, TlsDecision, TlsMode

log = logging.getLogger(__name__)

BDAT_IN_FLIGHT_MAX = 8
"""BDAT chunks sent before their replies are read when pipelining (local policy; keeps
the server's unread replies, and so both sides' buffers, bounded). Spec: RFC 3030 §4.2."""


DATA_WRITE_MIN = 64 * 1024
"""Octets of encoded content gathered before they are written (local policy: a small
message, its end marker included, goes out in one write)."""


class SessionError(TemporaryFailure):
    """The connection cannot be used (any more). ``reply`` is the reason in reply form
    (``"421 4.4.2 ..."``, the server's own reply when there was one); ``tls_failed``:
    the STARTTLS handshake failed (a plaintext retry may work).
    Spec: RFC 5321 §4.2.1 (4yz), §3.8; RFC 7435 §1.3."""

    def __init__(self, reply: str, *, tls_failed: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.tls_failed = tls_failed


@dataclass(frozen=True, slots=True)
class Envelope:
    """One transaction to send: the reverse-path, each recipient with its DSN
    parameters, and what MAIL FROM must say about the content (``size`` in octets,
    ``body`` from the original MAIL FROM). Spec: RFC 5321 §4.1.1.2-3; RFC 3461 §4;
    RFC 6152; RFC 6531 §3.4; RFC 8689."""

    reverse_path: Path
    recipients: tuple[tuple[Path, RcptParams], ...]
    size: int
    body: Body | None = None
    smtputf8: bool = False
    requiretls: bool = False
    ret: Ret | None = None
    envid: str | None = None


def format_reply(reply: Reply) -> str:
    """``"550 5.1.1 text"`` on one line (lines joined by spaces), for the queue."""
    head = " ".join(part for part in (str(reply.code), reply.enhanced) if part)
    return f"{head} {' '.join(reply.lines)}".rstrip()


@dataclass
class _Handoff:
    """A sync iterator the streaming DATA encoder pulls one chunk at a time from."""

    chunks: list[bytes] = field(default_factory=list)
    closed: bool = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.closed:
            raise StopIteration
        raise RuntimeError("DATA encoder asked for a chunk before it was given")


class OutboundSession:
    """A greeted, EHLO'd (maybe TLS) SMTP client connection to ``target``.
    Build with ``open``. Spec: RFC 5321 §3.1-§3.3."""

    def __init__(self, link: Link, conn: ClientConnection, target: Target, config: DeliveryConfig):
        self._link = link
        self._conn = conn
        self.target = target
        self._config = config
        self._timeouts = config.timeouts
        self.transactions = 0
        """Transactions sent over this connection."""
        self.usable = True
        """False once the connection cannot take another transaction."""

    # -- opening -------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        target: Target,
        config: DeliveryConfig,
        tls: TlsDecision,
        tls_context: ssl.SSLContext | None,
        *,
        port: int | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> OutboundSession:
        """Connect to ``target`` on ``port`` (default ``config.port``), greeting, EHLO,
        STARTTLS per ``tls`` (``tls_context`` the context to use, None: no TLS
        possible), or TLS from the first octet with ``implicit_tls``; then AUTH PLAIN
        with ``credentials`` (user, password; a smarthost), only over TLS.
        Raises SessionError. Spec: RFC 5321 §3.1, §4.1.1.1; RFC 3207 §4; RFC 8314 §3.3;
        RFC 4954 §4, RFC 4616."""
        if tls.mode is TlsMode.REFUSE:  # RFC 8461 §4.1: a host the policy does not list
            raise SessionError(f"451 4.7.5 {_where(target)}: not an allowed MX host")
        if implicit_tls and tls_context is None:
            raise SessionError(f"451 4.7.5 {_where(target)}: implicit TLS needs a context")
        link = Link()
        loop = asyncio.get_running_loop()
        bind = config.bind_address
        try:
            async with asyncio.timeout(config.timeouts.connect + config.timeouts.tls_handshake):
                await loop.create_connection(
                    lambda: link,
                    host=str(target.address),
                    port=port or config.port,
                    local_addr=(str(bind), 0) if bind is not None else None,
                    ssl=tls_context if implicit_tls else None,
                    server_hostname=(tls.server_hostname or target.host) if implicit_tls else None,
                    ssl_handshake_timeout=config.timeouts.tls_handshake if implicit_tls else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise SessionError(
                f"451 4.4.1 Connection to {_where(target)} failed: {exc}",
                tls_failed=implicit_tls and isinstance(exc, ssl.SSLError),
            ) from None
        conn = ClientConnection(ClientConfig(config.hostname), tls_active=implicit_tls)
        session = cls(link, conn, target, config)
        try:
            await session._start(tls, None if implicit_tls else tls_context)
            if credentials is not None:
                await session._authenticate(*credentials)
        except BaseException:
            link.close()
            raise
        return session

    async def _authenticate(self, username: str, password: str) -> None:
        """AUTH PLAIN over TLS; a refusal is a SessionError keeping the server's reply
        class (535 fails for good only by the operator's hand: it defers).
        Spec: RFC 4954 §4, §6; RFC 4616 §2."""
        if not self._conn.tls_active:
            await self._quietly_quit()
            raise SessionError(f"451 4.7.0 {_where(self.target)}: no AUTH without TLS")
        if "PLAIN" not in self.extensions.auth:
            await self._quietly_quit()
            raise SessionError(f"451 4.7.0 {_where(self.target)}: AUTH PLAIN not offered")
        initial = b"\0" + username.encode() + b"\0" + password.encode()
        await self._write(self._conn.auth("PLAIN", initial), self._timeouts.hello)
        event = await self._event(self._timeouts.hello)
        if isinstance(event, AuthChallenge):
            answer = initial if event.send_initial_response else b""
            await self._write(self._conn.auth_response(answer), self._timeouts.hello)
            event = await self._event(self._timeouts.hello)
        reply = _reply_of(event)
        if reply.code != 235:
            await self._quietly_quit()
            raise SessionError(
                f"451 4.7.0 {_where(self.target)} refused AUTH: {format_reply(reply)}"
            )

    async def _start(self, tls: TlsDecision, tls_context: ssl.SSLContext | None) -> None:
        greeting = await self._event(self._timeouts.greeting)
        if not isinstance(greeting, Greeting) or greeting.reply.code != 220:
            reply = greeting.reply if isinstance(greeting, Greeting) else None
            await self._quietly_quit()
            text = format_reply(reply) if reply is not None else "no greeting"
            raise SessionError(f"451 4.4.2 {_where(self.target)} refused the session: {text}")
        await self._hello()
        extensions = self._conn.extensions
        assert extensions is not None
        if tls.mode is not TlsMode.OFF and extensions.starttls and tls_context is not None:
            await self._starttls(tls, tls_context)
        if tls.mode is TlsMode.REQUIRED and not self._conn.tls_active:
            await self._quietly_quit()
            raise SessionError(f"451 4.7.5 {_where(self.target)}: TLS required but not offered")
        log.info(
            "delivery.connected",
            extra={
                "host": self.target.host,
                "address": str(self.target.address),
                "tls": self._link.tls_version or "none",
            },
        )

    async def _hello(self) -> None:
        await self._write(self._conn.ehlo(), self._timeouts.hello)
        event = await self._event(self._timeouts.hello)
        if isinstance(event, EhloDone):
            return
        reply = _reply_of(event)
        if reply.code // 100 == 5:
            await self._write(self._conn.helo(), self._timeouts.hello)
            reply = _reply_of(await self._event(self._timeouts.hello))
            if reply.code // 100 == 2:
                return
        raise SessionError(
            f"451 4.4.2 {_where(self.target)} refused EHLO/HELO: {format_reply(reply)}"
        )

    async def _starttls(self, tls: TlsDecision, context: ssl.SSLContext) -> None:
        await self._write(self._conn.starttls(), self._timeouts.hello)
        reply = _reply_of(await self._event(self._timeouts.hello))
        if reply.code != 220:
            log.info(
                "delivery.starttls_refused", extra={"host": self.target.host, "code": reply.code}
            )
            return
        hostname = tls.server_hostname or self.target.host
        try:
            await self._link.start_tls(context, hostname, self._timeouts.tls_handshake)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise SessionError(
                f"451 4.7.5 TLS handshake with {_where(self.target)} failed: {exc}",
                tls_failed=True,
            ) from None
        self._conn.tls_established()
        await self._hello()

    @property
    def tls_active(self) -> bool:
        """True when the session runs over TLS. Spec: RFC 3207."""
        return self._conn.tls_active

    @property
    def extensions(self) -> Extensions:
        """What the server offered in its (last) EHLO reply."""
        return self._conn.extensions or Extensions()

    # -- one transaction -------------------------------------------------------------------
    async def send(self, envelope: Envelope, content: AsyncIterator[bytes]) -> tuple[Reply, ...]:
        """Send one message; returns one reply per recipient, in order: the final reply
        for accepted recipients, the refusal otherwise (locally made 5xx when this server
        cannot take the message). Raises SessionError when the connection fails: the
        message's fate is then unknown. Spec: RFC 5321 §4.1.1.2-§4.1.1.4, §6.1."""
        if not self.usable:
            raise SessionError("451 4.4.2 Connection no longer usable")
        self.usable = False
        try:
            replies = await self._transaction(envelope, content)
        except (OSError, TimeoutError) as exc:
            raise SessionError(
                f"451 4.4.2 Lost connection with {_where(self.target)}: {exc}"
            ) from None
        self.transactions += 1
        self.usable = self._conn.phase is Phase.IDLE and not self._conn.closed
        return replies

    async def _transaction(
        self, envelope: Envelope, content: AsyncIterator[bytes]
    ) -> tuple[Reply, ...]:
        count = len(envelope.recipients)
        planned = self._plan(envelope)
        if isinstance(planned, Reply):
            self.usable = True
            return (planned,) * count
        ext = self.extensions
        bdat = ext.chunking and (self._config.use_bdat or envelope.body is Body.BINARY_MIME)
        mail, rcpts, data = await self._envelope(envelope, planned, bdat)
        accepted = [r.code // 100 == 2 for r in rcpts]
        final: Reply | None = None
        if mail.is_positive and any(accepted):
            if bdat:
                final = await self._send_bdat(content)
            elif data is not None and data.code == 354:
                final = await self._send_data(content)
            else:
                final = data
        elif data is not None and data.code == 354:
            await self._write(self._conn.data_abort(), self._timeouts.data_block)
            await self._reply(self._timeouts.data_end)
        await self._reset_if_needed()
        out: list[Reply] = []
        for ok, rcpt in zip(accepted, rcpts, strict=True):
            if not mail.is_positive:
                out.append(mail)
            elif not ok:
                out.append(rcpt)
            else:
                out.append(final if final is not None else rcpt)
        return tuple(out)

    def _plan(self, envelope: Envelope) -> MailParams | Reply:
        """MAIL parameters for this server, or the local refusal. Spec: RFC 6152 §3,
        RFC 6531 §3.2, RFC 1870 §5, RFC 3461 §4, RFC 8689 §4."""
        ext = self.extensions
        binary = envelope.body is Body.BINARY_MIME
        if binary and not (ext.binary_mime and ext.chunking):
            return Reply(554, "5.6.3", "Binary content and the server does not offer BINARYMIME")
        if envelope.requiretls and not (self._conn.tls_active and ext.requiretls):
            return Reply(550, "5.7.30", "REQUIRETLS support required")
        needs_utf8 = envelope.smtputf8 or not (
            str(envelope.reverse_path).isascii()
            and all(str(path).isascii() for path, _ in envelope.recipients)
        )
        plan = plan_transaction(
            ext,
            message_is_8bit=envelope.body is Body.EIGHT_BIT_MIME,
            needs_smtputf8=needs_utf8,
            size=envelope.size,
        )
        if isinstance(plan, CannotDeliver):
            return plan.reply
        if isinstance(plan, NeedsConversion):
            return Reply(554, "5.6.3", f"Conversion required and not supported: {plan.reason}")
        params = plan.params
        if binary:
            params = replace(params, body=Body.BINARY_MIME)
        if ext.dsn:
            params = replace(params, ret=envelope.ret, envid=envelope.envid)
        return params

    async def _envelope(
        self, envelope: Envelope, params: MailParams, bdat: bool
    ) -> tuple[Reply, list[Reply], Reply | None]:
        """MAIL, RCPT..., and DATA unless ``bdat``: in one write when pipelining, else
        one by one. Returns the MAIL reply, the RCPT replies, the DATA reply (None when
        not sent). Spec: RFC 2920 §3.1; RFC 5321 §4.1.1.2-§4.1.1.4."""
        conn, t = self._conn, self._timeouts
        dsn = self.extensions.dsn
        paths = [(p, rp if dsn else RcptParams()) for p, rp in envelope.recipients]
        mail_out = conn.mail(envelope.reverse_path, params, requiretls=envelope.requiretls)
        if self._config_pipelining():
            out = mail_out + b"".join(conn.rcpt(p, rp) for p, rp in paths)
            out += b"" if bdat else conn.data()
            await self._write(out, t.mail)
            mail = await self._reply(t.mail)
            rcpts = [await self._reply(t.rcpt) for _ in paths]
            data = None if bdat else await self._reply(t.data_init)
            return mail, rcpts, data
        await self._write(mail_out, t.mail)
        mail = await self._reply(t.mail)
        if not mail.is_positive:
            return mail, [mail] * len(paths), None
        rcpts = []
        for p, rp in paths:
            await self._write(conn.rcpt(p, rp), t.rcpt)
            rcpts.append(await self._reply(t.rcpt))
        if bdat or conn.recipients_accepted == 0:
            return mail, rcpts, None
        await self._write(conn.data(), t.data_init)
        return mail, rcpts, await self._reply(t.data_init)

    def _config_pipelining(self) -> bool:
        return self.extensions.pipelining

    async def _send_data(self, content: AsyncIterator[bytes]) -> Reply:
        """The content after 354, streamed, normalised and dot-stuffed by the core.
        Spec: RFC 5321 §4.1.1.4, §4.5.2, §4.5.3.2.5-6."""
        feed = _Handoff()
        pieces = self._conn.message_chunks(feed)
        out: list[bytes] = []
        gathered = 0
        carry = b""
        async for chunk in content:
            data = carry + chunk
            carry = b""
            if data.endswith(b"\r"):  # its LF may start the next chunk
                data, carry = data[:-1], b"\r"
            if data:
                feed.chunks.append(data)
                piece = next(pieces)
                out.append(piece)
                gathered += len(piece)
                if gathered >= DATA_WRITE_MIN:
                    await self._write(b"".join(out), self._timeouts.data_block)
                    out.clear()
                    gathered = 0
        if carry:
            feed.chunks.append(carry)
        feed.closed = True
        out.extend(pieces)
        await self._write(b"".join(out), self._timeouts.data_block)
        return await self._reply(self._timeouts.data_end)

    async def _send_bdat(self, content: AsyncIterator[bytes]) -> Reply:
        """The content in BDAT chunks, as stored; the last one is ``BDAT n LAST``.
        Returns the first refusal or the reply to the last chunk. Spec: RFC 3030 §2, §4.2."""
        pipelined = self._config_pipelining()
        held: bytes | None = None
        refusal: Reply | None = None
        async for chunk in content:
            if held is not None:
                refusal = await self._bdat(held, last=False, pipelined=pipelined)
                if refusal is not None:
                    break
            held = chunk
        if refusal is None:
            refusal = await self._bdat(held or b"", last=True, pipelined=pipelined)
        final = refusal
        while self._conn.outstanding:
            reply = await self._reply(self._timeouts.data_end)
            if final is None or (final.is_positive and not reply.is_positive):
                final = reply
        assert final is not None
        return final

    async def _bdat(self, chunk: bytes, *, last: bool, pipelined: bool) -> Reply | None:
        """Send one chunk; returns a refusal seen so far (None: none yet)."""
        if self._conn.phase is Phase.FAILED:
            return Reply(554, "5.5.0", "BDAT refused")
        await self._write(self._conn.bdat(chunk, last=last), self._timeouts.data_block)
        window = 0 if not pipelined or last else BDAT_IN_FLIGHT_MAX
        while len(self._conn.outstanding) > window:
            timeout = self._timeouts.data_end if last else self._timeouts.data_block
            reply = await self._reply(timeout)
            if not reply.is_positive:
                return reply
            if last and not self._conn.outstanding:
                return reply
        return None

    async def _reset_if_needed(self) -> None:
        """RSET after a refused or abandoned transaction. Spec: RFC 5321 §4.1.1.5."""
        while self._conn.outstanding:
            await self._reply(self._timeouts.data_end)
        if self._conn.phase is not Phase.IDLE:
            await self._write(self._conn.rset(), self._timeouts.hello)
            reply = await self._reply(self._timeouts.hello)
            if reply.code // 100 != 2:
                raise SessionError(f"451 4.4.2 RSET refused: {format_reply(reply)}")

    # -- closing ---------------------------------------------------------------------------
    async def close(self) -> None:
        """QUIT (its reply awaited briefly), then close. Never raises.
        Spec: RFC 5321 §4.1.1.10."""
        await self._quietly_quit()
        self._link.close()

    def abort(self) -> None:
        """Close at once, without QUIT."""
        self._link.close()

    async def _quietly_quit(self) -> None:
        if self._conn.closed or self._conn.outstanding:
            return
        try:
            await self._write(self._conn.quit(), self._timeouts.quit)
            await self._event(self._timeouts.quit)
        except (SessionError, LocalProtocolError, OSError, TimeoutError):
            pass

    # -- I/O -------------------------------------------------------------------------------
    async def _write(self, data: bytes, timeout: float) -> None:
        try:
            if self._link.send(data):  # taken at once: no timer needed
                return
            async with asyncio.timeout(timeout):
                await self._link.drain()
        except TimeoutError:
            raise SessionError(f"451 4.4.2 Timeout writing to {_where(self.target)}") from None
        except OSError as exc:
            raise SessionError(
                f"451 4.4.2 Lost connection with {_where(self.target)}: {exc}"
            ) from None

    async def _event(self, timeout: float) -> ClientEvent:
        """The next event, reading as needed. Raises SessionError for 421, EOF, a
        protocol error or a timeout. Spec: RFC 5321 §3.8, §4.5.3.2."""
        while True:
            try:
                event = self._conn.next_event()
            except SmtpClientProtocolError as exc:
                raise SessionError(
                    f"451 4.5.0 Protocol error from {_where(self.target)}: {exc}"
                ) from None
            if not isinstance(event, NeedData):
                break
            data = self._link.read_nowait()  # already there: no timer needed
            if data is None:
                try:
                    async with asyncio.timeout(timeout):
                        data = await self._link.read()
                except TimeoutError:
                    raise SessionError(
                        f"451 4.4.2 Timeout waiting for {_where(self.target)}"
                    ) from None
            self._conn.receive_data(data)
        if isinstance(event, ServiceClosing):
            self.usable = False
            raise SessionError(format_reply(event.reply))
        if isinstance(event, ConnectionClosed):
            self.usable = False
            raise SessionError(f"451 4.4.2 {_where(self.target)} closed the connection")
        return event

    async def _reply(self, timeout: float) -> Reply:
        return _reply_of(await self._event(timeout))


def _reply_of(event: ClientEvent) -> Reply:
    if isinstance(event, ReplyReceived | EhloDone | Greeting):
        return event.reply
    raise SessionError(f"451 4.5.0 Unexpected event {type(event).__name__}")


def _where(target: Target) -> str:
    return f"{target.host}[{target.address}]"


__all__ = ["Envelope", "OutboundSession", "SessionError", "format_reply"]
