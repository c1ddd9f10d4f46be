"""Sans-IO SMTP client connection (sending side: MX delivery and smarthost), h11 style.

The driver writes the bytes each command method returns, feeds what the server sends
to ``receive_data`` and pulls events with ``next_event``. Replies are matched to
commands in send order, so the same loop serves pipelined and lock-step sessions.

Pipelining (RFC 2920 §3.1): with PIPELINING offered, a command may be sent while
others await replies, as long as none of those is one that must end a group (EHLO,
HELO, STARTTLS, AUTH, DATA, NOOP, QUIT). Without it, every command waits for the
previous reply. Message content may start a group, so MAIL or QUIT may follow the
final dot at once.

All RCPTs refused and DATA pipelined (RFC 2920 §3.1): a conforming server then answers
DATA with 554 or 503 and the client sends RSET. A server that answers 354 anyway gets a
lone dot: ``message()`` refuses (LocalProtocolError) while ``recipients_accepted`` is 0,
and ``data_abort()`` sends ``.CRLF``; its reply comes as ``Command.MESSAGE``.

Transactions: after the final dot or BDAT LAST the transaction is over whatever the
reply (RFC 5321 §4.1.1.4). After a refused MAIL, DATA or BDAT chunk the transaction is
failed: only RSET (or QUIT, EHLO) may follow (RFC 3030 §2, RFC 5321 §4.1.1.5).

Spec: RFC 5321 §4.1, §4.3.2, §3.8; RFC 2920; RFC 3030; RFC 3207; RFC 4954.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from postel import limits
from postel.errors import LocalProtocolError
from postel.smtp.client_content import (
    DotStuffer,
    check_mail_params,
    mail_parameters,
    rcpt_parameters,
    stuff_message,
)
from postel.smtp.client_events import (
    NEED_DATA,
    AuthChallenge,
    ClientEvent,
    Command,
    ConnectionClosed,
    EhloDone,
    Extensions,
    Greeting,
    NeedData,
    Phase,
    ReplyReceived,
    ServiceClosing,
)
from postel.smtp.client_replies import (
    ReplyReader,
    SmtpClientProtocolError,
    parse_extensions,
)
from postel.smtp.grammar import Path
from postel.smtp.params import Body, MailParams, RcptParams
from postel.smtp.reply import Reply

_GROUP_ENDERS = frozenset(
    {Command.EHLO, Command.HELO, Command.STARTTLS, Command.AUTH, Command.DATA}
    | {Command.NOOP, Command.QUIT}
)
"""Commands that must be the last of a pipelined group. Spec: RFC 2920 §3.1,
RFC 3207 §4.2, RFC 4954 §4."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Settings of one outbound session.

    Args:
        hostname: our name for EHLO/HELO (RFC 5321 §4.1.1.1), a domain or an address
            literal.
        pipelining: pipeline when the server offers PIPELINING (RFC 2920); when False,
            every command waits for the previous reply.

    Raises:
        LocalProtocolError: empty hostname, or one with spaces or control characters.

    Spec: RFC 5321 §4.1.1.1, RFC 2920 §3.
    """

    hostname: str
    pipelining: bool = True

    def __post_init__(self) -> None:
        _check_word(self.hostname, "hostname")


@dataclass(frozen=True, slots=True)
class _Pending:
    """A command sent and not yet answered."""

    command: Command
    path: Path | None = None
    transaction: int = 0


def _check_word(text: str, what: str) -> None:
    """ASCII, printable, no space: EHLO names are A-labels or address literals
    (RFC 6531 §3.7.1), SASL mechanism names are ASCII (RFC 4422 §3.1)."""
    if not text or not text.isascii() or not text.isprintable() or " " in text:
        raise LocalProtocolError(f"bad {what} {text[:40]!r}")


class ClientConnection:
    """One SMTP client session, without I/O.

    Usage: connect; loop ``next_event()`` (on ``NeedData`` read and ``receive_data``);
    after ``Greeting`` send ``ehlo()``; after ``EhloDone`` send MAIL/RCPT/DATA ...
    Server input never raises anything but ``SmtpClientProtocolError``; driver misuse
    (a command the session state does not allow) raises ``LocalProtocolError``.

    Spec: RFC 5321 §4.1, §4.3.2; RFC 2920 §3.
    """

    def __init__(self, config: ClientConfig, *, tls_active: bool = False) -> None:
        self.config = config
        self._tls_active = tls_active
        self._reader = ReplyReader()
        self._pending: deque[_Pending] = deque()
        self._greeted = False
        self._tls_pending = False
        self._closed = False
        self._eof = False
        self._extensions: Extensions | None = None
        self._authenticated = False
        self._challenge = False
        self._deferred_response = False
        self._phase = Phase.IDLE
        self._transaction = 0
        self._recipients_accepted = 0
        self._stuffer: DotStuffer | None = None
        self._smtputf8 = False
        self._binary = False

    # --- introspection ------------------------------------------------------------
    @property
    def extensions(self) -> Extensions | None:
        """What the server offers; None before an accepted EHLO/HELO (and after
        STARTTLS). Spec: RFC 3207 §4.2."""
        return self._extensions

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def recipients_accepted(self) -> int:
        """RCPTs of the current transaction answered 2xx so far."""
        return self._recipients_accepted

    @property
    def outstanding(self) -> tuple[Command, ...]:
        """Commands sent and not yet answered, oldest first."""
        return tuple(item.command for item in self._pending)

    @property
    def buffered(self) -> int:
        """Octets of server input held (bounded by the reply bounds)."""
        return self._reader.buffered

    # --- input ----------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add bytes from the server; ``b""`` means EOF. Ignored once the session is
        over; bytes after STARTTLS's 220 are discarded (RFC 3207 §5)."""
        if not data:
            self._eof = True
            return
        if self._closed or self._tls_pending or self._eof:
            return
        self._reader.feed(data)

    def next_event(self) -> ClientEvent | NeedData:
        """The next event, or NEED_DATA.

        Raises:
            SmtpClientProtocolError: the server's bytes break the protocol (then the
                session is over: later calls return ConnectionClosed).
            LocalProtocolError: called while a STARTTLS handshake is pending.

        Spec: RFC 5321 §4.2, RFC 2920 §3.1.
        """
        if self._closed:
            return ConnectionClosed(self.outstanding)
        if self._tls_pending:
            raise LocalProtocolError("TLS handshake pending: call tls_established()")
        try:
            reply = self._reader.next_reply()
            if reply is None:
                if self._eof:
                    self._closed = True
                    return ConnectionClosed(self.outstanding)
                return NEED_DATA
            return self._on_reply(reply)
        except SmtpClientProtocolError:
            self._closed = True
            raise

    # --- replies --------------------------------------------------------------------
    def _on_reply(self, reply: Reply) -> ClientEvent:
        if reply.code == 421:
            event = ServiceClosing(reply, self.outstanding)
            self._closed = True
            return event
        if not self._greeted:
            self._greeted = True
            return Greeting(reply)
        if not self._pending:
            raise SmtpClientProtocolError(f"unexpected reply {reply.code}")
        head = self._pending[0]
        if reply.code == 334:
            if head.command is not Command.AUTH:
                raise SmtpClientProtocolError("334 reply to a command other than AUTH")
            return self._on_challenge(reply)
        self._pending.popleft()
        return _HANDLERS.get(head.command, ClientConnection._after_plain)(self, head, reply)

    def _on_challenge(self, reply: Reply) -> AuthChallenge:
        raw = reply.text if isinstance(reply.text, str) else " ".join(reply.text)
        try:
            challenge = base64.b64decode(raw.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise SmtpClientProtocolError("334 challenge is not base64") from None
        self._challenge = True
        deferred, self._deferred_response = self._deferred_response, False
        return AuthChallenge(challenge, send_initial_response=deferred)

    def _after_plain(self, head: _Pending, reply: Reply) -> ClientEvent:
        return ReplyReceived(head.command, reply, head.path)

    def _after_ehlo(self, head: _Pending, reply: Reply) -> ClientEvent:
        if reply.code // 100 != 2:
            return ReplyReceived(head.command, reply)
        self._extensions = parse_extensions(reply)
        return EhloDone(self._extensions, reply)

    def _after_helo(self, head: _Pending, reply: Reply) -> ClientEvent:
        if reply.code // 100 == 2:
            self._extensions = Extensions()
        return ReplyReceived(head.command, reply)

    def _after_starttls(self, head: _Pending, reply: Reply) -> ClientEvent:
        if reply.code == 220:
            self._tls_pending = True
            self._reader.clear()
        return ReplyReceived(head.command, reply)

    def _after_auth(self, head: _Pending, reply: Reply) -> ClientEvent:
        self._challenge = self._deferred_response = False
        if reply.code == 235:
            self._authenticated = True
        return ReplyReceived(head.command, reply)

    def _after_mail(self, head: _Pending, reply: Reply) -> ClientEvent:
        if not reply.is_positive and self._current(head):
            self._phase = Phase.FAILED
        return ReplyReceived(head.command, reply, head.path)

    def _after_rcpt(self, head: _Pending, reply: Reply) -> ClientEvent:
        if reply.code // 100 == 2 and self._current(head):
            self._recipients_accepted += 1
        return ReplyReceived(head.command, reply, head.path)

    def _after_data(self, head: _Pending, reply: Reply) -> ClientEvent:
        if self._current(head):
            self._phase = Phase.CONTENT if reply.code == 354 else Phase.FAILED
        return ReplyReceived(head.command, reply)

    def _after_bdat(self, head: _Pending, reply: Reply) -> ClientEvent:
        if head.command is Command.BDAT and not reply.is_positive and self._current(head):
            self._phase = Phase.FAILED
        return ReplyReceived(head.command, reply)

    def _after_quit(self, head: _Pending, reply: Reply) -> ClientEvent:
        self._closed = True
        return ReplyReceived(head.command, reply)

    def _current(self, head: _Pending) -> bool:
        return head.transaction == self._transaction and self._phase is not Phase.IDLE

    # --- output: session ------------------------------------------------------------
    def _send(self, pending: _Pending, line: str | bytes) -> bytes:
        """Check that ``pending`` may be sent now, queue it, return the line."""
        if self._closed:
            raise LocalProtocolError("the session is over")
        if not self._greeted:
            raise LocalProtocolError("wait for the greeting (RFC 5321 §3.1)")
        if self._tls_pending:
            raise LocalProtocolError("TLS handshake pending")
        if self._challenge:
            raise LocalProtocolError("an AUTH challenge awaits auth_response()")
        if self._pending:
            pipelining = self.config.pipelining and bool(
                self._extensions and self._extensions.pipelining
            )
            if not pipelining:
                raise LocalProtocolError("wait for the reply: the server does not pipeline")
            if any(item.command in _GROUP_ENDERS for item in self._pending):
                raise LocalProtocolError("wait for the reply (RFC 2920 §3.1)")
        self._pending.append(pending)
        wire = line.encode("utf-8") if isinstance(line, str) else line
        return wire + b"\r\n"

    def _need_phase(self, *phases: Phase) -> None:
        if self._phase not in phases:
            raise LocalProtocolError(f"not allowed in transaction phase {self._phase.name}")

    def _need_extensions(self) -> Extensions:
        if self._extensions is None:
            raise LocalProtocolError("send EHLO (or HELO) first")
        return self._extensions

    def ehlo(self, name: str | None = None) -> bytes:
        """``EHLO name`` (default: the config's hostname); any transaction is dropped.
        Spec: RFC 5321 §4.1.1.1, §3.2."""
        return self._hello(Command.EHLO, name)

    def helo(self, name: str | None = None) -> bytes:
        """``HELO name``, the fallback when EHLO is refused with 5xx (no extensions
        then). Spec: RFC 5321 §3.2, §4.1.1.1."""
        return self._hello(Command.HELO, name)

    def _hello(self, command: Command, name: str | None) -> bytes:
        name = name or self.config.hostname
        _check_word(name, "EHLO/HELO name")
        self._need_phase(Phase.IDLE, Phase.FAILED)
        out = self._send(_Pending(command), f"{command.value} {name}")
        self._extensions = None
        self._end_transaction()
        return out

    def starttls(self) -> bytes:
        """``STARTTLS``; on 220 do the handshake and call ``tls_established``.
        Raises LocalProtocolError if not offered or TLS is already on. Spec: RFC 3207 §4."""
        if self._tls_active or not self._need_extensions().starttls:
            raise LocalProtocolError("STARTTLS not offered or TLS already active")
        self._need_phase(Phase.IDLE)
        return self._send(_Pending(Command.STARTTLS), "STARTTLS")

    def tls_established(self) -> None:
        """The handshake after STARTTLS's 220 succeeded: forget the extensions (send
        EHLO again) and any plaintext read ahead. Spec: RFC 3207 §4.2, §5."""
        if not self._tls_pending:
            raise LocalProtocolError("no STARTTLS handshake is pending")
        self._tls_pending = False
        self._tls_active = True
        self._extensions = None
        self._authenticated = False
        self._reader.clear()

    def auth(self, mechanism: str, initial_response: bytes | None = None) -> bytes:
        """``AUTH mechanism [initial-response]`` (base64; ``=`` for an empty one).

        A 334 comes as AuthChallenge, the outcome (235 or an error) as ReplyReceived.
        An initial response that would make the line longer than 512 octets is not
        sent: the server's first (empty) challenge then has ``send_initial_response``
        set; answer it with the initial response. Spec: RFC 4954 §4, RFC 4422 §5.1."""
        _check_word(mechanism, "SASL mechanism")
        if not self._need_extensions().auth or self._authenticated:
            raise LocalProtocolError("AUTH not offered, or already authenticated")
        self._need_phase(Phase.IDLE)
        line = f"AUTH {mechanism.upper()}"
        if initial_response is not None:
            encoded = base64.b64encode(initial_response).decode("ascii") or "="
            if len(line) + len(encoded) + 3 <= limits.SMTP_COMMAND_LINE_MAX:
                line += " " + encoded
            else:
                self._deferred_response = True
        return self._send(_Pending(Command.AUTH), line)

    def auth_response(self, data: bytes) -> bytes:
        """Answer an AuthChallenge with ``data`` (base64-encoded here).
        Spec: RFC 4954 §4."""
        return self._answer_challenge(base64.b64encode(data))

    def auth_cancel(self) -> bytes:
        """Cancel the exchange with ``*`` (the server answers 501). Spec: RFC 4954 §4."""
        return self._answer_challenge(b"*")

    def _answer_challenge(self, line: bytes) -> bytes:
        if not self._challenge:
            raise LocalProtocolError("no AUTH challenge is pending")
        self._challenge = False
        return line + b"\r\n"

    def noop(self) -> bytes:
        """``NOOP``. Spec: RFC 5321 §4.1.1.9."""
        self._need_phase(Phase.IDLE, Phase.MAIL, Phase.FAILED, Phase.BDAT)
        return self._send(_Pending(Command.NOOP), "NOOP")

    def quit(self) -> bytes:
        """``QUIT``; after its reply the session is over. Spec: RFC 5321 §4.1.1.10."""
        self._need_phase(Phase.IDLE, Phase.MAIL, Phase.FAILED, Phase.BDAT)
        return self._send(_Pending(Command.QUIT), "QUIT")

    def rset(self) -> bytes:
        """``RSET``: drop the transaction. Spec: RFC 5321 §4.1.1.5."""
        self._need_phase(Phase.IDLE, Phase.MAIL, Phase.FAILED, Phase.BDAT)
        out = self._send(_Pending(Command.RSET), "RSET")
        self._end_transaction()
        return out

    def _end_transaction(self) -> None:
        self._phase = Phase.IDLE
        self._transaction += 1
        self._recipients_accepted = 0
        self._stuffer = None

    # --- output: transaction ----------------------------------------------------------
    def mail(
        self,
        reverse_path: Path,
        params: MailParams | None = None,
        *,
        requiretls: bool = False,
    ) -> bytes:
        """``MAIL FROM:<reverse-path> [params]`` opening a transaction.

        Raises LocalProtocolError: a transaction is open, a parameter's extension is not
        offered (SIZE, 8BITMIME, BINARYMIME + CHUNKING, SMTPUTF8, DSN, REQUIRETLS), or a
        non-ASCII path without SMTPUTF8.
        Spec: RFC 5321 §4.1.1.2; RFC 1870, RFC 6152, RFC 3030 §3, RFC 6531 §3.4,
        RFC 3461 §4, RFC 8689 §4.
        """
        params = params or MailParams()
        ext = self._need_extensions()
        self._need_phase(Phase.IDLE)
        check_mail_params(ext, params, requiretls=requiretls, tls=self._tls_active)
        if not str(reverse_path).isascii() and not params.smtputf8:
            raise LocalProtocolError("non-ASCII reverse-path needs SMTPUTF8 (RFC 6531 §3.2)")
        words = [f"MAIL FROM:{reverse_path}", *mail_parameters(params, requiretls=requiretls)]
        pending = _Pending(Command.MAIL, reverse_path, self._transaction + 1)
        out = self._send(pending, " ".join(words))
        self._transaction += 1
        self._phase = Phase.MAIL
        self._recipients_accepted = 0
        self._smtputf8 = params.smtputf8
        self._binary = params.body is Body.BINARY_MIME
        return out

    def rcpt(self, forward_path: Path, params: RcptParams | None = None) -> bytes:
        """``RCPT TO:<forward-path> [NOTIFY=...] [ORCPT=...]``.
        Raises LocalProtocolError outside a transaction, for DSN parameters without DSN,
        or a non-ASCII path without SMTPUTF8 on MAIL. Spec: RFC 5321 §4.1.1.3, RFC 3461 §4."""
        params = params or RcptParams()
        self._need_phase(Phase.MAIL)
        if (params.notify is not None or params.orcpt is not None) and not (
            self._need_extensions().dsn
        ):
            raise LocalProtocolError("NOTIFY/ORCPT need DSN (RFC 3461 §4)")
        if not str(forward_path).isascii() and not self._smtputf8:
            raise LocalProtocolError("non-ASCII forward-path needs SMTPUTF8 (RFC 6531 §3.2)")
        words = [f"RCPT TO:{forward_path}", *rcpt_parameters(params)]
        return self._send(_Pending(Command.RCPT, forward_path, self._transaction), " ".join(words))

    def data(self) -> bytes:
        """``DATA``. On ``ReplyReceived(DATA, 354)`` send ``message`` (or ``data_abort``
        if no recipient was accepted). Raises LocalProtocolError when no RCPT was sent,
        or all RCPT replies are in and none accepted (send RSET: RFC 2920 §3.1), or for
        BODY=BINARYMIME (RFC 3030 §3). Spec: RFC 5321 §4.1.1.4."""
        self._need_phase(Phase.MAIL)
        rcpts = [
            item
            for item in self._pending
            if item.command is Command.RCPT and item.transaction == self._transaction
        ]
        if self._binary:
            raise LocalProtocolError("BODY=BINARYMIME needs BDAT (RFC 3030 §3)")
        if not rcpts and self._recipients_accepted == 0:
            raise LocalProtocolError("no recipient accepted: send RSET")
        out = self._send(_Pending(Command.DATA, None, self._transaction), "DATA")
        self._phase = Phase.DATA
        return out

    def message(self, content: bytes) -> bytes:
        """The whole content after 354, normalised to CRLF, dot-stuffed, ending
        ``CRLF.CRLF``. Raises LocalProtocolError unless 354 was received and at least
        one recipient accepted. Spec: RFC 5321 §4.1.1.4, §4.5.2, §2.3.8."""
        self._start_content()
        return self._finish_content(stuff_message(content))

    def message_chunks(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Streaming form of ``message``: yields encoded pieces, the last one with the
        end marker. The transaction moves on only when the iterator is exhausted.
        Raises LocalProtocolError at once, as ``message`` does.
        Spec: RFC 5321 §4.1.1.4, §4.5.2."""
        self._start_content()
        stuffer = self._stuffer = DotStuffer()
        return self._stream(stuffer, chunks)

    def _stream(self, stuffer: DotStuffer, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self._stuffer is not stuffer:
                raise LocalProtocolError("session state changed while streaming")
            piece = stuffer.feed(chunk)
            if piece:
                yield piece
        yield self._finish_content(stuffer.end())

    def data_abort(self) -> bytes:
        """A lone ``.CRLF`` after a 354 that came although no RCPT was accepted (a
        pipelined DATA): the server gets an empty message for no recipient and should
        refuse it. Spec: RFC 2920 §3.1."""
        self._need_phase(Phase.CONTENT)
        if self._stuffer is not None:
            raise LocalProtocolError("message content already started")
        return self._finish_content(b".\r\n")

    def _start_content(self) -> None:
        self._need_phase(Phase.CONTENT)
        if self._stuffer is not None:
            raise LocalProtocolError("message content already started")
        if self._recipients_accepted == 0:
            raise LocalProtocolError("no recipient accepted: use data_abort() (RFC 2920 §3.1)")

    def _finish_content(self, tail: bytes) -> bytes:
        self._pending.append(_Pending(Command.MESSAGE, None, self._transaction))
        self._end_transaction()
        return tail

    def bdat(self, chunk: bytes, *, last: bool) -> bytes:
        """``BDAT size [LAST]`` followed by the chunk, sent as is (no stuffing).
        BDAT may be pipelined. An empty chunk is allowed only with ``last``.
        Raises LocalProtocolError without CHUNKING or outside a transaction.
        Spec: RFC 3030 §2, §4.2."""
        if not self._need_extensions().chunking:
            raise LocalProtocolError("CHUNKING not offered")
        self._need_phase(Phase.MAIL, Phase.BDAT)
        if not chunk and not last:
            raise LocalProtocolError("an empty BDAT chunk must be LAST")
        command = Command.BDAT_LAST if last else Command.BDAT
        pending = _Pending(command, None, self._transaction)
        head = f"BDAT {len(chunk)} LAST" if last else f"BDAT {len(chunk)}"
        out = self._send(pending, head) + chunk
        if last:
            self._end_transaction()
        else:
            self._phase = Phase.BDAT
        return out


_HANDLERS = {
    Command.EHLO: ClientConnection._after_ehlo,
    Command.HELO: ClientConnection._after_helo,
    Command.STARTTLS: ClientConnection._after_starttls,
    Command.AUTH: ClientConnection._after_auth,
    Command.MAIL: ClientConnection._after_mail,
    Command.RCPT: ClientConnection._after_rcpt,
    Command.DATA: ClientConnection._after_data,
    Command.BDAT: ClientConnection._after_bdat,
    Command.BDAT_LAST: ClientConnection._after_bdat,
    Command.QUIT: ClientConnection._after_quit,
}
"""Reply handler per command; others just report the reply. Spec: RFC 5321 §4.3.2."""
