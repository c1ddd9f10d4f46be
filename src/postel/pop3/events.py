"""Events the POP3 server core hands to its driver.

Three kinds:

* ``Answered`` events (``Capa``, ``AuthMechanisms``, ``Stat``, ``List``, ``Uidl``,
  ``Dele``, ``Rset``, ``Noop``, ``BadCommand``, ``TooManyErrors``): the core has
  answered on its own and applied the command; the driver writes ``event.response``
  before calling ``next_event`` again. The typed fields are there for logging.
* Policy events (``User``, ``Pass``, ``AuthStarted``, ``AuthResponse``, ``StartTls``,
  ``Retr``, ``Top``, ``Quit``): a response is due; ``next_event`` raises until the
  driver answers with one of ``send``, ``logged_in``, ``challenge`` or
  ``message_follows`` (each event says which).
* ``ConnectionClosed`` (no response) and ``NeedData`` (read, then ``receive_data``).

Spec: RFC 1939 §3-§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4.
"""

from __future__ import annotations

from dataclasses import dataclass

from postel.pop3.session import State

__all__ = [
    "NEED_DATA",
    "Answered",
    "AuthMechanisms",
    "AuthResponse",
    "AuthStarted",
    "BadCommand",
    "Capa",
    "ConnectionClosed",
    "Dele",
    "Event",
    "List",
    "NeedData",
    "NoSuchMessage",
    "Noop",
    "Pass",
    "Quit",
    "Retr",
    "Rset",
    "StartTls",
    "Stat",
    "TooManyErrors",
    "Top",
    "Uidl",
    "User",
]


@dataclass(frozen=True, slots=True)
class NeedData:
    """No event can be produced before more bytes arrive."""


NEED_DATA = NeedData()
"""The one NeedData value."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered(Event):
    """The core answered: write ``response`` (one or more complete lines)."""

    response: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Capa(Answered):
    """CAPA, answered with the capability list. Spec: RFC 2449 §5."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthMechanisms(Answered):
    """``AUTH`` without a mechanism, answered with the SASL mechanism list as a
    multi-line ``+OK`` (the RFC 1734 form many clients still send).
    Spec: RFC 5034 §4 (AUTH), RFC 2449 §6.3 (SASL capability)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stat(Answered):
    """STAT, answered from the maildrop listing. Spec: RFC 1939 §5 (STAT)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class List(Answered):
    """LIST [msg], answered from the maildrop listing. Spec: RFC 1939 §5 (LIST)."""

    msg: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Uidl(Answered):
    """UIDL [msg], answered from the maildrop listing. Spec: RFC 1939 §7 (UIDL)."""

    msg: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dele(Answered):
    """DELE msg: ``deleted`` says whether the message is now marked (False for an
    invalid or already deleted number). Spec: RFC 1939 §5 (DELE)."""

    msg: int
    deleted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NoSuchMessage(Answered):
    """RETR or TOP of a number that is out of range or marked deleted, answered
    ``-ERR`` (not counted as a protocol error). Spec: RFC 1939 §5 (RETR), §7 (TOP)."""

    msg: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Answered):
    """RSET: every deletion mark was removed. Spec: RFC 1939 §5 (RSET)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Answered):
    """NOOP. Spec: RFC 1939 §5 (NOOP)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BadCommand(Answered):
    """A command refused on protocol grounds (unknown, syntax, wrong state, over-long
    line, APOP, PASS without USER, plaintext login without TLS); ``text`` is the
    reason. Counted toward the error limit. Spec: RFC 1939 §3."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TooManyErrors(Answered):
    """The client passed the error limit: write ``response`` and close; the next event
    is ConnectionClosed and no deletion is applied. Spec: RFC 1939 §6 (no UPDATE
    without QUIT), local policy."""


@dataclass(frozen=True, slots=True)
class User(Event):
    """USER name. Answer ``send(SEND_PASS)`` (the same for unknown accounts) or a
    ``-ERR``. Spec: RFC 1939 §7 (USER)."""

    name: str


@dataclass(frozen=True, slots=True)
class Pass(Event):
    """PASS after an accepted USER ``user``. Answer ``logged_in(sizes, uids)`` or
    ``send(-ERR)`` (``AUTH_FAILED``, ``IN_USE``, ``SYS_TEMP``); a refusal forgets the
    USER. ``password`` is the rest of the line, spaces included.
    Spec: RFC 1939 §7 (PASS)."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"Pass(user={self.user!r}, password=<{len(self.password)} characters>)"


@dataclass(frozen=True, slots=True)
class AuthStarted(Event):
    """AUTH mechanism [initial-response]: ``mechanism`` is upper-case and offered on
    this connection; ``initial_response`` is the raw base64 argument (``=`` for an
    empty one) or None. Decode it with ``postel.sasl.decode_response``; answer
    ``challenge(data)`` to continue, ``logged_in(...)`` on success or ``send(-ERR)``.
    Spec: RFC 5034 §4, RFC 4422 §3."""

    mechanism: str
    initial_response: bytes | None


@dataclass(frozen=True, slots=True)
class AuthResponse(Event):
    """The client's line answering a challenge, without its line end (``*`` cancels:
    ``decode_response`` gives CANCELLED; answer ``send(AUTH_CANCELLED)``). Answer as
    for AuthStarted. Spec: RFC 5034 §4."""

    line: bytes

    def __repr__(self) -> str:
        return f"AuthResponse(<{len(self.line)} octets>)"


@dataclass(frozen=True, slots=True)
class StartTls(Event):
    """STLS, allowed here. Answer ``send(BEGIN_TLS)``, run the handshake, then call
    ``tls_established()``; or ``send(-ERR)``. Octets after the command are discarded
    until then. Spec: RFC 2595 §4, CVE-2011-0411."""


@dataclass(frozen=True, slots=True)
class Retr(Event):
    """RETR msg of a valid, undeleted message of ``size`` octets. Answer
    ``message_follows()`` then write ``stuff_chunks(content)``; or ``send(SYS_TEMP)``
    when the content cannot be read. Spec: RFC 1939 §5 (RETR)."""

    msg: int
    size: int


@dataclass(frozen=True, slots=True)
class Top(Event):
    """TOP msg lines of a valid, undeleted message. Answer ``message_follows()`` then
    write ``stuff_chunks(top_chunks(content, lines))``; or ``send(SYS_TEMP)``.
    Spec: RFC 1939 §7 (TOP)."""

    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class Quit(Event):
    """QUIT given in ``state``. In TRANSACTION the session is now in UPDATE: remove the
    messages numbered ``deleted`` (all or none), then ``send(SIGNING_OFF)`` or
    ``send(UPDATE_FAILED)``. In AUTHORIZATION ``deleted`` is empty: ``send(SIGNING_OFF)``.
    The session then ends. Spec: RFC 1939 §4, §6."""

    state: State
    deleted: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The client closed (EOF) or the session ended. Close the socket. Deletion marks
    are dropped unless QUIT was answered. Spec: RFC 1939 §6."""
