"""Events the IMAP server core hands to its driver.

* ``CommandReceived``: a complete, parsed command allowed in the current state; the
  driver runs it and writes the responses (``postel.imap.responses``).
* ``LiteralContinuationNeeded`` and ``AppendStarted`` wait for the driver's decision:
  ``accept_literal()`` (returns the ``+`` continuation to write, if any) or
  ``reject_literal()`` (the driver writes its own tagged NO/BAD).
* ``AppendData`` / ``AppendMessageEnd`` / ``AppendCommandEnd`` stream APPEND messages;
  ``AppendAborted`` means the APPEND (all of its messages) must be dropped and answered
  with tagged BAD.
* ``BadCommand`` is answered ``tag BAD [code] text`` (``* BAD`` without a tag);
  ``CommandRefused`` is answered ``tag NO [code] text`` (BADCHARSET, TOOBIG).
* ``IdleDone``, ``AuthenticateResponse`` while IDLE / AUTHENTICATE run.
* ``ConnectionClosed`` after EOF or LOGOUT; ``NeedData``: read and ``receive_data``.

Spec: RFC 9051 §2.2, §6, §7.5; RFC 7888; RFC 3502; RFC 2177 / RFC 9051 §6.3.13.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from postel.imap.command_types import Command

__all__ = [
    "NEED_DATA",
    "AppendAborted",
    "AppendCommandEnd",
    "AppendData",
    "AppendMessageEnd",
    "AppendStarted",
    "AuthenticateResponse",
    "BadCommand",
    "CatenateEnd",
    "CatenateStarted",
    "CatenateText",
    "CatenateUrl",
    "CommandReceived",
    "CommandRefused",
    "ConnectionClosed",
    "Event",
    "IdleDone",
    "LiteralContinuationNeeded",
    "NeedData",
]


@dataclass(frozen=True, slots=True)
class NeedData:
    """Nothing more can be produced before more bytes arrive."""


NEED_DATA = NeedData()
"""The one NeedData value."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""


@dataclass(frozen=True, slots=True)
class CommandReceived(Event):
    """A parsed command, legal in the current state. Spec: RFC 9051 §6."""

    command: Command


@dataclass(frozen=True, slots=True)
class LiteralContinuationNeeded(Event):
    """The client announced a synchronizing literal of ``size`` octets in a command
    other than an APPEND message. ``accept_literal()`` returns the ``+`` line to send;
    ``reject_literal()`` drops the command (send a tagged NO or BAD; the client will
    not send the literal). Spec: RFC 9051 §4.3, §7.5."""

    tag: str
    size: int


@dataclass(frozen=True, slots=True)
class AppendStarted(Event):
    """An APPEND message literal of ``size`` octets is announced for ``mailbox`` (the
    first, or a further one of a MULTIAPPEND: ``index`` counts from 0). ``binary`` for
    literal8 (RFC 3516 §4.4); ``synchronizing`` False for ``{n+}``. The driver checks
    the mailbox and size and calls ``accept_literal()`` (then AppendData chunks and
    AppendMessageEnd follow) or ``reject_literal()`` (send tagged NO [TRYCREATE] or
    [TOOBIG]; octets of a non-synchronizing literal are then discarded by the core).
    Spec: RFC 9051 §6.3.12, RFC 3502 §6.3.11, RFC 7889."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: dt.datetime | None
    size: int
    binary: bool
    synchronizing: bool
    index: int = 0


@dataclass(frozen=True, slots=True)
class AppendData(Event):
    """Next octets of the message being appended (at most ``limits.APPEND_CHUNK_MAX``)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AppendMessageEnd(Event):
    """The message literal is complete (more may follow: MULTIAPPEND)."""


@dataclass(frozen=True, slots=True)
class CatenateStarted(Event):
    """An APPEND message built from CATENATE parts begins (the first message, or a
    further one of a MULTIAPPEND: ``index`` counts from 0). CatenateUrl and CatenateText
    parts follow, then CatenateEnd. No decision is due; the driver refuses the next
    CatenateText or AppendStarted literal (or answers at AppendCommandEnd) when the
    mailbox does not exist. Spec: RFC 4469 §5, RFC 3502 §6.3.11."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: dt.datetime | None
    index: int = 0


@dataclass(frozen=True, slots=True)
class CatenateUrl(Event):
    """A ``URL`` part: ``url`` as the client sent it (not yet parsed).
    Spec: RFC 4469 §5."""

    url: str


@dataclass(frozen=True, slots=True)
class CatenateText(Event):
    """A ``TEXT`` part of ``size`` octets is announced. The driver calls
    ``accept_literal()`` (AppendData chunks follow; the part ends at the next Catenate
    event) or ``reject_literal()`` (then answers tagged NO; the rest of the command is
    dropped by the core). Spec: RFC 4469 §5, RFC 7888."""

    tag: str
    size: int
    binary: bool
    synchronizing: bool


@dataclass(frozen=True, slots=True)
class CatenateEnd(Event):
    """The ``)`` ending the part list: the catenated message is complete (more
    messages may follow: MULTIAPPEND). Spec: RFC 4469 §5."""


@dataclass(frozen=True, slots=True)
class AppendCommandEnd(Event):
    """The APPEND command line ended: commit the messages and answer
    ``tag OK [APPENDUID ...]``. Spec: RFC 3502 §6.3.11, RFC 4315 §3."""

    tag: str


@dataclass(frozen=True, slots=True)
class AppendAborted(Event):
    """The APPEND command turned out malformed after its first message: drop every
    message it appended and answer ``tag BAD text``. Spec: RFC 3502 §6.3.11."""

    tag: str
    text: str


@dataclass(frozen=True, slots=True)
class BadCommand(Event):
    """A command the core refused on protocol grounds (syntax, unknown command, wrong
    state, bounds): answer ``tag BAD [code] text``, or ``* BAD text`` when ``tag`` is
    None. Spec: RFC 9051 §7.1.5."""

    tag: str | None
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class CommandRefused(Event):
    """A command the core answers NO for: ``code`` is ``BADCHARSET (UTF-8 US-ASCII)``
    or ``TOOBIG``. Answer ``tag NO [code] text``. Spec: RFC 9051 §7.1.2, RFC 7889."""

    tag: str
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class IdleDone(Event):
    """The client ended IDLE with ``DONE``: answer ``tag OK``. Spec: RFC 9051 §6.3.13."""

    tag: str


@dataclass(frozen=True, slots=True)
class AuthenticateResponse(Event):
    """One client line during AUTHENTICATE (BASE64, or ``*`` to cancel), CRLF
    removed. Spec: RFC 9051 §6.2.2."""

    line: bytes

    @property
    def cancelled(self) -> bool:
        """True for ``*``: answer tagged BAD. Spec: RFC 9051 §6.2.2."""
        return self.line == b"*"


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """EOF (possibly mid-command: drop any partial APPEND) or LOGOUT done."""
