"""Sans-IO SMTP server connection (receiving side, port-25 role), in the h11 style.

The driver feeds bytes with ``receive_data``, pulls events with ``next_event`` and
writes what ``send(reply)`` returns. Every event that needs a reply blocks the next
event until the reply is sent, so replies leave in command order even when the client
pipelines (RFC 2920 §3), and the core never interprets bytes before the reply that
decides how to read them (after DATA, after STARTTLS).

Leniency, and where there is none:

* ``MAIL FROM: <a@b>`` (spaces after the colon) and runs of spaces between parameters
  are accepted: common clients send them and nothing becomes ambiguous.
* A path without angle brackets (``MAIL FROM:a@b``) is refused with 501 5.5.2: the
  grammar requires them, and guessing where a bare address ends is how two parsers
  come to disagree about an envelope.
* The EHLO/HELO argument is taken as given (any non-empty text): judging it is policy.
* Only CRLF ends a command line; a bare CR or LF in one is 500 5.5.2 (RELIABILITY.md D4).

Spec: RFC 5321, RFC 2920, RFC 3030, RFC 3207, RFC 1870, RFC 6152, RFC 6531, RFC 3461.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from postel import limits
from postel.errors import LocalProtocolError
from postel.smtp import reply as R
from postel.smtp.events import (
    NEED_DATA,
    AuthLine,
    AuthRequested,
    AutoReply,
    ChunkReceived,
    ConnectionClosed,
    DataStarted,
    Event,
    Hello,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRejected,
    NeedData,
    Quit,
    RcptTo,
    Reset,
    StartTls,
    TooManyErrors,
)
from postel.smtp.grammar import Path, SmtpSyntaxError, split_path
from postel.smtp.params import Body, MailParams, Offered, parse_mail_params, parse_rcpt_params
from postel.smtp.reply import Reply
from postel.smtp.session import COMMANDS, ServerConfig, State
from postel.smtp.transparency import DotReader

_HARD_MAX = limits.SMTP_COMMAND_LINE_HARD_MAX
_BDAT_ARG = re.compile(r"([0-9]{1,20})(?: +(LAST))? *", re.IGNORECASE)
_MAIL_ARG = re.compile(r"FROM: *", re.IGNORECASE)
_RCPT_ARG = re.compile(r"TO: *", re.IGNORECASE)
_COUNTED = frozenset({500, 501, 502, 503, 504, 553, 555})
_AUTH_PARAM = re.compile(r" +AUTH=[^ ]*", re.IGNORECASE)
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
"""MAIL before AUTH where AUTH is required. Spec: RFC 4954 §6."""
"""Reply codes that count toward ``errors_max``: the client's protocol mistakes."""


class _Due(enum.Enum):
    """What the pending reply answers; decides the transition in ``send``."""

    AUTO = enum.auto()
    HELLO = enum.auto()
    MAIL = enum.auto()
    RCPT = enum.auto()
    DATA = enum.auto()
    MESSAGE = enum.auto()
    CHUNK = enum.auto()
    STARTTLS = enum.auto()
    AUTH = enum.auto()
    CLOSE = enum.auto()


@dataclass(slots=True)
class _Chunk:
    """One BDAT chunk being read: octets left, and what to answer at its end."""

    remaining: int
    size: int
    last: bool
    auto: Reply | None = None
    """Answer this (an error) instead of accepting; content is discarded."""
    rejected: Reply | None = None
    """Refuse the whole message (MessageRejected); content is discarded."""


