"""Events, commands and capability values of the sans-IO SMTP client core.

The client driver writes what the ``ClientConnection`` methods return and feeds the
server's bytes to ``receive_data``; ``next_event`` then yields one of these events.

``NeedData`` / ``NEED_DATA`` are the server core's (one type for both sides): read from
the socket and call ``receive_data``.

Spec: RFC 5321 §4.1, §4.2, §3.8; RFC 1869 (EHLO keywords); RFC 2920; RFC 4954 §4.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.smtp.events import NEED_DATA, NeedData
from postel.smtp.grammar import Path
from postel.smtp.params import MailParams
from postel.smtp.reply import Reply

__all__ = [
    "NEED_DATA",
    "AuthChallenge",
    "CannotDeliver",
    "ClientEvent",
    "Command",
    "ConnectionClosed",
    "EhloDone",
    "Extensions",
    "Greeting",
    "NeedData",
    "NeedsConversion",
    "Phase",
    "ReplyReceived",
    "ServiceClosing",
    "TransactionOutcome",
    "TransactionPlan",
]


class Command(enum.StrEnum):
    """What a reply answers. ``MESSAGE`` is the end of DATA content (``<CRLF>.<CRLF>``),
    also when the content was aborted with a lone dot; ``BDAT_LAST`` the last chunk.
    The replies to these two carry the message's fate. Spec: RFC 5321 §4.1.1,
    RFC 3030 §2."""

    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    MESSAGE = "MESSAGE"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT LAST"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"


class Phase(enum.Enum):
    """Where the client stands in the mail transaction, from what it has sent and the
    replies seen so far. Spec: RFC 5321 §3.3, §4.1.4."""

    IDLE = enum.auto()
    """No transaction: MAIL may be sent."""
    MAIL = enum.auto()
    """MAIL sent: RCPT, DATA or BDAT may follow."""
    DATA = enum.auto()
    """DATA sent, its reply not yet seen."""
    CONTENT = enum.auto()
    """354 received: the message (or a lone dot) must be sent now."""
    BDAT = enum.auto()
    """A non-LAST BDAT chunk sent."""
    FAILED = enum.auto()
    """The transaction was refused: send RSET."""


@dataclass(frozen=True, slots=True)
class Extensions:
    """What the server offered in its EHLO reply; ``Extensions()`` after HELO.

    Attributes:
        size: SIZE was offered (RFC 1870 §4).
        size_max: its fixed maximum in octets; None when absent or 0 (no fixed limit).
        auth: SASL mechanism names offered with AUTH, upper case (RFC 4954 §3).
        keywords: every EHLO keyword seen, upper case (unknown ones included).

    Spec: RFC 5321 §4.1.1.1, RFC 1869 §4.3, RFC 1870, RFC 2920, RFC 6152, RFC 6531,
    RFC 3030, RFC 3207, RFC 3461, RFC 2034, RFC 4954, RFC 8689.
    """

    size: bool = False
    size_max: int | None = None
    pipelining: bool = False
    eight_bit_mime: bool = False
    smtputf8: bool = False
    chunking: bool = False
    binary_mime: bool = False
    starttls: bool = False
    dsn: bool = False
    enhanced_status_codes: bool = False
    requiretls: bool = False
    auth: frozenset[str] = frozenset()
    keywords: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Base of every client event."""


@dataclass(frozen=True, slots=True)
class Greeting(ClientEvent):
    """The server's opening reply: 220 to go on; 554 refuses the session (send QUIT).
    A 421 greeting arrives as ``ServiceClosing``. Spec: RFC 5321 §3.1, §4.3.1."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class EhloDone(ClientEvent):
    """EHLO was accepted; ``extensions`` is what the server offers.
    A refused EHLO arrives as ``ReplyReceived(Command.EHLO, ...)``: try ``helo``.
    Spec: RFC 5321 §4.1.1.1, §3.2."""

    extensions: Extensions
    reply: Reply


@dataclass(frozen=True, slots=True)
class ReplyReceived(ClientEvent):
    """The reply to one command, matched in send order (also when pipelined).

    ``path`` is the reverse-path (MAIL) or forward-path (RCPT) the reply is about, so a
    pipelined transaction can tell which recipients were accepted.
    Spec: RFC 5321 §4.2, §4.3.2; RFC 2920 §3.1.
    """

    command: Command
    reply: Reply
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class AuthChallenge(ClientEvent):
    """A 334 reply to AUTH: ``challenge`` is the base64-decoded server data. Answer with
    ``auth_response`` (or ``auth_cancel``). ``send_initial_response``: the initial
    response was too long for the AUTH line; answer this challenge with it.
    Spec: RFC 4954 §4, RFC 4422 §5.1."""

    challenge: bytes
    send_initial_response: bool = False


@dataclass(frozen=True, slots=True)
class ServiceClosing(ClientEvent):
    """A 421 reply (to a command or unsolicited): the server is closing the session.
    ``outstanding`` lists the commands that will get no reply; the first is the one the
    421 answered, if any. Close the connection. Spec: RFC 5321 §3.8, §4.2.2."""

    reply: Reply
    outstanding: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class ConnectionClosed(ClientEvent):
    """The session is over: the server closed the connection (EOF), QUIT was answered,
    or the server's input broke the protocol. ``outstanding`` lists the commands that
    got no reply: a non-empty one with ``Command.MESSAGE`` means the message's fate is
    unknown (RFC 5321 §6.1: treat as a temporary failure). Spec: RFC 5321 §3.8."""

    outstanding: tuple[Command, ...] = ()


@dataclass(frozen=True, slots=True)
class TransactionPlan:
    """Send the message with these MAIL parameters. Spec: RFC 6152 §3, RFC 6531 §3.4."""

    params: MailParams


@dataclass(frozen=True, slots=True)
class NeedsConversion:
    """The message has 8-bit content and the server lacks 8BITMIME: convert it to 7bit
    (e.g. quoted-printable) or bounce it. Spec: RFC 6152 §3."""

    reason: str


@dataclass(frozen=True, slots=True)
class CannotDeliver:
    """This server cannot take the message at all: bounce with ``reply`` (a locally
    generated 5xx). Spec: RFC 6531 §3.2 (SMTPUTF8), RFC 1870 §5 (SIZE)."""

    reply: Reply


TransactionOutcome = TransactionPlan | NeedsConversion | CannotDeliver
"""What ``plan_transaction`` returns."""
