"""Session configuration and the state table of the SMTP server core.

Spec: RFC 5321 §4.1.4 (command order), §3.1, §3.3; RFC 3207.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from postel import limits
from postel.errors import LocalProtocolError
from postel.smtp.transparency import BareLineEndings


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Limits and offered extensions of one listener.

    Args:
        hostname: our name in the greeting and replies (RFC 5321 §4.1.1.1).
        message_size_max: octets, advertised as ``SIZE`` (RFC 1870 §4).
        recipients_max: accepted RCPTs per transaction; more get 452 4.5.3
            (RFC 5321 §4.5.3.1.8).
        errors_max: protocol errors tolerated; the next one gets 421 and the session
            ends (RFC 5321 §4.5.3.2, local policy).
        bare_line_endings: DATA content handling of bare CR/LF (RELIABILITY.md D4).
        tls_available: advertise STARTTLS (RFC 3207).
        smtputf8, dsn, chunking: advertise SMTPUTF8 (RFC 6531), DSN (RFC 3461),
            CHUNKING + BINARYMIME (RFC 3030).
        requiretls: advertise REQUIRETLS once TLS is active, never before
            (RFC 8689 §4.1; the role must then honour it onward).
        auth_mechanisms: SASL mechanisms to advertise at first (RFC 4954 §3); the
            driver may change the offer with ``offer_auth`` (e.g. after STARTTLS).
        auth_required: MAIL needs a successful AUTH first (the submission role):
            530 5.7.0 otherwise (RFC 4954 §6, RFC 6409 §4.3).
    """

    hostname: str
    message_size_max: int = limits.SMTP_MESSAGE_SIZE_MAX
    recipients_max: int = limits.SMTP_RECIPIENTS_MAX
    errors_max: int = limits.SMTP_ERRORS_MAX
    bare_line_endings: BareLineEndings = BareLineEndings.NORMALIZE
    tls_available: bool = False
    smtputf8: bool = True
    dsn: bool = True
    chunking: bool = True
    requiretls: bool = False
    auth_mechanisms: tuple[str, ...] = ()
    auth_required: bool = False

    def __post_init__(self) -> None:
        if min(self.message_size_max, self.recipients_max) < 1 or self.errors_max < 0:
            raise LocalProtocolError("SMTP limits must be positive")
        if not self.hostname or not self.hostname.isprintable() or " " in self.hostname:
            raise LocalProtocolError(f"bad hostname {self.hostname!r}")


class State(enum.StrEnum):
    """Session states. Spec: RFC 5321 §4.1.4 (command ordering), §3.3."""

    CONNECTED = "connected"
    """Before the greeting."""
    REFUSED = "refused"
    """Greeting was 554: only QUIT is accepted (RFC 5321 §3.1)."""
    INITIAL = "initial"
    """Greeted; no accepted EHLO/HELO yet (also after STARTTLS)."""
    GREETED = "greeted"
    """EHLO/HELO accepted, no transaction."""
    MAIL = "mail"
    """MAIL accepted, no recipient yet."""
    RCPT = "rcpt"
    """At least one recipient accepted."""
    BDAT = "bdat"
    """At least one non-LAST BDAT chunk accepted."""
    DATA = "data"
    """Reading DATA content."""
    TLS_PENDING = "tls_pending"
    """220 sent to STARTTLS; waiting for ``tls_established``."""
    CLOSED = "closed"


_SESSION = frozenset({State.INITIAL, State.GREETED, State.MAIL, State.RCPT, State.BDAT})

COMMANDS: Mapping[str, frozenset[State]] = {
    "EHLO": _SESSION,
    "HELO": _SESSION,
    "MAIL": frozenset({State.GREETED}),
    "RCPT": frozenset({State.MAIL, State.RCPT}),
    "DATA": frozenset({State.MAIL, State.RCPT, State.BDAT}),
    "BDAT": _SESSION,
    "RSET": _SESSION,
    "NOOP": _SESSION,
    "HELP": _SESSION,
    "VRFY": _SESSION,
    "EXPN": _SESSION,
    "STARTTLS": frozenset({State.GREETED}),
    "AUTH": frozenset({State.GREETED}),
    "QUIT": _SESSION | {State.REFUSED},
}
"""Which states accept each command; any other state answers 503 5.5.1. A handler may
refine (DATA without recipients is 554, BDAT is always read to stay in sync).
Spec: RFC 5321 §4.1.4, §4.3.2."""
