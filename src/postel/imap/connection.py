"""Sans-IO IMAP server connection: command assembly (lines and literals), the state
table, APPEND streaming, IDLE, AUTHENTICATE and STARTTLS, in the h11 style.

The driver feeds bytes with ``receive_data``, pulls events with ``next_event`` and
writes responses it renders with ``postel.imap.responses``. Commands are parsed lazily,
one per ``next_event`` call, so a state change the driver makes after one command
(``authenticated``, ``enable_utf8``, ``begin_idle``, ...) applies to the next even when
the client pipelined them (RFC 9051 §5.5).

Wire format and leniency:

* A line ends with CRLF (RFC 9051 §2.2). A bare LF is taken as the end of the line too,
  as Dovecot does (telnet users, broken clients); a CR elsewhere in a line is a syntax
  error (a control character outside a literal).
* Literals: ``{n}`` waits for the driver to accept (``+`` continuation) or refuse
  (tagged NO/BAD; the client then does not send the octets, RFC 9051 §7.5); ``{n+}``
  (LITERAL+, RFC 7888) is read without continuation; ``~{n}`` is literal8 (RFC 3516
  §4.4). A literal over its bound is refused at once; the octets of a refused
  non-synchronizing literal and the rest of that command are read and discarded
  (RFC 7888 §4), never buffered.
* APPEND message literals are streamed as AppendData chunks, never buffered whole;
  other literals are buffered within ``ConnectionConfig`` bounds.
* Bytes after a STARTTLS command line are discarded until ``tls_established``
  (RFC 9051 §6.2.1; the CVE-2011-0411 class of plaintext injection).

Memory: after ``next_event`` returns NeedData, ``buffered`` is at most
``config.buffer_max`` (plus nothing: bytes are consumed as they are framed).

Spec: RFC 9051 §2.2, §3, §4.3, §6, §7.5; RFC 7888; RFC 3516 §4.4; RFC 3502.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections import deque
from dataclasses import dataclass

from postel.errors import LocalProtocolError
from postel.imap import limits
from postel.imap.command_types import StartTls
from postel.imap.commands import (
    COMMAND_STATES,
    AppendHead,
    State,
    command_head,
    parse_append_head,
    parse_append_next,
    parse_body,
    read_head,
)
from postel.imap.events import (
    NEED_DATA,
    AppendAborted,
    AppendCommandEnd,
    AppendData,
    AppendMessageEnd,
    AppendStarted,
    AuthenticateResponse,
    BadCommand,
    CatenateEnd,
    CatenateStarted,
    CatenateText,
    CatenateUrl,
    CommandReceived,
    CommandRefused,
    ConnectionClosed,
    Event,
    IdleDone,
    LiteralContinuationNeeded,
    NeedData,
)
from postel.imap.grammar import LITERAL_MARKER, BadCharset, Cursor, ImapProtocolError
from postel.imap.parse_search import CHARSETS

__all__ = ["CONTINUE_LITERAL", "ConnectionConfig", "ServerConnection", "State"]

CONTINUE_LITERAL = b"+ Ready for literal data\r\n"
"""The continuation request ``accept_literal`` returns. Spec: RFC 9051 §7.5."""
_TAG_AT_START = re.compile(rb"([!#$&',\-./0-9:;<=>?@A-Z\[^_`a-z|}~]{1,64}) ")
_DISCARD_TAIL = 32


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """Bounds and offered extensions of one connection (defaults: ``limits``).

    ``literal_plus`` True offers LITERAL+ (any non-synchronizing literal within the
    literal bounds); False offers LITERAL- (at most ``limits.LITERAL_MINUS_MAX``).
    Spec: RFC 7888 §4, §5; RFC 7889; RELIABILITY.md D3.
    """

    line_max_preauth: int = limits.LINE_MAX_PREAUTH
    line_max: int = limits.LINE_MAX
    literal_max: int = limits.LITERAL_MAX
    literals_max: int = limits.LITERALS_MAX
    literals_total_max: int = limits.LITERALS_TOTAL_MAX
    append_limit: int = limits.APPEND_LIMIT
    append_chunk_max: int = limits.APPEND_CHUNK_MAX
    literal_plus: bool = True

    @property
    def buffer_max(self) -> int:
        """Most octets one connection holds between reads: a command's line text and
        its buffered literals. Spec: RELIABILITY.md D7."""
        return max(self.line_max, self.line_max_preauth) + self.literals_total_max + 2


class _Mode(enum.Enum):
    COMMAND = enum.auto()
    LITERAL = enum.auto()
    APPEND_DATA = enum.auto()
    CATENATE = enum.auto()
    DISCARD_LITERAL = enum.auto()
    DISCARD_LINE = enum.auto()
    TLS_PENDING = enum.auto()
    CLOSED = enum.auto()


@dataclass(slots=True)
class _Decision:
    """A literal waiting for accept_literal / reject_literal."""

    size: int
    synchronizing: bool
    append: bool


@dataclass(slots=True)
class _Append:
    tag: str
    mailbox: str
    index: int = 0
    between: bool = False
    """True after a message literal: the next line segment continues the command."""
    wrapped: bool = False
    """The current message literal is inside ``UTF8 (...)``: ``)`` follows it."""
    in_parts: bool = False
    """Inside a ``CATENATE (...)`` part list (RFC 4469 §5)."""
    rest: bytes | None = None
    """Unread text of the current segment of a part list; after its ``)``, the text
    that continues as after a message (``after_parts``)."""
    after_parts: bool = False
    parts: int = 0
    """Parts read of the current part list (``1*cat-part``: at least one)."""


def literal_size(digits: bytes) -> int:
    """The octet count of a literal announcement (``number64``, leading zeros allowed);
    a count of more than 20 significant digits is taken as LITERAL_SIZE_MAX + 1 (too
    large) without converting it. Spec: RFC 9051 §9 (literal, number64), RFC 7888."""
    significant = digits.lstrip(b"0")
    return int(significant or b"0") if len(significant) <= 20 else limits.LITERAL_SIZE_MAX + 1


class ServerConnection:
    """One IMAP server session, without I/O.

    Client input never raises; driver misuse raises ``LocalProtocolError``.
    Spec: RFC 9051 §3 (states), §2.2 (commands), §7.5 (continuation).
    """

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        state: State = State.NOT_AUTHENTICATED,
        utf8: bool = False,
    ) -> None:
        self.config = config or ConnectionConfig()
        self._state = state
        self._utf8 = utf8
        self._read_only = False
        self._buf = bytearray()
        self._scan = 0
        self._eof = False
        self._mode = _Mode.COMMAND
        self._queue: deque[Event] = deque()
        self._parts: list[bytes] = []
        self._lits: list[bytes] = []
        self._line_bytes = 0
        self._lit_bytes = 0
        self._tag: str | None = None
        self._literal = bytearray()
        self._left = 0
        self._decision: _Decision | None = None
        self._append: _Append | None = None
        self._discard_tail = b""
        self._idle_tag: str | None = None
        self._auth_tag: str | None = None
        self._bad = 0

    # --- introspection ------------------------------------------------------------
    @property
    def state(self) -> State:
        """The RFC 9051 §3 state."""
        return self._state

    @property
    def utf8(self) -> bool:
        """True once IMAP4rev2 or UTF8=ACCEPT is enabled: names are UTF-8 on the wire."""
        return self._utf8

    @property
    def read_only(self) -> bool:
        """True when the selected mailbox was opened read-only (EXAMINE)."""
        return self._read_only

    @property
    def idle_tag(self) -> str | None:
        """The IDLE command's tag while idling."""
        return self._idle_tag

    @property
    def bad_commands(self) -> int:
        """BadCommand events so far (RELIABILITY.md D3: close after 3 before login,
        20 after; the driver decides)."""
        return self._bad

    @property
    def buffered(self) -> int:
        """Octets the core holds: unread input, the command's line text and literals."""
        return len(self._buf) + self._line_bytes + self._lit_bytes + len(self._literal)

    @property
    def decision_pending(self) -> bool:
        """True while accept_literal or reject_literal must be called."""
        return self._decision is not None

    # --- input --------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add bytes from the client; ``b""`` means EOF. Bytes arriving while a STARTTLS
        handshake is pending, or after close, are discarded (RFC 9051 §6.2.1).
        Raises LocalProtocolError for data after EOF."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data after EOF")
        if self._mode in (_Mode.TLS_PENDING, _Mode.CLOSED):
            return
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA. Raises LocalProtocolError while a literal
        decision is pending. Spec: RFC 9051 §2.2.1, §7.5."""
        if self._decision is not None:
            raise LocalProtocolError("call accept_literal() or reject_literal() first")
        while True:
            if self._queue:
                return self._queue.popleft()
            event = _READERS[self._mode](self)
            if event is not None:
                if isinstance(event, BadCommand):
                    self._bad += 1
                return event

    # --- literal decisions ------------------------------------------------------------
    def accept_literal(self) -> bytes:
        """Accept the literal of the last LiteralContinuationNeeded / AppendStarted;
        returns the continuation request to write (``b""`` for ``{n+}``).
        Spec: RFC 9051 §7.5."""
        decision = self._take_decision()
        self._left = decision.size
        self._mode = _Mode.APPEND_DATA if decision.append else _Mode.LITERAL
        return CONTINUE_LITERAL if decision.synchronizing else b""

    def reject_literal(self) -> None:
        """Refuse that literal; the driver writes a tagged NO or BAD. The command is
        dropped (with a non-synchronizing literal, its octets and the rest of the command
        are read and discarded). Spec: RFC 9051 §7.5, RFC 7888 §4."""
        decision = self._take_decision()
        self._abandon(decision.size, decision.synchronizing)

    def _take_decision(self) -> _Decision:
        if self._decision is None:
            raise LocalProtocolError("no literal is waiting for a decision")
        decision, self._decision = self._decision, None
        return decision

    # --- state changes by the driver ------------------------------------------------
    def authenticated(self) -> None:
        """LOGIN or AUTHENTICATE succeeded. Spec: RFC 9051 §3.2."""
        self._require({State.NOT_AUTHENTICATED}, "authenticated")
        self._auth_tag = None
        self._state = State.AUTHENTICATED

    def selected(self, read_only: bool = False) -> None:
        """SELECT/EXAMINE succeeded. Spec: RFC 9051 §3.3."""
        self._require({State.AUTHENTICATED, State.SELECTED}, "selected")
        self._state = State.SELECTED
        self._read_only = read_only

    def unselected(self) -> None:
        """CLOSE, UNSELECT, or a failed SELECT left the selected state. Spec: RFC 9051 §3."""
        self._require({State.AUTHENTICATED, State.SELECTED}, "unselected")
        self._state = State.AUTHENTICATED
        self._read_only = False

    def begin_idle(self, tag: str) -> None:
        """``+ idling`` was sent: lines until DONE belong to IDLE. Spec: RFC 9051 §6.3.13."""
        self._require({State.AUTHENTICATED, State.SELECTED}, "begin_idle")
        self._idle_tag = tag

    def begin_authenticate(self, tag: str) -> None:
        """The first ``+`` challenge was sent: each line is an AuthenticateResponse.
        Spec: RFC 9051 §6.2.2."""
        self._require({State.NOT_AUTHENTICATED}, "begin_authenticate")
        self._auth_tag = tag

    def end_authenticate(self) -> None:
        """The exchange ended (tagged response sent). Spec: RFC 9051 §6.2.2."""
        self._auth_tag = None

    def tls_established(self) -> None:
        """The TLS handshake after STARTTLS succeeded; plaintext read before it is
        discarded. Spec: RFC 9051 §6.2.1."""
        if self._mode is not _Mode.TLS_PENDING:
            raise LocalProtocolError("no STARTTLS is pending")
        self._buf.clear()
        self._scan = 0
        self._mode = _Mode.COMMAND

    def starttls_refused(self) -> None:
        """The driver answered STARTTLS with NO/BAD: resume reading (bytes pipelined
        after STARTTLS stay discarded). Spec: RFC 9051 §6.2.1."""
        self.tls_established()

    def enable_utf8(self) -> None:
        """IMAP4rev2 or UTF8=ACCEPT enabled: mailbox names and quoted strings are UTF-8
        from the next command on. Spec: RFC 9051 §5.1, RFC 6855 §3."""
        self._utf8 = True

    def logout(self) -> None:
        """LOGOUT answered (or the session is ended): nothing more is read."""
        self._state = State.LOGOUT
        self._close()

    def _require(self, states: set[State], what: str) -> None:
        if self._state not in states:
            raise LocalProtocolError(f"{what}() not valid in state {self._state}")

    # --- readers, one per mode (None: go on; else the result) ------------------------
    def _read_command(self) -> Event | NeedData | None:
        allowance = self._line_allowance() - self._line_bytes
        end = self._buf.find(b"\n", self._scan, max(allowance, 0) + 2)
        if end < 0:
            if len(self._buf) >= allowance + 2:
                return self._overlong()
            self._scan = len(self._buf)
            return self._closed_or_need()
        line = bytes(self._buf[:end])
        self._consume(end + 1)
        if line.endswith(b"\r"):
            line = line[:-1]
        return self._segment(line)

    def _read_literal(self) -> Event | NeedData | None:
        take = min(self._left, len(self._buf))
        self._literal += self._buf[:take]
        self._consume(take)
        self._left -= take
        if self._left:
            return self._closed_or_need()
        data = bytes(self._literal)
        self._literal.clear()
        self._lits.append(data)
        self._lit_bytes += len(data)
        self._mode = _Mode.COMMAND
        return None

    def _read_append(self) -> Event | NeedData | None:
        append = self._append
        assert append is not None
        if self._left == 0:
            self._mode = _Mode.COMMAND
            if append.in_parts:
                return None  # a TEXT part ended; the part list goes on (RFC 4469 §5)
            append.between = True
            append.index += 1
            return AppendMessageEnd()
        take = min(self._left, len(self._buf), self.config.append_chunk_max)
        if take == 0:
            return self._closed_or_need()
        chunk = bytes(self._buf[:take])
        self._consume(take)
        self._left -= take
        return AppendData(chunk)

    def _read_catenate(self) -> Event | NeedData | None:
        """One CATENATE part (or the list's end) from the current line segment.
        Spec: RFC 4469 §5 (append-data, cat-part, text-literal, url)."""
        append = self._append
        assert append is not None and append.rest is not None
        rest = append.rest
        if append.after_parts:
            append.after_parts = False
            append.rest = None
            self._mode = _Mode.COMMAND
            return self._append_next(rest)
        if rest.startswith(b" "):
            rest = rest[1:]
        if rest.startswith(b")"):
            if not append.parts:
                return self._catenate_failure(append, rest, "CATENATE needs at least one part")
            append.in_parts = False
            append.after_parts = True
            append.rest = rest[1:]
            append.between = True
            append.index += 1
            return CatenateEnd()
        if rest[:4].upper() == b"URL ":
            append.parts += 1
            return self._catenate_url(append, rest)
        if rest[:5].upper() == b"TEXT ":
            match = LITERAL_MARKER.fullmatch(rest, 5)
            if match is not None:
                append.parts += 1
                return self._catenate_text(append, match)
        if not rest:
            return self._catenate_failure(append, rest, "expected ) to end CATENATE")
        return self._catenate_failure(append, rest, "expected a CATENATE part")

    def _catenate_url(self, append: _Append, rest: bytes) -> Event:
        cur = Cursor([rest[4:]], utf8=self._utf8)
        try:
            raw = cur.quoted() if cur.peek() == 0x22 else cur.astring_atom()
            url = raw.decode("utf-8")
        except (ImapProtocolError, UnicodeDecodeError):
            return self._catenate_failure(append, rest, "expected a quoted URL")
        if not url:
            return self._catenate_failure(append, rest, "expected a quoted URL")
        append.rest = cur.rest_of_segment()
        return CatenateUrl(url)

    def _catenate_text(self, append: _Append, match: re.Match[bytes]) -> Event:
        binary, digits, plus = match.groups()
        size = literal_size(digits)
        append.rest = None
        self._mode = _Mode.COMMAND
        if size > self.config.append_limit:
            event: Event = CommandRefused(append.tag, "message too large", "TOOBIG")
            return self._refuse_literal(event, size, not plus)
        self._decision = _Decision(size, not plus, append=True)
        return CatenateText(append.tag, size, bool(binary), not plus)

    def _catenate_failure(self, append: _Append, rest: bytes, text: str) -> Event:
        self._mode = _Mode.COMMAND
        event = self._failure(append.tag, text)
        match = LITERAL_MARKER.search(rest)
        if match is not None:
            self._abandon(literal_size(match.group(2)), not match.group(3))
        return event

    def _start_catenate(
        self, flags: tuple[str, ...], internal_date: dt.datetime | None, rest: bytes
    ) -> Event:
        append = self._append
        assert append is not None
        append.between = False
        append.in_parts = True
        append.parts = 0
        append.rest = rest
        self._parts = []
        self._lits = []
        self._line_bytes = 0
        self._lit_bytes = 0
        self._mode = _Mode.CATENATE
        return CatenateStarted(append.tag, append.mailbox, flags, internal_date, append.index)

    def _read_discard_literal(self) -> Event | NeedData | None:
        take = min(self._left, len(self._buf))
        self._consume(take)
        self._left -= take
        if self._left:
            return self._closed_or_need()
        self._mode = _Mode.DISCARD_LINE
        self._discard_tail = b""
        return None

    def _read_discard_line(self) -> Event | NeedData | None:
        end = self._buf.find(b"\n")
        if end < 0:
            self._discard_tail = (self._discard_tail + bytes(self._buf))[-_DISCARD_TAIL:]
            self._consume(len(self._buf))
            return self._closed_or_need()
        tail = (self._discard_tail + bytes(self._buf[:end]))[-_DISCARD_TAIL:]
        self._consume(end + 1)
        match = LITERAL_MARKER.search(tail.removesuffix(b"\r"))
        if match is not None and match.group(3):
            self._left = int(match.group(2))
            self._mode = _Mode.DISCARD_LITERAL
        else:
            self._mode = _Mode.COMMAND
        return None

    def _read_tls_pending(self) -> Event | NeedData | None:
        return self._closed_or_need()

    def _read_closed(self) -> Event | NeedData | None:
        return ConnectionClosed()

    # --- framing ----------------------------------------------------------------------
    def _line_allowance(self) -> int:
        if self._state is State.NOT_AUTHENTICATED:
            return self.config.line_max_preauth
        return self.config.line_max

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._scan = 0

    def _closed_or_need(self) -> Event | NeedData:
        if self._eof:
            return self._close()
        return NEED_DATA

    def _close(self) -> ConnectionClosed:
        self._mode = _Mode.CLOSED
        self._buf.clear()
        self._reset_command()
        self._literal.clear()
        self._decision = None
        return ConnectionClosed()

    def _reset_command(self) -> None:
        self._parts = []
        self._lits = []
        self._line_bytes = 0
        self._lit_bytes = 0
        self._tag = None
        self._append = None

    def _overlong(self) -> Event:
        if self._auth_tag is not None and not self._parts:
            # The line is the client's AUTHENTICATE response: the exchange fails with a
            # tagged BAD (the driver ends it), the rest of the line is dropped.
            self._discard_tail = b""
            self._mode = _Mode.DISCARD_LINE
            return BadCommand(self._auth_tag, "authentication response too long")
        if self._idle_tag is not None and not self._parts:
            # Not DONE: IDLE ends with its one tagged BAD, as for any other line.
            idle_tag, self._idle_tag = self._idle_tag, None
            self._discard_tail = b""
            self._mode = _Mode.DISCARD_LINE
            return BadCommand(idle_tag, "expected DONE")
        tag = self._tag
        if tag is None and not self._parts:
            match = _TAG_AT_START.match(self._buf)
            tag = match.group(1).decode("ascii") if match else None
        event = self._failure(tag, "command line too long")
        self._discard_tail = b""
        self._mode = _Mode.DISCARD_LINE
        return event

    def _failure(self, tag: str | None, text: str) -> Event:
        """The event for a command dropped on protocol grounds; resets the command."""
        append = self._append
        self._reset_command()
        if append is not None and append.index > 0:
            return AppendAborted(append.tag, text)
        return BadCommand(tag, text)

    def _abandon(self, size: int, synchronizing: bool) -> None:
        """Drop the command being assembled; skip a non-synchronizing literal's octets
        and the rest of the command."""
        self._reset_command()
        if synchronizing:
            self._mode = _Mode.COMMAND
        else:
            self._left = size
            self._mode = _Mode.DISCARD_LITERAL

    def _refuse_literal(self, event: Event, size: int, synchronizing: bool) -> Event:
        self._abandon(size, synchronizing)
        return event

    # --- line segments ----------------------------------------------------------------
    def _segment(self, line: bytes) -> Event | NeedData | None:
        if self._append is not None and self._append.in_parts:
            self._append.rest = line
            self._mode = _Mode.CATENATE
            return None
        if self._append is not None and self._append.between:
            return self._append_next(line)
        if not self._parts:
            if self._idle_tag is not None:
                return self._idle_line(line)
            if self._auth_tag is not None:
                return AuthenticateResponse(line)
            if not line:
                return BadCommand(None, "empty command line")
        self._parts.append(line)
        self._line_bytes += len(line)
        match = LITERAL_MARKER.search(line)
        if match is None:
            return self._complete()
        return self._literal_announced(match)

    def _idle_line(self, line: bytes) -> Event:
        tag, self._idle_tag = self._idle_tag, None
        assert tag is not None
        if line.upper() == b"DONE":
            return IdleDone(tag)
        return BadCommand(tag, "expected DONE")

    def _complete(self) -> Event:
        parts, lits = self._parts, self._lits
        self._reset_command()
        cur = Cursor(parts, lits, utf8=self._utf8)
        try:
            tag, name = read_head(cur)
        except ImapProtocolError as exc:
            return BadCommand(exc.tag, exc.text)
        if self._state not in COMMAND_STATES[name]:
            return BadCommand(tag, f"{name} not allowed now")
        if name == "APPEND":
            return self._append_without_literal(tag, parts, lits)
        try:
            command = parse_body(cur, tag, name)
        except BadCharset as exc:
            return CommandRefused(tag, exc.text, f"BADCHARSET ({' '.join(CHARSETS)})")
        except ImapProtocolError as exc:
            return BadCommand(exc.tag if exc.tag is not None else tag, exc.text)
        if isinstance(command, StartTls):
            self._buf.clear()
            self._scan = 0
            self._mode = _Mode.TLS_PENDING
        return CommandReceived(command)

    def _append_without_literal(self, tag: str, parts: list[bytes], lits: list[bytes]) -> Event:
        """An APPEND line without a message literal: only CATENATE of URLs fits."""
        try:
            head = parse_append_head(parts, lits, utf8=self._utf8)
        except ImapProtocolError:
            head = None
        if head is None or head.catenate is None:
            return BadCommand(tag, "APPEND needs a message literal")
        self._append = _Append(tag, head.mailbox)
        return self._start_catenate(head.flags, head.internal_date, head.catenate)

    def _takes_literal8(self) -> bool:
        """Whether the command being assembled takes literal8 values besides APPEND's
        message: SETMETADATA (values may hold NUL). Spec: RFC 5464 §5 (literal8)."""
        try:
            return command_head(self._parts[0])[1] == "SETMETADATA"
        except ImapProtocolError:
            return False

    def _literal_announced(self, match: re.Match[bytes]) -> Event | None:
        binary, digits, plus = match.groups()
        synchronizing = not plus
        size = literal_size(digits)
        if len(self._parts) == 1:
            try:
                self._tag, name = command_head(self._parts[0])
            except ImapProtocolError as exc:
                return self._refuse_literal(BadCommand(exc.tag, exc.text), size, synchronizing)
            if self._state not in COMMAND_STATES[name]:
                event = BadCommand(self._tag, f"{name} not allowed now")
                return self._refuse_literal(event, size, synchronizing)
            if name == "APPEND":
                self._append = _Append(self._tag, "")
        tag = self._tag
        assert tag is not None
        if self._append is not None:
            try:
                head = parse_append_head(self._parts, self._lits, utf8=self._utf8)
            except ImapProtocolError as exc:
                return self._refuse_literal(BadCommand(tag, exc.text), size, synchronizing)
            if head is not None and head.catenate is not None:
                return self._catenate_head(head)
            if head is not None:
                self._append.mailbox = head.mailbox
                if head.utf8 and not (self._utf8 and binary):
                    event = BadCommand(tag, "UTF8 needs UTF8=ACCEPT and a literal8")
                    return self._refuse_literal(event, size, synchronizing)
                self._append.wrapped = head.utf8
                return self._start_message(
                    head.flags, head.internal_date, size, bool(binary), synchronizing
                )
        if binary and not self._takes_literal8():
            return self._refuse_literal(
                BadCommand(tag, "literal8 not allowed here"), size, synchronizing
            )
        cfg = self.config
        if (
            size > cfg.literal_max
            or len(self._lits) >= cfg.literals_max
            or self._lit_bytes + size > cfg.literals_total_max
            or (not synchronizing and not cfg.literal_plus and size > limits.LITERAL_MINUS_MAX)
        ):
            return self._refuse_literal(BadCommand(tag, "literal too large"), size, synchronizing)
        if synchronizing:
            self._decision = _Decision(size, True, append=False)
            return LiteralContinuationNeeded(tag, size)
        self._left = size
        self._mode = _Mode.LITERAL
        return None

    def _catenate_head(self, head: AppendHead) -> Event:
        assert self._append is not None and head.catenate is not None
        self._append.mailbox = head.mailbox
        return self._start_catenate(head.flags, head.internal_date, head.catenate)

    def _start_message(
        self,
        flags: tuple[str, ...],
        internal_date: dt.datetime | None,
        size: int,
        binary: bool,
        synchronizing: bool,
    ) -> Event:
        append = self._append
        assert append is not None
        if size > self.config.append_limit:
            event: Event = CommandRefused(append.tag, "message too large", "TOOBIG")
            return self._refuse_literal(event, size, synchronizing)
        append.between = False
        self._parts = []
        self._lits = []
        self._line_bytes = 0
        self._lit_bytes = 0
        self._decision = _Decision(size, synchronizing, append=True)
        return AppendStarted(
            append.tag,
            append.mailbox,
            flags,
            internal_date,
            size,
            binary,
            synchronizing,
            append.index,
        )

    def _append_next(self, line: bytes) -> Event | None:
        append = self._append
        assert append is not None
        if append.wrapped:
            if not line.startswith(b")"):
                return self._failure(append.tag, "expected ) after the UTF8 message")
            line = line[1:]
            append.wrapped = False
        if not line:
            self._reset_command()
            return AppendCommandEnd(append.tag)
        match = LITERAL_MARKER.search(line)
        try:
            flags, date, wrapped, catenate = parse_append_next(line, append.tag)
        except ImapProtocolError as exc:
            if match is None:
                return self._failure(append.tag, "expected another message or the end of APPEND")
            self._abandon(literal_size(match.group(2)), not match.group(3))
            return AppendAborted(append.tag, exc.text)
        if catenate is not None:
            return self._start_catenate(flags, date, catenate)
        if match is None:
            return self._failure(append.tag, "expected another message or the end of APPEND")
        binary, digits, plus = match.groups()
        size = literal_size(digits)
        if wrapped and not (self._utf8 and binary):
            self._abandon(size, not plus)
            return AppendAborted(append.tag, "UTF8 needs UTF8=ACCEPT and a literal8")
        append.wrapped = wrapped
        return self._start_message(flags, date, size, bool(binary), not plus)


_READERS = {
    _Mode.COMMAND: ServerConnection._read_command,
    _Mode.LITERAL: ServerConnection._read_literal,
    _Mode.APPEND_DATA: ServerConnection._read_append,
    _Mode.CATENATE: ServerConnection._read_catenate,
    _Mode.DISCARD_LITERAL: ServerConnection._read_discard_literal,
    _Mode.DISCARD_LINE: ServerConnection._read_discard_line,
    _Mode.TLS_PENDING: ServerConnection._read_tls_pending,
    _Mode.CLOSED: ServerConnection._read_closed,
}
