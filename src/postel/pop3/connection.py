"""Sans-IO POP3 server connection, in the h11 style of the SMTP and IMAP cores.

The driver writes ``greeting()``, then loops on ``next_event()``: it writes the
``response`` of ``Answered`` events, answers policy events (``send``, ``logged_in``,
``challenge``, ``message_follows``) and on ``NeedData`` reads and calls
``receive_data``. A policy event blocks the next event until it is answered, so
responses leave in command order when the client pipelines (RFC 2449 §6.6).

The core holds the maildrop listing given at login (``logged_in(sizes, uids)``) and
answers STAT, LIST, UIDL, DELE, RSET and NOOP itself; the driver supplies message
content for RETR and TOP and applies the deletions handed over by QUIT.

Reading rules:

* A command line ends at LF; a CR before it is removed, so both CRLF and a bare LF end
  a line (``lines.LineReader``): clients that send bare LF are served, and nothing
  becomes ambiguous since POP3 clients send no content. A CR or any other control
  octet elsewhere in a command line is ``-ERR``.
* A command line is at most ``limits.COMMAND_LINE_MAX`` octets with its line end
  (``limits.AUTH_LINE_MAX`` during an AUTH exchange); a longer one is read to its end,
  discarded and answered ``-ERR``. Protocol errors are counted; past
  ``Pop3Config.errors_max`` the session ends with ``TooManyErrors``.
* Octets after STLS are discarded until ``tls_established`` (RFC 2595 §4,
  CVE-2011-0411).
* Plaintext logins (USER, PASS, AUTH PLAIN/LOGIN) are allowed only under TLS or with
  ``plaintext_without_tls``; otherwise they get ``-ERR [AUTH]``: RFC 3206 §5 names a
  login "in violation of policy" as an AUTH condition, and RFC 2595 §4 lets a server
  refuse USER/PASS before STLS.

Client input never raises; only driver misuse raises ``LocalProtocolError``.

Spec: RFC 1939, RFC 2449, RFC 2595 §4, RFC 3206, RFC 5034, RFC 8314 §3.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence

from postel import sasl
from postel.errors import LocalProtocolError
from postel.pop3 import limits
from postel.pop3.commands import parse_msg, parse_optional_msg, parse_top, split_args
from postel.pop3.events import (
    NEED_DATA,
    AuthMechanisms,
    AuthResponse,
    AuthStarted,
    BadCommand,
    Capa,
    ConnectionClosed,
    Dele,
    Event,
    List,
    NeedData,
    Noop,
    NoSuchMessage,
    Pass,
    Quit,
    Retr,
    Rset,
    StartTls,
    Stat,
    TooManyErrors,
    Top,
    Uidl,
    User,
)
from postel.pop3.lines import LineReader, ReadStatus
from postel.pop3.maildrop import Maildrop
from postel.pop3.responses import GREETING, Response, ResponseCode, render_multiline
from postel.pop3.session import COMMANDS, Pop3Config, State

__all__ = ["ServerConnection"]

_PLAINTEXT_REFUSED = "plaintext authentication disallowed without TLS, use STLS"
_NO_SUCH_MESSAGE = "no such message"
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
"""Control octets (CR, NUL, TAB, ESC ...) have no place in a command line: refused, so
they never reach a log line or an account lookup. Spec: RFC 1939 §3."""


class _Due(enum.Enum):
    """The policy event awaiting its answer; decides what ``send`` does."""

    USER = enum.auto()
    LOGIN = enum.auto()
    STLS = enum.auto()
    MESSAGE = enum.auto()
    QUIT = enum.auto()


def _messages(count: int, octets: int) -> str:
    """``2 messages (320 octets)``, ``1 message (120 octets)``: the scan of a maildrop in
    the +OK to PASS and RSET (after ``maildrop has``) and to LIST. Spec: RFC 1939 §5, §6."""
    return f"{count} message{'' if count == 1 else 's'} ({octets} octets)"


def _ok(text: str = "") -> bytes:
    return Response(True, text).render()


def _err(text: str) -> bytes:
    return Response(False, text).render()


class ServerConnection:
    """One POP3 server session, without I/O.

    ``tls_active`` is True on an implicit-TLS port (995, RFC 8314 §3).
    Spec: RFC 1939 §3, RFC 2449 §4, §6.6.
    """

    def __init__(self, config: Pop3Config, *, tls_active: bool = False) -> None:
        self.config = config
        self._state = State.CONNECTED
        self._tls_active = tls_active
        self._tls_pending = False
        self._lines = LineReader()
        self._eof = False
        self._errors = 0
        self._due: _Due | None = None
        self._user: str | None = None
        self._pending_user = ""
        self._auth = False
        self._message: Retr | Top | None = None
        self._maildrop: Maildrop | None = None

    # --- introspection ------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def errors(self) -> int:
        """Protocol errors counted so far."""
        return self._errors

    @property
    def buffered(self) -> int:
        """Octets held: at most one line bound plus the last chunk received."""
        return len(self._lines)

    @property
    def response_due(self) -> bool:
        """True while a policy event awaits its answer."""
        return self._due is not None

    @property
    def user(self) -> str | None:
        """The name of the accepted USER command, if any."""
        return self._user

    @property
    def plaintext_allowed(self) -> bool:
        """Plaintext passwords only under TLS, or when the config allows them without.
        Spec: RFC 2595 §4, RFC 8314 §3."""
        return self._tls_active or self.config.plaintext_without_tls

    @property
    def maildrop(self) -> Maildrop | None:
        """The maildrop listing (TRANSACTION and UPDATE), else None."""
        return self._maildrop

    def mechanisms(self) -> tuple[str, ...]:
        """SASL mechanisms offered now. Spec: RFC 5034 §4, RFC 4616 §6."""
        usable = sasl.mechanisms_for(tls=self.plaintext_allowed)
        return tuple(name for name in self.config.mechanisms if name in usable)

    def capabilities(self) -> tuple[str, ...]:
        """The CAPA lines for the current state. Spec: RFC 2449 §5, §6; RFC 3206 §6;
        RFC 2595 §4; RFC 5034 §3."""
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        if self._state is State.AUTHORIZATION:
            if self.plaintext_allowed:
                caps.append("USER")
            mechanisms = self.mechanisms()
            if mechanisms:
                caps.append("SASL " + " ".join(mechanisms))
            if self.config.tls_available and not self._tls_active:
                caps.append("STLS")
        caps.append(f"IMPLEMENTATION {self.config.implementation}")
        return tuple(caps)

    # --- driver API -----------------------------------------------------------------
    def greeting(self, response: Response = GREETING) -> bytes:
        """Render the greeting: ``+OK`` opens AUTHORIZATION, ``-ERR`` (say
        ``[SYS/TEMP]`` when overloaded) ends the session. Raises LocalProtocolError if
        called twice. Spec: RFC 1939 §4, RFC 3206 §4."""
        if self._state is not State.CONNECTED:
            raise LocalProtocolError("greeting already sent")
        self._state = State.AUTHORIZATION if response.ok else State.CLOSED
        return response.render()

    def receive_data(self, data: bytes) -> None:
        """Add client octets; ``b""`` means EOF. Octets arriving while STLS is pending
        are discarded (RFC 2595 §4). Raises LocalProtocolError for data after EOF."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data after EOF")
        if self._state is State.CLOSED or self._tls_pending or self._due is _Due.STLS:
            return
        self._lines.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA. Raises LocalProtocolError while a response is
        due or before the greeting. Spec: RFC 1939 §3, RFC 2449 §6.6."""
        if self._due is not None:
            raise LocalProtocolError(f"a response is due ({self._due.name})")
        if self._state is State.CONNECTED:
            raise LocalProtocolError("send the greeting first")
        if self._state is State.CLOSED:
            return ConnectionClosed()
        if self._tls_pending:
            return self._close() if self._eof else NEED_DATA
        line = self._read_line()
        if isinstance(line, Event | NeedData):
            return line
        return self._dispatch(line)

    def send(self, response: Response) -> bytes:
        """Answer the pending User, StartTls or Quit event, or refuse the pending Pass,
        AuthStarted, AuthResponse, Retr or Top with a ``-ERR``. Raises
        LocalProtocolError when nothing is due or when a ``+OK`` needs ``logged_in`` /
        ``message_follows``. Spec: RFC 1939 §4-§7, RFC 2595 §4, RFC 5034 §4."""
        due = self._take_due()
        if response.ok and due in (_Due.LOGIN, _Due.MESSAGE):
            self._due = due
            raise LocalProtocolError("answer success with logged_in / message_follows")
        if due is _Due.USER:
            self._user = self._pending_user if response.ok else None
        elif due is _Due.LOGIN:
            self._user = None
            self._auth = False
        elif due is _Due.STLS and response.ok:
            self._tls_pending = True
            self._lines.clear()
        elif due is _Due.QUIT:
            self._close()
        self._message = None
        return response.render()

    def logged_in(self, sizes: Sequence[int], uids: Sequence[str]) -> bytes:
        """Accept the pending Pass, AuthStarted or AuthResponse: the maildrop is locked
        and listed (``sizes`` as ``pop3_size`` counts, one unique-id per message).
        Enters TRANSACTION. Raises LocalProtocolError when no login is pending or the
        listing is malformed (see ``Maildrop``). Spec: RFC 1939 §4, §7 (PASS)."""
        if self._due is not _Due.LOGIN:
            raise LocalProtocolError("no login is pending")
        maildrop = Maildrop(sizes, uids)
        self._due = None
        self._auth = False
        self._maildrop = maildrop
        self._state = State.TRANSACTION
        count, octets = maildrop.stat()
        return _ok(f"maildrop has {_messages(count, octets)}")

    def challenge(self, data: bytes) -> bytes:
        """Send a SASL challenge (raw octets, base64-encoded here) to the pending
        AuthStarted or AuthResponse; the client's next line comes as AuthResponse.
        Also used for additional data with success (then expect an empty response).
        Raises LocalProtocolError when no AUTH exchange is pending.
        Spec: RFC 5034 §4, RFC 4422 §3.6."""
        if self._due is not _Due.LOGIN or not self._auth:
            raise LocalProtocolError("no AUTH exchange is pending")
        self._due = None
        return b"+ " + sasl.encode_challenge(data) + b"\r\n"

    def message_follows(self) -> bytes:
        """The ``+OK`` line for the pending Retr or Top; the driver then writes the
        payload (``stuff_chunks``), which ends with ``.`` CRLF. If reading the content
        fails after this, the driver must close the connection.
        Spec: RFC 1939 §5 (RETR), §7 (TOP)."""
        if self._due is not _Due.MESSAGE or self._message is None:
            raise LocalProtocolError("no RETR or TOP is pending")
        message, self._message, self._due = self._message, None, None
        if isinstance(message, Retr):
            return _ok(f"{message.size} octets")
        return _ok("top of message follows")

    def tls_established(self) -> None:
        """The TLS handshake after ``+OK`` to STLS succeeded: forget the buffered octets
        and any USER. Raises LocalProtocolError if no STLS is pending.
        Spec: RFC 2595 §4."""
        if not self._tls_pending:
            raise LocalProtocolError("no STLS handshake is pending")
        self._tls_pending = False
        self._tls_active = True
        self._user = None
        self._lines.clear()

    def abort(self, response: Response) -> bytes:
        """Render an unsolicited closing response (``-ERR`` on idle timeout or
        shutdown) and end the session without UPDATE. Spec: RFC 1939 §3 (autologout
        timer), §6."""
        self._due = None
        self._close()
        return response.render()

    # --- internals ------------------------------------------------------------------
    def _take_due(self) -> _Due:
        if self._due is None:
            raise LocalProtocolError("no response is due")
        due, self._due = self._due, None
        return due

    def _emit(self, event: Event, due: _Due) -> Event:
        self._due = due
        return event

    def _close(self) -> ConnectionClosed:
        self._state = State.CLOSED
        self._lines.clear()
        self._auth = False
        self._tls_pending = False
        self._message = None
        return ConnectionClosed()

    def _bad(self, text: str, code: ResponseCode | None = None) -> Event:
        self._errors += 1
        if self._errors > self.config.errors_max:
            self._close()
            return TooManyErrors(response=_err("too many errors, closing"))
        return BadCommand(text=text, response=Response(False, text, code).render())

    def _read_line(self) -> bytes | Event | NeedData:
        bound = limits.AUTH_LINE_MAX if self._auth else limits.COMMAND_LINE_MAX
        line = self._lines.read(bound)
        if line is ReadStatus.TOO_LONG:
            self._auth = False
            return self._bad("line too long")
        if line is ReadStatus.NEED_DATA:
            return self._close() if self._eof else NEED_DATA
        assert isinstance(line, bytes)
        return line

    def _dispatch(self, line: bytes) -> Event:
        if self._auth:
            return self._emit(AuthResponse(line), _Due.LOGIN)
        if _CONTROL.search(line) is not None:
            return self._bad("syntax error")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return self._bad("syntax error")
        keyword, _, arg = text.partition(" ")
        keyword = keyword.upper() if keyword.isascii() else ""
        states = COMMANDS.get(keyword)
        handler = _HANDLERS.get(keyword)
        if states is None or handler is None:
            return self._bad("unknown command")
        if self._state not in states:
            return self._bad(f"{keyword} not valid in this state")
        return handler(self, arg)

    def _listing(self) -> Maildrop:
        assert self._maildrop is not None  # TRANSACTION commands only
        return self._maildrop

    # --- AUTHORIZATION handlers ---------------------------------------------------------
    def _cmd_user(self, arg: str) -> Event:
        if not self.plaintext_allowed:
            return self._bad(_PLAINTEXT_REFUSED, ResponseCode.AUTH)
        name = arg.strip(" ")
        if not name:
            return self._bad("syntax: USER name")
        self._user = None
        self._pending_user = name
        return self._emit(User(name), _Due.USER)

    def _cmd_pass(self, arg: str) -> Event:
        if not self.plaintext_allowed:
            return self._bad(_PLAINTEXT_REFUSED, ResponseCode.AUTH)
        if self._user is None:
            return self._bad("USER first")
        if not arg:
            return self._bad("syntax: PASS password")
        return self._emit(Pass(self._user, arg), _Due.LOGIN)

    def _cmd_apop(self, arg: str) -> Event:
        return self._bad("APOP not supported")

    def _cmd_auth(self, arg: str) -> Event:
        args = split_args(arg)
        offered = self.mechanisms()
        if not args:
            lines = offered
            return AuthMechanisms(response=render_multiline(Response(True), lines))
        if len(args) > 2:
            return self._bad("syntax: AUTH mechanism [initial-response]")
        mechanism = args[0].upper()
        if mechanism not in offered:
            if mechanism in self.config.mechanisms:
                return self._bad(_PLAINTEXT_REFUSED, ResponseCode.AUTH)
            return self._bad("unsupported authentication mechanism")
        initial = args[1].encode("ascii", "replace") if len(args) == 2 else None
        self._user = None
        self._auth = True
        return self._emit(AuthStarted(mechanism, initial), _Due.LOGIN)

    def _cmd_stls(self, arg: str) -> Event:
        if arg.strip(" "):
            return self._bad("syntax: STLS")
        if self._tls_active:
            return self._bad("TLS already active")
        if not self.config.tls_available:
            return self._bad("STLS not available")
        self._lines.clear()
        return self._emit(StartTls(), _Due.STLS)

    def _cmd_capa(self, arg: str) -> Event:
        if split_args(arg):
            return self._bad("syntax: CAPA")
        status = Response(True, "capability list follows")
        return Capa(response=render_multiline(status, self.capabilities()))

    def _cmd_quit(self, arg: str) -> Event:
        if split_args(arg):
            return self._bad("syntax: QUIT")
        if self._state is State.TRANSACTION:
            self._state = State.UPDATE
            return self._emit(Quit(State.TRANSACTION, self._listing().deleted()), _Due.QUIT)
        return self._emit(Quit(State.AUTHORIZATION, ()), _Due.QUIT)

    # --- TRANSACTION handlers -------------------------------------------------------------
    def _cmd_stat(self, arg: str) -> Event:
        if split_args(arg):
            return self._bad("syntax: STAT")
        count, octets = self._listing().stat()
        return Stat(response=_ok(f"{count} {octets}"))

    def _cmd_list(self, arg: str) -> Event:
        ok, msg = parse_optional_msg(arg)
        if not ok:
            return self._bad("syntax: LIST [msg]")
        drop = self._listing()
        if msg is None:
            count, octets = drop.stat()
            status = Response(True, _messages(count, octets))
            lines = (f"{number} {size}" for number, size in drop.listing())
            return List(msg=None, response=render_multiline(status, lines))
        if not drop.exists(msg):
            return List(msg=msg, response=_err(_NO_SUCH_MESSAGE))
        return List(msg=msg, response=_ok(f"{msg} {drop.size(msg)}"))

    def _cmd_uidl(self, arg: str) -> Event:
        ok, msg = parse_optional_msg(arg)
        if not ok:
            return self._bad("syntax: UIDL [msg]")
        drop = self._listing()
        if msg is None:
            lines = (f"{number} {drop.uid(number)}" for number, _ in drop.listing())
            return Uidl(msg=None, response=render_multiline(Response(True), lines))
        if not drop.exists(msg):
            return Uidl(msg=msg, response=_err(_NO_SUCH_MESSAGE))
        return Uidl(msg=msg, response=_ok(f"{msg} {drop.uid(msg)}"))

    def _cmd_retr(self, arg: str) -> Event:
        msg = parse_msg(arg)
        if msg is None:
            return self._bad("syntax: RETR msg")
        drop = self._listing()
        if not drop.exists(msg):
            return NoSuchMessage(msg=msg, response=_err(_NO_SUCH_MESSAGE))
        event = Retr(msg, drop.size(msg))
        self._message = event
        return self._emit(event, _Due.MESSAGE)

    def _cmd_top(self, arg: str) -> Event:
        parsed = parse_top(arg)
        if parsed is None:
            return self._bad("syntax: TOP msg n")
        msg, lines = parsed
        if not self._listing().exists(msg):
            return NoSuchMessage(msg=msg, response=_err(_NO_SUCH_MESSAGE))
        event = Top(msg, lines)
        self._message = event
        return self._emit(event, _Due.MESSAGE)

    def _cmd_dele(self, arg: str) -> Event:
        msg = parse_msg(arg)
        if msg is None:
            return self._bad("syntax: DELE msg")
        drop = self._listing()
        if drop.delete(msg):
            return Dele(msg=msg, deleted=True, response=_ok(f"message {msg} deleted"))
        text = f"message {msg} already deleted" if drop.is_deleted(msg) else _NO_SUCH_MESSAGE
        return Dele(msg=msg, deleted=False, response=_err(text))

    def _cmd_noop(self, arg: str) -> Event:
        if split_args(arg):
            return self._bad("syntax: NOOP")
        return Noop(response=_ok())

    def _cmd_rset(self, arg: str) -> Event:
        if split_args(arg):
            return self._bad("syntax: RSET")
        drop = self._listing()
        drop.reset()
        count, octets = drop.stat()
        return Rset(response=_ok(f"maildrop has {_messages(count, octets)}"))


_HANDLERS: Mapping[str, Callable[[ServerConnection, str], Event]] = {
    "USER": ServerConnection._cmd_user,
    "PASS": ServerConnection._cmd_pass,
    "APOP": ServerConnection._cmd_apop,
    "AUTH": ServerConnection._cmd_auth,
    "STLS": ServerConnection._cmd_stls,
    "CAPA": ServerConnection._cmd_capa,
    "QUIT": ServerConnection._cmd_quit,
    "STAT": ServerConnection._cmd_stat,
    "LIST": ServerConnection._cmd_list,
    "UIDL": ServerConnection._cmd_uidl,
    "RETR": ServerConnection._cmd_retr,
    "TOP": ServerConnection._cmd_top,
    "DELE": ServerConnection._cmd_dele,
    "NOOP": ServerConnection._cmd_noop,
    "RSET": ServerConnection._cmd_rset,
}
