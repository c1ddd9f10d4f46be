"""POP3 responses: ``+OK`` / ``-ERR`` status lines with extended response codes, and
multi-line responses ending in a line holding ``.``.

Spec: RFC 1939 §3, RFC 2449 §8 (extended response codes), RFC 3206 (SYS, AUTH).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from postel.pop3 import limits

__all__ = [
    "AUTH_CANCELLED",
    "AUTH_FAILED",
    "BEGIN_TLS",
    "GREETING",
    "IN_USE",
    "SEND_PASS",
    "SIGNING_OFF",
    "SYS_TEMP",
    "UPDATE_FAILED",
    "Response",
    "ResponseCode",
    "render_multiline",
]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class ResponseCode(enum.StrEnum):
    """Extended response codes sent in brackets after ``-ERR``.

    Spec: RFC 2449 §8 (§8.1: IN-USE, LOGIN-DELAY), RFC 3206 §4 (SYS/TEMP,
    SYS/PERM), §5 (AUTH).
    """

    IN_USE = "IN-USE"
    """The maildrop is locked by another session. Spec: RFC 2449 §8.1."""
    LOGIN_DELAY = "LOGIN-DELAY"
    """Logging in too often; not used (no LOGIN-DELAY capability). Spec: RFC 2449 §8.1."""
    SYS_TEMP = "SYS/TEMP"
    """A temporary system problem; retry later. Spec: RFC 3206 §4."""
    SYS_PERM = "SYS/PERM"
    """A permanent system problem. Spec: RFC 3206 §4."""
    AUTH = "AUTH"
    """A credentials problem, including logging in against policy (plaintext without
    TLS). Spec: RFC 3206 §5."""


def _sanitise(text: str) -> str:
    """Control characters become spaces and non-ASCII becomes '?': response text never
    carries a line end of its own."""
    return _UNSAFE.sub(" ", text).encode("ascii", "replace").decode("ascii")


@dataclass(frozen=True, slots=True)
class Response:
    """One status line: ``+OK text`` or ``-ERR [CODE] text``.

    Args:
        ok: True for ``+OK``, False for ``-ERR``.
        text: human-readable text (sanitised when rendered).
        code: an extended response code, only with ``ok=False``.

    Spec: RFC 1939 §3, RFC 2449 §8.
    """

    ok: bool
    text: str = ""
    code: ResponseCode | None = None

    def render(self) -> bytes:
        """Wire form, cut to ``RESPONSE_LINE_MAX`` octets including CRLF.
        Spec: RFC 1939 §3, RFC 2449 §4, §8."""
        parts = ["+OK" if self.ok else "-ERR"]
        if self.code is not None and not self.ok:
            parts.append(f"[{self.code}]")
        text = _sanitise(self.text)
        if text:
            parts.append(text)
        line = " ".join(parts).encode("ascii")
        return line[: limits.RESPONSE_LINE_MAX - 2] + b"\r\n"


def render_multiline(status: Response, lines: Iterable[str]) -> bytes:
    """A positive multi-line response: the status line, each line dot-stuffed and ended
    by CRLF, then ``.`` CRLF. Spec: RFC 1939 §3."""
    out = [status.render()]
    for line in lines:
        text = _sanitise(line).encode("ascii")
        out.append((b"." + text if text.startswith(b".") else text) + b"\r\n")
    out.append(b".\r\n")
    return b"".join(out)


# --- Responses a driver sends (constants are immutable values) -------------------
GREETING = Response(True, "postel POP3 ready")
"""The greeting; no APOP timestamp (APOP is not offered). Spec: RFC 1939 §4."""
SEND_PASS = Response(True, "send PASS")
"""Positive answer to USER; the same whether the account exists or not.
Spec: RFC 1939 §7 (USER)."""
BEGIN_TLS = Response(True, "Begin TLS negotiation")
"""Positive answer to STLS. Spec: RFC 2595 §4."""
SIGNING_OFF = Response(True, "postel POP3 server signing off")
"""Answer to QUIT (after the UPDATE state removed the deleted messages).
Spec: RFC 1939 §4, §6."""
UPDATE_FAILED = Response(False, "some deleted messages not removed", ResponseCode.SYS_TEMP)
"""Answer to QUIT when the deletions could not be applied. Spec: RFC 1939 §6,
RFC 3206 §4."""
AUTH_FAILED = Response(False, "authentication failed", ResponseCode.AUTH)
"""Wrong credentials (PASS, AUTH). Spec: RFC 1939 §7 (PASS), RFC 3206 §5."""
AUTH_CANCELLED = Response(False, "authentication cancelled")
"""The client answered a challenge with ``*``. Spec: RFC 5034 §4."""
IN_USE = Response(False, "maildrop already locked", ResponseCode.IN_USE)
"""Another session holds the maildrop. Spec: RFC 1939 §7 (PASS), RFC 2449 §8.1."""
SYS_TEMP = Response(False, "temporary system problem, try again later", ResponseCode.SYS_TEMP)
"""A store failure (message not readable now, maildrop not listable).
Spec: RFC 3206 §4."""
