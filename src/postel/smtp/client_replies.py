"""Reading server replies on the client side: multi-line assembly, enhanced status
codes, EHLO keywords, and the per-message capability check.

Bounds defined here (this package does not own ``postel.limits``):

* ``REPLY_LINE_MAX = 2048`` octets per reply line, LF included. RFC 5321 §4.5.3.1.5
  sets 512 for senders, and §4.5.3.1 asks receivers to accept longer objects where
  they can; deployed servers exceed 512 in EHLO and rejection texts, so the client
  takes up to four times that and treats anything longer as a protocol error.
* ``REPLY_LINES_MAX = 100`` lines per multi-line reply (an EHLO reply has about 20).
  With the line bound this bounds one reply to 200 KiB. Spec: RFC 5321 §4.2.1
  (no bound given; local policy).

Leniency: a reply line may end in a bare LF (the CR is dropped when present); text is
decoded as UTF-8 with replacement (RFC 6531 §3.7.4 allows UTF-8 reply text).

Spec: RFC 5321 §4.2, §4.5.3.1.5; RFC 2034 §4; RFC 3463 §2; RFC 1869 §4.3.
"""

from __future__ import annotations

import re

from postel.errors import ProtocolError
from postel.smtp.client_events import (
    CannotDeliver,
    Extensions,
    NeedsConversion,
    TransactionOutcome,
    TransactionPlan,
)
from postel.smtp.params import Body, MailParams
from postel.smtp.reply import Reply

REPLY_LINE_MAX = 2048
"""Octets per reply line including the line end. Spec: RFC 5321 §4.5.3.1.5, §4.5.3.1."""
REPLY_LINES_MAX = 100
"""Lines per multi-line reply (local policy). Spec: RFC 5321 §4.2.1."""

_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: +|$)")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class SmtpClientProtocolError(ProtocolError):
    """The server's bytes break the reply grammar, a bound, or the command/reply order.

    The session cannot go on; the connection is then closed.
    Spec: RFC 5321 §4.2, §4.5.3.1.5, §4.3.2.
    """


