"""Authentication-Results header fields: writing ours, and removing forged ones.

postel records its verdicts (SPF, DKIM, DMARC, ARC, iprev) in one Authentication-Results
field at the top of a received message. Any field already in the message that claims our
authserv-id could only be forged (or ours from an earlier pass, no longer valid), so it
is removed before ours is added (RFC 8601 §5).

Bounds defined here: ``AUTHRES_LINE_TARGET`` (fold width, RFC 5322 §2.1.1 SHOULD 78)
and ``AUTHRES_VALUE_MAX`` (longest property value written; longer values are cut with
an ellipsis marker, local policy).

Spec: RFC 8601 §2.2 (syntax), §2.7 (methods and results), §5 (removal of fields
claiming our authserv-id); RFC 5322 §2.2.3 (folding).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

AUTHRES_LINE_TARGET = 78
"""Characters per line when folding. Spec: RFC 5322 §2.1.1."""
AUTHRES_VALUE_MAX = 256
"""Longest property or reason value written (local policy)."""

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`{|}~@/]+$")
_FIELD = re.compile(rb"(?im)^authentication-results[ \t]*:")
_WORD = re.compile(r'(?:"(?:\\.|[^"\\])*"|[^ "])+')


AUTHRES_CLAUSES_KEPT = 1024
"""Rendered clauses remembered (least recently used dropped first); postel policy."""


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` with its optional ``reason`` and properties such as
    ``("smtp.mailfrom", "a@example.org")`` or ``("header.d", "example.org")``.
    Spec: RFC 8601 §2.2, §2.3, §2.7."""

    method: str
    result: str
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()


def _value(text: str) -> str:
    """A pvalue/reason: a token when possible, else a quoted-string; control
    characters dropped, length bounded. Spec: RFC 8601 §2.2; RFC 2045 §5.1 (value)."""
    if not text.isprintable():
        text = "".join(c for c in text if c.isprintable())
    if len(text) > AUTHRES_VALUE_MAX:
        text = text[: AUTHRES_VALUE_MAX - 3] + "..."
    if text and _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=AUTHRES_CLAUSES_KEPT)
def _clause(result: MethodResult) -> str:
    """One ``method=result`` clause; the usual ones (the same SPF, DMARC, iprev for a
    sender's every message) are made once."""
    parts = [f"{result.method}={result.result}"]
    if result.reason:
        parts.append(f"reason={_value(result.reason)}")
    parts.extend(f"{name}={_value(value)}" for name, value in result.properties)
    return " ".join(parts)


def render(authserv_id: str, results: Sequence[MethodResult]) -> bytes:
    """The whole field, folded between words (never inside a quoted value), one
    method per line, ending in CRLF. No results: ``none`` (§2.2).
    Raises ValueError for an authserv-id that is not a token. Spec: RFC 8601 §2.2;
    RFC 5322 §2.2.3."""
    if not _TOKEN.match(authserv_id):
        raise ValueError(f"authserv-id must be a token: {authserv_id!r}")
    clauses = [_clause(r) for r in results] or ["none"]
    lines = [f"Authentication-Results: {authserv_id};"]
    for index, clause in enumerate(clauses):
        clause += ";" if index < len(clauses) - 1 else ""
        if len(clause) < AUTHRES_LINE_TARGET:  # fits one line: its words as they are
            lines.append("\t" + clause)
            continue
        words = _WORD.findall(clause)
        line = "\t" + words[0]
        for word in words[1:]:
            if len(line) + 1 + len(word) > AUTHRES_LINE_TARGET:
                lines.append(line)
                line = "\t  " + word
            else:
                line += " " + word
        lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def strip_ours(header: bytes, authserv_id: str) -> tuple[bytes, int]:
    """``header`` (a header block, CRLF line ends) without the Authentication-Results
    fields whose authserv-id is ``authserv_id`` (case-insensitive), and how many were
    removed. Other fields, and their order and bytes, are kept.
    Spec: RFC 8601 §5."""
    if b"authentication-results" not in header.lower() or not _FIELD.search(header):
        return header, 0  # the plain search first: the pattern's is slow on every line
    lines = header.split(b"\r\n")
    kept: list[bytes] = []
    removed = 0
    index = 0
    wanted = authserv_id.lower().encode()
    while index < len(lines):
        field = [lines[index]]
        index += 1
        while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
            field.append(lines[index])
            index += 1
        if _FIELD.match(field[0]) and _authserv_id(b" ".join(field)) == wanted:
            removed += 1
            continue
        kept.extend(field)
    return b"\r\n".join(kept), removed


def _authserv_id(field: bytes) -> bytes:
    """The authserv-id of an Authentication-Results field (lower-case), skipping
    comments. Spec: RFC 8601 §2.2 (authserv-id [ CFWS authres-version ])."""
    value = field.split(b":", 1)[1]
    value = re.sub(rb"\([^()]*\)", b" ", value)  # one level of comments is plenty here
    head = value.split(b";", 1)[0].strip()
    return head.split()[0].lower() if head else b""
