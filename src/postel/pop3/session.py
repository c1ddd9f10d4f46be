"""Session configuration and the state table of the POP3 server core.

Spec: RFC 1939 §3 (states), §4-§7 (commands per state), RFC 2449 §5 (CAPA), RFC 2595 §4
(STLS), RFC 5034 §4 (AUTH), RFC 8314 §3 (implicit TLS).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from postel import sasl
from postel.errors import LocalProtocolError
from postel.pop3 import limits

__all__ = ["COMMANDS", "Pop3Config", "State"]


@dataclass(frozen=True, slots=True)
class Pop3Config:
    """What one listener offers.

    Args:
        mechanisms: SASL mechanisms supported, strongest first, each one of
            ``postel.sasl.MECHANISMS``. Those sending the password in the clear
            (PLAIN, LOGIN) are offered only while ``plaintext_allowed``.
        tls_available: a certificate is loaded: offer STLS before TLS (RFC 2595 §4).
        plaintext_without_tls: allow USER/PASS, PLAIN and LOGIN without TLS (loopback
            clients in the embedded default); otherwise only under TLS.
        errors_max: protocol errors tolerated; the next one ends the session.
        implementation: the IMPLEMENTATION capability text (RFC 2449 §6.9).

    Raises:
        LocalProtocolError: an unknown mechanism, a negative limit, a bad implementation
            string.

    Spec: RFC 2449 §6, RFC 2595 §4, RFC 5034 §4, RFC 8314 §3.
    """

    mechanisms: tuple[str, ...] = sasl.MECHANISMS
    tls_available: bool = False
    plaintext_without_tls: bool = False
    errors_max: int = limits.ERRORS_MAX
    implementation: str = "postel"

    def __post_init__(self) -> None:
        unknown = [name for name in self.mechanisms if name not in sasl.MECHANISMS]
        if unknown:
            raise LocalProtocolError(f"unknown SASL mechanisms {unknown!r}")
        if self.errors_max < 0:
            raise LocalProtocolError("errors_max must not be negative")
        text = self.implementation
        if not text or not text.isascii() or not text.isprintable() or len(text) > 100:
            raise LocalProtocolError(f"bad implementation string {text!r}")


class State(enum.StrEnum):
    """Session states. Spec: RFC 1939 §3."""

    CONNECTED = "connected"
    """Before the greeting."""
    AUTHORIZATION = "authorization"
    """The client identifies itself (also while STLS or AUTH is in progress)."""
    TRANSACTION = "transaction"
    """Logged in; the maildrop listing is held by the core."""
    UPDATE = "update"
    """QUIT in TRANSACTION: the driver removes the deleted messages."""
    CLOSED = "closed"


_AUTHORIZATION = frozenset({State.AUTHORIZATION})
_TRANSACTION = frozenset({State.TRANSACTION})

COMMANDS: Mapping[str, frozenset[State]] = {
    "USER": _AUTHORIZATION,
    "PASS": _AUTHORIZATION,
    "APOP": _AUTHORIZATION,
    "AUTH": _AUTHORIZATION,
    "STLS": _AUTHORIZATION,
    "CAPA": _AUTHORIZATION | _TRANSACTION,
    "QUIT": _AUTHORIZATION | _TRANSACTION,
    "STAT": _TRANSACTION,
    "LIST": _TRANSACTION,
    "RETR": _TRANSACTION,
    "DELE": _TRANSACTION,
    "NOOP": _TRANSACTION,
    "RSET": _TRANSACTION,
    "TOP": _TRANSACTION,
    "UIDL": _TRANSACTION,
}
"""Which states accept each command (keywords are case-insensitive); any other state
answers ``-ERR``. Spec: RFC 1939 §4-§7, §9; RFC 2449 §5; RFC 2595 §4; RFC 5034 §4."""
