"""SMTP replies: a code, an enhanced status code and text lines, rendered to wire bytes.

Spec: RFC 5321 §4.2, RFC 3463, RFC 2034.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from postel import limits
from postel.errors import LocalProtocolError

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def _sanitise(line: str) -> str:
    """Replace control characters (CR, LF, NUL ...) by a space and non-ASCII by '?'.

    Reply text never carries a line end of its own (RELIABILITY.md D4, test 8).
    """
    return _UNSAFE.sub(" ", line).encode("ascii", "replace").decode("ascii")


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply, possibly multi-line.

    Args:
        code: three-digit reply code, 200..599 (RFC 5321 §4.2.1).
        enhanced: enhanced status code "class.subject.detail" whose class equals the
            first digit of ``code`` (RFC 3463 §2), or None (greeting, EHLO reply, 354).
        text: one line of text, or a tuple of lines for a multi-line reply.

    Raises:
        LocalProtocolError: the code or the enhanced code is malformed.

    Spec: RFC 5321 §4.2.1, RFC 3463 §2, RFC 2034 §3.
    """

    code: int
    enhanced: str | None
    text: str | tuple[str, ...] = ""

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise LocalProtocolError(f"reply code out of range: {self.code}")
        if self.enhanced is not None:
            match = _ENHANCED.fullmatch(self.enhanced)
            if match is None or match.group(1) != str(self.code)[0]:
                raise LocalProtocolError(f"bad enhanced status code {self.enhanced!r}")

    @property
    def lines(self) -> tuple[str, ...]:
        """The text lines, sanitised; at least one (possibly empty) line."""
        raw = (self.text,) if isinstance(self.text, str) else self.text
        return tuple(_sanitise(line) for line in raw) or ("",)

    @property
    def is_positive(self) -> bool:
        """True for 2xx and 3xx (completion and intermediate). Spec: RFC 5321 §4.2.1."""
        return self.code < 400

    def render(self) -> bytes:
        """Wire form: ``code-text CRLF`` lines, the last one ``code SP text CRLF``.

        Each line is cut to ``limits.SMTP_REPLY_LINE_MAX`` octets including CRLF. The
        replies a session sends most (the same few values every time) come from a
        bounded cache. Spec: RFC 5321 §4.2.1, §4.5.3.1.5.
        """
        return _render(self)

    def _render(self) -> bytes:
        lines = self.lines
        out: list[bytes] = []
        for index, text in enumerate(lines):
            body = " ".join(part for part in (self.enhanced, text) if part)
            if index < len(lines) - 1:
                line = f"{self.code}-{body}"
            else:
                line = f"{self.code} {body}" if body else str(self.code)
            out.append(line.encode("ascii")[: limits.SMTP_REPLY_LINE_MAX - 2] + b"\r\n")
        return b"".join(out)


RENDER_CACHE_MAX = 1024
"""Rendered replies kept (a reply is an immutable value; replies that carry a queue id
are unique and simply pass through the cache)."""


@functools.lru_cache(maxsize=RENDER_CACHE_MAX)
def _render(reply: Reply) -> bytes:
    return reply._render()


# --- Replies the core gives on its own (constants are immutable values) -----------
OK = Reply(250, "2.0.0", "OK")
"""Generic success. Spec: RFC 5321 §4.2.2."""
START_MAIL_INPUT = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
"""Go-ahead after DATA. Spec: RFC 5321 §4.1.1.4."""
READY_TO_START_TLS = Reply(220, "2.0.0", "Ready to start TLS")
"""Positive answer to STARTTLS. Spec: RFC 3207 §4."""
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available due to temporary reason")
"""Negative answer to STARTTLS. Spec: RFC 3207 §4."""
HELP = Reply(214, "2.0.0", "See RFC 5321")
"""Spec: RFC 5321 §4.1.1.8."""
VRFY_CANNOT = Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")
"""VRFY never confirms a mailbox (RELIABILITY.md test 11). Spec: RFC 5321 §3.5.3."""
EXPN_DISABLED = Reply(502, "5.5.1", "EXPN not available")
"""Spec: RFC 5321 §3.5.2, §7.3."""
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
"""DATA/BDAT without an accepted RCPT. Spec: RFC 2920 §3.1, RFC 5321 §3.3."""
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
"""Spec: RFC 5321 §4.2.4, RFC 3463 §3.6 (5.5.1)."""
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
"""Spec: RFC 5321 §4.2.4."""
SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error")
"""Spec: RFC 5321 §4.2.4, RFC 3463 §3.6 (5.5.2)."""
BARE_LINE_END_IN_COMMAND = Reply(500, "5.5.2", "Bare CR or LF in command line")
"""Only CRLF ends a command line (RELIABILITY.md D4). Spec: RFC 5321 §2.3.8."""
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
"""Spec: RFC 5321 §4.5.3.1.4."""
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
"""Spec: RFC 5321 §4.5.3.1.10, RFC 3463 §3.6 (4.5.3)."""
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
"""Spec: RFC 1870 §6, RFC 3463 §3.4 (5.3.4)."""
BARE_LINE_END_IN_DATA = Reply(550, "5.5.2", "Bare CR or LF in message content")
"""Strict mode (RELIABILITY.md D4). Spec: RFC 5321 §2.3.8, §4.1.1.4."""
TEXT_LINE_TOO_LONG = Reply(550, "5.5.2", "Message line longer than 998 octets")
"""Strict mode. Spec: RFC 5321 §4.5.3.1.6, RFC 5322 §2.1.1."""
BINARYMIME_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
"""Spec: RFC 3030 §3."""
BDAT_AFTER_DATA = Reply(503, "5.5.1", "DATA and BDAT cannot be mixed")
"""Spec: RFC 3030 §2."""