class ReplyReader:
    """Incremental parser of server replies.

    ``feed(data)`` adds bytes; ``next_reply()`` returns the next complete Reply or
    None when more bytes are needed. At most one partial line plus ``REPLY_LINES_MAX``
    finished lines are held beyond what was fed.

    Raises:
        SmtpClientProtocolError: malformed line, code changing inside a multi-line
            reply, or a bound exceeded.

    Spec: RFC 5321 §4.2.1, §4.5.3.1.5.
    """

    __slots__ = ("_buf", "_code", "_lines")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._code: bytes | None = None
        self._lines: list[bytes] = []

    @property
    def buffered(self) -> int:
        """Octets held, partial line included."""
        return len(self._buf) + sum(len(line) for line in self._lines)

    @property
    def in_reply(self) -> bool:
        """True while bytes of an unfinished reply are held."""
        return bool(self._buf) or bool(self._lines)

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server."""
        self._buf += data

    def clear(self) -> None:
        """Forget everything held (after STARTTLS's 220). Spec: RFC 3207 §5."""
        self._buf.clear()
        self._lines.clear()
        self._code = None

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None. Raises SmtpClientProtocolError."""
        while True:
            end = self._buf.find(b"\n", 0, REPLY_LINE_MAX)
            if end < 0:
                if len(self._buf) >= REPLY_LINE_MAX:
                    raise SmtpClientProtocolError("reply line too long")
                return None
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            reply = self._add_line(line[:-1] if line.endswith(b"\r") else line)
            if reply is not None:
                return reply

    def _add_line(self, line: bytes) -> Reply | None:
        match = _LINE.fullmatch(line)
        if match is None:
            raise SmtpClientProtocolError(f"malformed reply line {line[:40]!r}")
        code, sep, text = match.group(1), match.group(2), match.group(3) or b""
        if self._code is not None and code != self._code:
            raise SmtpClientProtocolError("reply code changed inside a multi-line reply")
        self._code = code
        self._lines.append(text)
        if sep == b"-":
            if len(self._lines) >= REPLY_LINES_MAX:
                raise SmtpClientProtocolError("too many lines in one reply")
            return None
        lines, self._lines, self._code = self._lines, [], None
        return build_reply(int(code), [raw.decode("utf-8", "replace") for raw in lines])


def build_reply(code: int, lines: list[str]) -> Reply:
    """Make a Reply from a code and its text lines, taking the enhanced status code off
    every line when the first line starts with one whose class matches the code.
    A one-line reply has ``text`` as a str, a multi-line one as a tuple.

    Spec: RFC 2034 §4 (every line carries the code), RFC 3463 §2.
    """
    enhanced: str | None = None
    first = _ENHANCED.match(lines[0])
    if first is not None and first.group(1) == str(code)[0]:
        enhanced = ".".join(first.group(1, 2, 3))
        lines = [_strip_enhanced(line, enhanced) for line in lines]
    return Reply(code, enhanced, lines[0] if len(lines) == 1 else tuple(lines))


def _strip_enhanced(line: str, enhanced: str) -> str:
    match = _ENHANCED.match(line)
    if match is not None and ".".join(match.group(1, 2, 3)) == enhanced:
        return line[match.end() :]
    return line


def parse_extensions(reply: Reply) -> Extensions:
    """Read the EHLO keywords from a 250 EHLO reply (every line after the first).

    Lines that are not ``ehlo-keyword *(SP ehlo-param)`` are skipped (some servers end
    with an empty line). Both ``AUTH mech...`` and the pre-standard ``AUTH=mech...`` are
    read. A SIZE value that is not a number reads as "no fixed limit".

    Spec: RFC 5321 §4.1.1.1 (ehlo-line), RFC 1870 §4, RFC 4954 §3.
    """
    raw = (reply.text,) if isinstance(reply.text, str) else reply.text
    found: dict[str, list[str]] = {}
    for line in raw[1:]:
        words = line.replace("=", " ", 1).split() if line[:5].upper() == "AUTH=" else line.split()
        if not words or _KEYWORD.fullmatch(words[0]) is None:
            continue
        found.setdefault(words[0].upper(), []).extend(words[1:])
    size_words = found.get("SIZE", [])
    size_max = int(size_words[0]) if size_words and size_words[0].isdigit() else 0
    return Extensions(
        size="SIZE" in found,
        size_max=size_max or None,
        pipelining="PIPELINING" in found,
        eight_bit_mime="8BITMIME" in found,
        smtputf8="SMTPUTF8" in found,
        chunking="CHUNKING" in found,
        binary_mime="BINARYMIME" in found,
        starttls="STARTTLS" in found,
        dsn="DSN" in found,
        enhanced_status_codes="ENHANCEDSTATUSCODES" in found,
        requiretls="REQUIRETLS" in found,
        auth=frozenset(word.upper() for word in found.get("AUTH", [])),
        keywords=frozenset(found),
    )


def plan_transaction(
    extensions: Extensions,
    *,
    message_is_8bit: bool,
    needs_smtputf8: bool,
    size: int | None,
) -> TransactionOutcome:
    """Decide, for one message and one server, what MAIL FROM must carry.

    Args:
        extensions: from ``EhloDone`` (``Extensions()`` after HELO).
        message_is_8bit: the content has octets over 127 (but no NUL or bare CR/LF).
        needs_smtputf8: an envelope address or a header field is UTF-8.
        size: the message size in octets, or None if unknown.

    Returns:
        ``CannotDeliver(553 5.6.7)`` when SMTPUTF8 is needed but not offered;
        ``CannotDeliver(552 5.3.4)`` when SIZE announces a smaller maximum;
        ``NeedsConversion`` for 8-bit content without 8BITMIME;
        otherwise ``TransactionPlan`` with SIZE (if offered), BODY=8BITMIME (if 8-bit)
        and SMTPUTF8 (if needed).

    Spec: RFC 6531 §3.2 (no downgrade: the message is returned), RFC 1870 §5,
    RFC 6152 §3.
    """
    if needs_smtputf8 and not extensions.smtputf8:
        reason = "Server does not offer SMTPUTF8, which the message requires"
        return CannotDeliver(Reply(553, "5.6.7", reason))
    limit = extensions.size_max
    if size is not None and limit is not None and size > limit:
        reason = f"Message size exceeds the server's maximum of {limit}"
        return CannotDeliver(Reply(552, "5.3.4", reason))
    if message_is_8bit and not extensions.eight_bit_mime:
        return NeedsConversion("8-bit content and the server does not offer 8BITMIME")
    return TransactionPlan(
        MailParams(
            size=size if extensions.size and size is not None else None,
            body=Body.EIGHT_BIT_MIME if message_is_8bit else None,
            smtputf8=needs_smtputf8,
        )
    )
