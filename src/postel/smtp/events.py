"""Events the SMTP server core hands to its driver.

Two kinds:

* Events carrying a ``reply`` the core has already decided (``AutoReply``, ``Reset``,
  ``Quit``, ``TooManyErrors``, ``MessageRejected``, ``ChunkReceived``): the driver passes
  ``event.reply`` to ``ServerConnection.send`` (it may substitute its own reply only for
  ``ChunkReceived``, e.g. 452 when its storage failed).
* Policy events (``Hello``, ``MailFrom``, ``RcptTo``, ``DataStarted``,
  ``MessageComplete``, ``StartTls``): the driver decides and sends a reply.

``MessageData`` and ``ConnectionClosed`` need no reply. ``NeedData`` means: read from the
socket and call ``receive_data``.

Spec: RFC 5321 §4.1.1, RFC 2920, RFC 3030, RFC 3207.
"""

from __future__ import annotations

from dataclasses import dataclass

from postel.smtp.grammar import Path
from postel.smtp.params import MailParams, RcptParams
from postel.smtp.reply import Reply


@dataclass(frozen=True, slots=True)
class NeedData:
    """No event can be produced before more bytes arrive (h11's NEED_DATA)."""


NEED_DATA = NeedData()
"""The one NeedData value."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""


@dataclass(frozen=True, slots=True)
class AutoReply(Event):
    """The core answered a command on protocol grounds (syntax, sequence, NOOP, HELP,
    VRFY, EXPN, limits). Send ``reply``. Spec: RFC 5321 §4.2, §4.3.2."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Hello(Event):
    """EHLO (``extended``) or HELO. Any open transaction has been dropped.

    Answer ``conn.ehlo_reply()`` / ``conn.helo_reply()`` or a refusal.
    Spec: RFC 5321 §4.1.1.1, §4.1.4.
    """

    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class MailFrom(Event):
    """MAIL FROM. ``reverse_path.is_null`` for ``<>``. Answer 250 to open the
    transaction, 4xx/5xx to refuse. Spec: RFC 5321 §4.1.1.2."""

    reverse_path: Path
    params: MailParams


@dataclass(frozen=True, slots=True)
class RcptTo(Event):
    """RCPT TO. Answer 250/251 to accept the recipient, 4xx/5xx to refuse.
    Spec: RFC 5321 §4.1.1.3."""

    forward_path: Path
    params: RcptParams


@dataclass(frozen=True, slots=True)
class DataStarted(Event):
    """DATA with at least one accepted recipient. Answer 354 (``reply.START_MAIL_INPUT``)
    to receive content, or 4xx/5xx. Spec: RFC 5321 §4.1.1.4."""


@dataclass(frozen=True, slots=True)
class MessageData(Event):
    """A piece of message content, dot-unstuffed and line-end normalised (DATA) or raw
    (BDAT). No reply. Spec: RFC 5321 §4.5.2, RFC 3030 §2."""

    chunk: bytes


@dataclass(frozen=True, slots=True)
class ChunkReceived(Event):
    """A non-LAST BDAT chunk of ``size`` octets has been fully received. Send ``reply``
    (250), or a 4xx/5xx of your own, which fails the transaction. Spec: RFC 3030 §2."""

    size: int
    reply: Reply


@dataclass(frozen=True, slots=True)
class MessageComplete(Event):
    """The end of DATA (``<CRLF>.<CRLF>``) or BDAT LAST: store, then answer 250 or an
    error. The transaction ends either way. Spec: RFC 5321 §4.1.1.4, RFC 3030 §2."""


@dataclass(frozen=True, slots=True)
class MessageRejected(Event):
    """The message ended (or a BDAT chunk did) but the core refuses it: over the size
    limit, or a strict-mode violation. Discard what was stored, send ``reply``; the
    transaction ends. Spec: RFC 1870 §6.2, RFC 5321 §4.1.1.4."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class StartTls(Event):
    """STARTTLS. Send 220 (``reply.READY_TO_START_TLS``), start the TLS handshake, then
    call ``tls_established()``; or send 454. Bytes already received after the command
    are discarded. Spec: RFC 3207 §4, §5."""


@dataclass(frozen=True, slots=True)
class AuthRequested(Event):
    """``AUTH mechanism [initial-response]`` (the mechanism is one the session offers,
    upper-cased; ``initial_response`` is the raw base64 text, ``=`` for an empty one, or
    None). Answer 334 with a challenge (the next client line comes as AuthLine), 235
    on success, or 535/454/501 on failure. Spec: RFC 4954 §4."""

    mechanism: str
    initial_response: str | None


@dataclass(frozen=True, slots=True)
class AuthLine(Event):
    """One client line during an AUTH exchange (base64, or ``*`` to cancel, answered
    501). Answered like AuthRequested. ``too_long``: the line passed
    SMTP_COMMAND_LINE_HARD_MAX and was discarded (``line`` is empty); the exchange
    fails with 500 5.5.6. Spec: RFC 4954 §4."""

    line: bytes
    too_long: bool = False


@dataclass(frozen=True, slots=True)
class Reset(Event):
    """RSET: drop the transaction, send ``reply``. Spec: RFC 5321 §4.1.1.5."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Quit(Event):
    """QUIT: send ``reply`` (221) and close. Spec: RFC 5321 §4.1.1.10."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class TooManyErrors(Event):
    """The client passed the error limit: send ``reply`` (421) and close.
    Spec: RFC 5321 §4.5.3.2 (local policy), §3.8."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The client closed (EOF), or the session ended. Close the socket; discard any
    unfinished message. Spec: RFC 5321 §3.8."""