class ServerConnection:
    """One SMTP server session, without I/O.

    Usage: ``out = conn.greeting()``; then loop on ``next_event()``; answer events that
    need a reply with ``send(reply)``; on ``NeedData`` read and ``receive_data(bytes)``.
    Client input never raises; only driver misuse raises ``LocalProtocolError``.

    Spec: RFC 5321 §4.1, §4.3.2; RFC 2920 §3 (reply order).
    """

    def __init__(self, config: ServerConfig, *, tls_active: bool = False) -> None:
        self.config = config
        self._state = State.CONNECTED
        self._tls_active = tls_active
        self._extended = False
        self._buf = bytearray()
        self._eof = False
        self._discarding = False
        self._due: _Due | None = None
        self._queued: tuple[Event, _Due] | None = None
        self._errors = 0
        self._data: DotReader | None = None
        self._chunk: _Chunk | None = None
        self._hello_extended = False
        self._pending_mail: MailParams | None = None
        self._mail: MailParams | None = None
        self._recipients = 0
        self._bdat_total = 0
        self._auth_offer: tuple[str, ...] = tuple(m.upper() for m in config.auth_mechanisms)
        self._auth_pending = False
        self._authenticated = False

    # --- introspection ------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def extended(self) -> bool:
        """True after an accepted EHLO (ESMTP session)."""
        return self._extended

    @property
    def errors(self) -> int:
        """Protocol errors counted so far."""
        return self._errors

    @property
    def buffered(self) -> int:
        """Octets held by the core: at most one command line (hard cut) plus the last
        chunk given to ``receive_data``."""
        return len(self._buf)

    @property
    def authenticated(self) -> bool:
        """True after AUTH was answered 235 (until STARTTLS resets the session)."""
        return self._authenticated

    def offer_auth(self, mechanisms: tuple[str, ...]) -> None:
        """Set the SASL mechanisms EHLO advertises and AUTH accepts from now on (the
        driver offers plaintext mechanisms only over TLS). Spec: RFC 4954 §3."""
        self._auth_offer = tuple(m.upper() for m in mechanisms)

    @property
    def reply_due(self) -> bool:
        """True while ``send`` must be called before ``next_event``."""
        return self._due is not None

    # --- driver API -----------------------------------------------------------------
    def greeting(self, reply: Reply | None = None) -> bytes:
        """Render the opening reply: 220 by default; 554 refuses the session (only QUIT
        is then accepted), 421 closes it. Raises LocalProtocolError if called twice.
        Spec: RFC 5321 §3.1, §4.3.1."""
        if self._state is not State.CONNECTED:
            raise LocalProtocolError("greeting already sent")
        reply = reply or Reply(220, None, f"{self.config.hostname} ESMTP")
        if reply.code == 220:
            self._state = State.INITIAL
        elif reply.code == 554:
            self._state = State.REFUSED
        else:
            self._state = State.CLOSED
        return reply.render()

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the client; ``b""`` means EOF. Bytes arriving between STARTTLS
        and ``tls_established`` are discarded (RFC 3207 §5, CVE-2011-0411).
        Raises LocalProtocolError for data after EOF."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data after EOF")
        if self._state in (State.CLOSED, State.TLS_PENDING) or self._due is _Due.STARTTLS:
            return
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA. Raises LocalProtocolError while a reply is due
        or before the greeting. Spec: RFC 2920 §3."""
        if self._due is not None:
            raise LocalProtocolError(f"a reply is due ({self._due.name}); call send() first")
        if self._queued is not None:
            event, due = self._queued
            self._queued = None
            return self._emit(event, due)
        if self._state is State.CONNECTED:
            raise LocalProtocolError("send the greeting first")
        if self._state is State.CLOSED:
            return ConnectionClosed()
        if self._state is State.TLS_PENDING:
            return self._close() if self._eof else NEED_DATA
        if self._data is not None:
            return self._next_data()
        if self._chunk is not None:
            return self._next_chunk()
        return self._next_command()

    def send(self, reply: Reply) -> bytes:
        """Render the reply to the pending event and apply its transition (a 2xx/3xx
        accepts, 4xx/5xx refuses). Raises LocalProtocolError when no reply is due.
        Spec: RFC 5321 §4.2, §4.3.2."""
        if self._due is None:
            raise LocalProtocolError("no reply is due")
        due, self._due = self._due, None
        _TRANSITIONS[due](self, reply)
        return reply.render()

    def tls_established(self) -> None:
        """The TLS handshake after our 220 succeeded: forget everything learnt before
        (EHLO, buffered bytes) and expect a new EHLO. Spec: RFC 3207 §4.2."""
        if self._state is not State.TLS_PENDING:
            raise LocalProtocolError("no STARTTLS handshake is pending")
        self._tls_active = True
        self._extended = False
        self._authenticated = False
        self._auth_pending = False
        self._buf.clear()
        self._discarding = False
        self._state = State.INITIAL

    def abort(self, reply: Reply) -> bytes:
        """Render an unsolicited closing reply (421 on timeout or shutdown) and end the
        session, whatever is pending. Spec: RFC 5321 §3.8, §4.2.2."""
        self._due = None
        self._queued = None
        self._close()
        return reply.render()

    def ehlo_reply(self, greeting_name: str | None = None) -> Reply:
        """The 250 reply to EHLO: ``greeting_name`` (default: our hostname) and the
        extension keywords this session offers. Spec: RFC 5321 §4.1.1.1."""
        cfg = self.config
        keywords = ["PIPELINING", f"SIZE {cfg.message_size_max}", "8BITMIME"]
        if cfg.smtputf8:
            keywords.append("SMTPUTF8")
        keywords.append("ENHANCEDSTATUSCODES")
        if cfg.tls_available and not self._tls_active:
            keywords.append("STARTTLS")
        if cfg.chunking:
            keywords += ["CHUNKING", "BINARYMIME"]
        if cfg.dsn:
            keywords.append("DSN")
        if cfg.requiretls and self._tls_active:
            keywords.append("REQUIRETLS")
        if self._auth_offer and not self._authenticated:
            keywords.append("AUTH " + " ".join(self._auth_offer))
        keywords.append("HELP")
        return Reply(250, None, (greeting_name or cfg.hostname, *keywords))

    def helo_reply(self, greeting_name: str | None = None) -> Reply:
        """The 250 reply to HELO. Spec: RFC 5321 §4.1.1.1."""
        return Reply(250, None, greeting_name or self.config.hostname)

    # --- events -------------------------------------------------------------------
    def _emit(self, event: Event, due: _Due) -> Event:
        self._due = due
        return event

    def _auto(self, reply: Reply, *, counted: bool | None = None) -> Event:
        if counted is None:
            counted = reply.code in _COUNTED
        if counted:
            self._errors += 1
            if self._errors > self.config.errors_max:
                text = f"{self.config.hostname} Error: too many errors"
                return self._emit(TooManyErrors(Reply(421, "4.7.0", text)), _Due.CLOSE)
        return self._emit(AutoReply(reply), _Due.AUTO)

    def _close(self) -> ConnectionClosed:
        self._state = State.CLOSED
        self._buf.clear()
        self._data = None
        self._chunk = None
        return ConnectionClosed()

    def _reset_transaction(self) -> None:
        self._mail = None
        self._recipients = 0
        self._bdat_total = 0
        if self._state in (State.MAIL, State.RCPT, State.BDAT, State.DATA):
            self._state = State.GREETED

    def _offered(self) -> Offered | None:
        if not self._extended:
            return None
        cfg = self.config
        return Offered(
            cfg.message_size_max,
            True,
            cfg.chunking,
            cfg.smtputf8,
            cfg.dsn,
            requiretls=cfg.requiretls and self._tls_active,
        )

    # --- reading --------------------------------------------------------------------
    def _next_data(self) -> Event | NeedData:
        assert self._data is not None
        content, ended = self._data.feed(self._buf)
        if ended:
            violation = self._data.violation
            self._data = None
            end: Event = MessageComplete() if violation is None else MessageRejected(violation)
            if content:
                self._queued = (end, _Due.MESSAGE)
                return MessageData(content)
            return self._emit(end, _Due.MESSAGE)
        if content:
            return MessageData(content)
        return self._close() if self._eof else NEED_DATA

    def _next_chunk(self) -> Event | NeedData:
        chunk = self._chunk
        assert chunk is not None
        while chunk.remaining:
            take = min(chunk.remaining, len(self._buf))
            if take == 0:
                return self._close() if self._eof else NEED_DATA
            piece = bytes(self._buf[:take])
            del self._buf[:take]
            chunk.remaining -= take
            if chunk.auto is None and chunk.rejected is None:
                return MessageData(piece)
        self._chunk = None
        if chunk.auto is not None:
            return self._auto(chunk.auto)
        if chunk.rejected is not None:
            return self._emit(MessageRejected(chunk.rejected), _Due.MESSAGE)
        if chunk.last:
            return self._emit(MessageComplete(), _Due.MESSAGE)
        reply = Reply(250, "2.0.0", f"{chunk.size} octets received")
        return self._emit(ChunkReceived(chunk.size, reply), _Due.CHUNK)

    def _next_command(self) -> Event | NeedData:
        buf = self._buf
        while True:
            if self._discarding:
                end = buf.find(b"\r\n")
                if end < 0:
                    keep = 1 if buf.endswith(b"\r") else 0
                    del buf[: len(buf) - keep]
                    return self._close() if self._eof else NEED_DATA
                del buf[: end + 2]
                self._discarding = False
                if self._auth_pending:  # the AUTH exchange's line: it fails there
                    self._auth_pending = False
                    return self._emit(AuthLine(b"", too_long=True), _Due.AUTH)
                return self._auto(R.LINE_TOO_LONG)
            end = buf.find(b"\r\n", 0, _HARD_MAX)
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 2]
                return self._dispatch(line)
            if len(buf) < _HARD_MAX:
                return self._close() if self._eof else NEED_DATA
            self._discarding = True

    def _dispatch(self, line: bytes) -> Event | NeedData:
        if self._auth_pending:
            self._auth_pending = False
            return self._emit(AuthLine(line), _Due.AUTH)
        if b"\r" in line or b"\n" in line:
            return self._auto(R.BARE_LINE_END_IN_COMMAND)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return self._auto(R.SYNTAX_ERROR)
        verb, _, arg = text.partition(" ")
        if not verb:
            return self._auto(R.SYNTAX_ERROR)
        verb = verb.upper() if verb.isascii() else "?"
        states = COMMANDS.get(verb)
        handler = _HANDLERS.get(verb)
        if states is None or handler is None or (verb == "BDAT" and not self.config.chunking):
            return self._auto(R.UNKNOWN_COMMAND)
        if len(line) + 2 > self._line_max(verb, arg):
            return self._auto(R.LINE_TOO_LONG)
        if self._state not in states and verb != "BDAT":
            return self._auto(R.BAD_SEQUENCE)
        try:
            return handler(self, arg)
        except SmtpSyntaxError as exc:
            return self._auto(exc.reply)

    def _line_max(self, verb: str, arg: str) -> int:
        """512 plus the allowances of the extensions this command uses.
        Spec: RFC 5321 §4.5.3.1.4, RFC 1870 §3, RFC 3461 §4, RFC 6531 §3.4."""
        allowed = limits.SMTP_COMMAND_LINE_MAX
        upper = arg.upper()
        if verb == "MAIL":
            if " SIZE=" in upper:
                allowed += limits.SMTP_SIZE_PARAM_ALLOWANCE
            if " RET=" in upper or " ENVID=" in upper:
                allowed += limits.SMTP_DSN_MAIL_ALLOWANCE
            if " SMTPUTF8" in upper:
                allowed += limits.SMTP_UTF8_ALLOWANCE
        elif verb == "RCPT" and (" NOTIFY=" in upper or " ORCPT=" in upper):
            allowed += limits.SMTP_DSN_RCPT_ALLOWANCE
        return allowed

    # --- command handlers (one per verb) ---------------------------------------------
    def _cmd_hello(self, arg: str, extended: bool) -> Event:
        name = arg.strip(" ")
        if not name:
            verb = "EHLO" if extended else "HELO"
            return self._auto(Reply(501, "5.5.4", f"Syntax: {verb} hostname"))
        self._reset_transaction()
        self._state = State.INITIAL
        self._extended = False
        self._hello_extended = extended
        return self._emit(Hello(name, extended), _Due.HELLO)

    def _cmd_ehlo(self, arg: str) -> Event:
        return self._cmd_hello(arg, True)

    def _cmd_helo(self, arg: str) -> Event:
        return self._cmd_hello(arg, False)

    def _cmd_mail(self, arg: str) -> Event:
        prefix = _MAIL_ARG.match(arg)
        if prefix is None:
            return self._auto(Reply(501, "5.5.2", "Syntax: MAIL FROM:<address>"))
        if self.config.auth_required and not self._authenticated:
            return self._auto(AUTH_REQUIRED, counted=False)
        path_text, rest = split_path(arg[prefix.end() :])
        if self._auth_offer:
            # The AUTH= parameter (RFC 4954 §5) names the submitter for relaying
            # servers; postel decides that from the session's own AUTH: ignored.
            rest = _AUTH_PARAM.sub("", rest)
        if rest and not rest.startswith(" "):
            return self._auto(Reply(501, "5.5.2", "Syntax: MAIL FROM:<address>"))
        params = parse_mail_params(rest, self._offered())
        path = Path.parse(path_text, smtputf8=params.smtputf8, allow_postmaster=False)
        self._pending_mail = params
        return self._emit(MailFrom(path, params), _Due.MAIL)

    def _cmd_rcpt(self, arg: str) -> Event:
        prefix = _RCPT_ARG.match(arg)
        if prefix is None:
            return self._auto(Reply(501, "5.5.2", "Syntax: RCPT TO:<address>"))
        path_text, rest = split_path(arg[prefix.end() :])
        if rest and not rest.startswith(" "):
            return self._auto(Reply(501, "5.5.2", "Syntax: RCPT TO:<address>"))
        smtputf8 = self._mail is not None and self._mail.smtputf8
        params = parse_rcpt_params(rest, self._offered(), smtputf8)
        path = Path.parse(path_text, smtputf8=smtputf8, allow_null=False)
        if self._recipients >= self.config.recipients_max:
            return self._auto(R.TOO_MANY_RECIPIENTS)
        return self._emit(RcptTo(path, params), _Due.RCPT)

    def _cmd_data(self, arg: str) -> Event:
        if arg.strip(" "):
            return self._auto(Reply(501, "5.5.4", "Syntax: DATA"))
        if self._state is State.MAIL:
            return self._auto(R.NO_VALID_RECIPIENTS, counted=False)
        if self._state is State.BDAT:
            return self._auto(R.BDAT_AFTER_DATA)
        if self._mail is not None and self._mail.body is Body.BINARY_MIME:
            return self._auto(R.BINARYMIME_NEEDS_BDAT)
        return self._emit(DataStarted(), _Due.DATA)

    def _cmd_bdat(self, arg: str) -> Event | NeedData:
        match = _BDAT_ARG.fullmatch(arg)
        if match is None:
            return self._auto(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
        size, last = int(match.group(1)), match.group(2) is not None
        chunk = _Chunk(remaining=size, size=size, last=last)
        if self._state is State.MAIL:
            chunk.auto = R.NO_VALID_RECIPIENTS
        elif self._state not in (State.RCPT, State.BDAT) or not self._extended:
            chunk.auto = R.BAD_SEQUENCE
        elif self._bdat_total + size > self.config.message_size_max:
            chunk.rejected = R.MESSAGE_TOO_BIG
        if chunk.auto is None:
            self._bdat_total += size
        self._chunk = chunk
        return self._next_chunk()

    def _cmd_rset(self, arg: str) -> Event:
        if arg.strip(" "):
            return self._auto(Reply(501, "5.5.4", "Syntax: RSET"))
        self._reset_transaction()
        return self._emit(Reset(R.OK), _Due.AUTO)

    def _cmd_noop(self, arg: str) -> Event:
        return self._auto(R.OK)

    def _cmd_help(self, arg: str) -> Event:
        return self._auto(R.HELP)

    def _cmd_vrfy(self, arg: str) -> Event:
        if not arg.strip(" "):
            return self._auto(Reply(501, "5.5.4", "Syntax: VRFY address"))
        return self._auto(R.VRFY_CANNOT)

    def _cmd_expn(self, arg: str) -> Event:
        return self._auto(R.EXPN_DISABLED, counted=False)

    def _cmd_starttls(self, arg: str) -> Event:
        if arg.strip(" "):
            return self._auto(Reply(501, "5.5.4", "Syntax: STARTTLS"))
        if self._tls_active:
            return self._auto(Reply(503, "5.5.1", "TLS already active"))
        if not self.config.tls_available or not self._extended:
            return self._auto(Reply(502, "5.5.1", "STARTTLS not available"))
        self._buf.clear()
        return self._emit(StartTls(), _Due.STARTTLS)

    def _cmd_auth(self, arg: str) -> Event:
        mechanism, _, initial = arg.strip(" ").partition(" ")
        if self._authenticated:
            return self._auto(Reply(503, "5.5.1", "Already authenticated"))
        if not self._extended or not self._auth_offer:
            return self._auto(Reply(503, "5.5.1", "AUTH not available"))
        if not mechanism:
            return self._auto(Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"))
        if mechanism.upper() not in self._auth_offer:
            return self._auto(Reply(504, "5.5.4", "Unrecognized authentication type"))
        initial = initial.strip(" ")
        return self._emit(AuthRequested(mechanism.upper(), initial or None), _Due.AUTH)

    def _cmd_quit(self, arg: str) -> Event:
        if arg.strip(" "):
            return self._auto(Reply(501, "5.5.4", "Syntax: QUIT"))
        text = f"{self.config.hostname} closing connection"
        return self._emit(Quit(Reply(221, "2.0.0", text)), _Due.CLOSE)

    # --- transitions after send ---------------------------------------------------------
    def _after_hello(self, reply: Reply) -> None:
        if reply.code // 100 == 2:
            self._state = State.GREETED
            self._extended = self._hello_extended

    def _after_mail(self, reply: Reply) -> None:
        if reply.code // 100 == 2:
            self._state = State.MAIL
            self._mail = self._pending_mail
        self._pending_mail = None

    def _after_rcpt(self, reply: Reply) -> None:
        if reply.code // 100 == 2:
            self._state = State.RCPT
            self._recipients += 1

    def _after_data(self, reply: Reply) -> None:
        if reply.code // 100 == 3:
            self._state = State.DATA
            self._data = DotReader(self.config.bare_line_endings, self.config.message_size_max)

    def _after_message(self, reply: Reply) -> None:
        self._state = State.GREETED
        self._reset_transaction()

    def _after_chunk(self, reply: Reply) -> None:
        if reply.code // 100 == 2:
            self._state = State.BDAT
        else:
            self._state = State.GREETED
            self._reset_transaction()

    def _after_starttls(self, reply: Reply) -> None:
        if reply.code // 100 == 2:
            self._state = State.TLS_PENDING
            self._buf.clear()

    def _after_auth(self, reply: Reply) -> None:
        if reply.code == 334:
            self._auth_pending = True
        elif reply.code == 235:
            self._authenticated = True

    def _after_close(self, reply: Reply) -> None:
        self._close()

    def _after_auto(self, reply: Reply) -> None:
        return None


_HANDLERS: Mapping[str, Callable[[ServerConnection, str], Event | NeedData]] = {
    "EHLO": ServerConnection._cmd_ehlo,
    "HELO": ServerConnection._cmd_helo,
    "MAIL": ServerConnection._cmd_mail,
    "RCPT": ServerConnection._cmd_rcpt,
    "DATA": ServerConnection._cmd_data,
    "BDAT": ServerConnection._cmd_bdat,
    "RSET": ServerConnection._cmd_rset,
    "NOOP": ServerConnection._cmd_noop,
    "HELP": ServerConnection._cmd_help,
    "VRFY": ServerConnection._cmd_vrfy,
    "EXPN": ServerConnection._cmd_expn,
    "STARTTLS": ServerConnection._cmd_starttls,
    "AUTH": ServerConnection._cmd_auth,
    "QUIT": ServerConnection._cmd_quit,
}

_TRANSITIONS: Mapping[_Due, Callable[[ServerConnection, Reply], None]] = {
    _Due.AUTO: ServerConnection._after_auto,
    _Due.HELLO: ServerConnection._after_hello,
    _Due.MAIL: ServerConnection._after_mail,
    _Due.RCPT: ServerConnection._after_rcpt,
    _Due.DATA: ServerConnection._after_data,
    _Due.MESSAGE: ServerConnection._after_message,
    _Due.CHUNK: ServerConnection._after_chunk,
    _Due.STARTTLS: ServerConnection._after_starttls,
    _Due.AUTH: ServerConnection._after_auth,
    _Due.CLOSE: ServerConnection._after_close,
}
