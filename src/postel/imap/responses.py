"""Encoders for IMAP server responses: strings, mailbox names, flag lists, response
codes, status responses and the untagged data responses, as wire bytes with CRLF.

String choice: an astring is an atom when every octet is an ASTRING-CHAR, a quoted
string when printable 7-bit (or, in a UTF-8 session, valid UTF-8) and not long, and
a literal otherwise (CR, LF, NUL, 8-bit octets). Free text (``resp-text``) has CR and
LF replaced by spaces so a response can never be split.

Spec: RFC 9051 §4.3, §7, §9 (response, resp-text-code); RFC 3501 §5.1.3 (mailbox
names of IMAP4rev1 sessions); RFC 6855 §3; RFC 4315 (APPENDUID, COPYUID); RFC 4731
(ESEARCH); RFC 2971 (ID); RFC 5161 (ENABLED); RFC 7162 (HIGHESTMODSEQ).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from postel.imap import mutf7
from postel.imap.grammar import ATOM_SPECIALS

__all__ = [
    "ALERT",
    "ALREADYEXISTS",
    "AUTHENTICATIONFAILED",
    "AUTHORIZATIONFAILED",
    "CANNOT",
    "CLIENTBUG",
    "CLOSED",
    "CONTACTADMIN",
    "EXPUNGEISSUED",
    "INUSE",
    "LIMIT",
    "NONEXISTENT",
    "NOPERM",
    "OVERQUOTA",
    "PRIVACYREQUIRED",
    "QUOTED_MAX",
    "READ_ONLY",
    "READ_WRITE",
    "SERVERBUG",
    "TOOBIG",
    "TRYCREATE",
    "UNAVAILABLE",
    "UNKNOWN_CTE",
    "Code",
    "Status",
    "appenduid",
    "astring",
    "badcharset",
    "bye",
    "capability",
    "capability_code",
    "compress_set",
    "continuation",
    "continuation_data",
    "copyuid",
    "enabled",
    "esearch",
    "esearch_update",
    "exists",
    "expunge",
    "fetch_response",
    "flag_list",
    "flags",
    "highestmodseq",
    "id_response",
    "list_response",
    "literal",
    "literal8",
    "mailbox",
    "mailboxid",
    "namespace",
    "noupdate",
    "nstring",
    "ordered_set",
    "permanentflags",
    "quoted",
    "search",
    "sort",
    "status",
    "string",
    "tagged",
    "text",
    "thread",
    "uidnext",
    "uidvalidity",
    "untagged",
]

QUOTED_MAX = 1024
"""Longer strings are sent as literals (local choice; any length is legal)."""
_ASTRING_SPECIALS = ATOM_SPECIALS - {0x5D}


class Status(StrEnum):
    """Status response kinds. Spec: RFC 9051 §7.1."""

    OK = "OK"
    NO = "NO"
    BAD = "BAD"
    PREAUTH = "PREAUTH"
    BYE = "BYE"


@dataclass(frozen=True, slots=True)
class Code:
    """A response code: ``[ATOM args]``. Spec: RFC 9051 §7.1 (resp-text-code)."""

    atom: str
    args: str = ""

    def render(self) -> bytes:
        """``[ATOM args]`` as bytes."""
        inner = f"{self.atom} {self.args}" if self.args else self.atom
        return b"[" + text(inner).replace(b"]", b" ") + b"]"


ALERT = Code("ALERT")
READ_ONLY = Code("READ-ONLY")
READ_WRITE = Code("READ-WRITE")
TRYCREATE = Code("TRYCREATE")
NONEXISTENT = Code("NONEXISTENT")
ALREADYEXISTS = Code("ALREADYEXISTS")
AUTHENTICATIONFAILED = Code("AUTHENTICATIONFAILED")
AUTHORIZATIONFAILED = Code("AUTHORIZATIONFAILED")
CANNOT = Code("CANNOT")
SERVERBUG = Code("SERVERBUG")
LIMIT = Code("LIMIT")
OVERQUOTA = Code("OVERQUOTA")
TOOBIG = Code("TOOBIG")
UNKNOWN_CTE = Code("UNKNOWN-CTE")
CLIENTBUG = Code("CLIENTBUG")
CONTACTADMIN = Code("CONTACTADMIN")
PRIVACYREQUIRED = Code("PRIVACYREQUIRED")
UNAVAILABLE = Code("UNAVAILABLE")
EXPUNGEISSUED = Code("EXPUNGEISSUED")
INUSE = Code("INUSE")
NOPERM = Code("NOPERM")
CLOSED = Code("CLOSED")


def capability_code(capabilities: Iterable[str]) -> Code:
    """``[CAPABILITY IMAP4rev2 ...]``. Spec: RFC 9051 §7.1."""
    return Code("CAPABILITY", " ".join(capabilities))


def mailboxid(objectid: str) -> Code:
    """``[MAILBOXID (F1-2)]``. Spec: RFC 8474 §4.1, §4.2."""
    return Code("MAILBOXID", f"({objectid})")


def uidvalidity(value: int) -> Code:
    """``[UIDVALIDITY n]``. Spec: RFC 9051 §7.1."""
    return Code("UIDVALIDITY", str(value))


def uidnext(value: int) -> Code:
    """``[UIDNEXT n]``. Spec: RFC 9051 §7.1."""
    return Code("UIDNEXT", str(value))


def permanentflags(flag_names: Iterable[str]) -> Code:
    """``[PERMANENTFLAGS (\\Seen \\*)]``. Spec: RFC 9051 §7.1."""
    return Code("PERMANENTFLAGS", flag_list(flag_names).decode("ascii"))


def appenduid(uidvalidity: int, uids: Iterable[int]) -> Code:
    """``[APPENDUID v uid-set]``. Spec: RFC 4315 §3, RFC 9051 §7.1."""
    return Code("APPENDUID", f"{uidvalidity} {compress_set(uids)}")


def copyuid(uidvalidity: int, source: Sequence[int], destination: Sequence[int]) -> Code:
    """``[COPYUID v source-set dest-set]``, the two sets in corresponding order.
    Spec: RFC 4315 §3, RFC 9051 §7.1."""
    return Code("COPYUID", f"{uidvalidity} {_ordered_set(source)} {_ordered_set(destination)}")


def highestmodseq(value: int) -> Code:
    """``[HIGHESTMODSEQ n]``. Spec: RFC 7162 §3.1.2.1."""
    return Code("HIGHESTMODSEQ", str(value))


def badcharset(charsets: Iterable[str]) -> Code:
    """``[BADCHARSET (UTF-8 US-ASCII)]``. Spec: RFC 9051 §7.1."""
    return Code("BADCHARSET", "(" + " ".join(charsets) + ")")


# --- strings ------------------------------------------------------------------------
def text(value: str) -> bytes:
    """``resp-text`` free text, UTF-8, with CR, LF and NUL turned into spaces."""
    cleaned = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return cleaned.encode("utf-8")


def literal(data: bytes) -> bytes:
    """``{n}CRLF`` and the octets. Spec: RFC 9051 §4.3."""
    return b"{%d}\r\n" % len(data) + data


def literal8(data: bytes) -> bytes:
    """``~{n}CRLF`` and the octets (binary content). Spec: RFC 3516 §4.4."""
    return b"~{%d}\r\n" % len(data) + data


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _quotable(data: bytes, utf8: bool) -> bool:
    if len(data) > QUOTED_MAX or b"\r" in data or b"\n" in data or b"\x00" in data:
        return False
    if data.isascii():
        return True
    if not utf8:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def quoted(value: str | bytes) -> bytes:
    """``"..."`` with ``\\`` and ``"`` escaped; the caller checks it is quotable."""
    data = _as_bytes(value)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """``string``: quoted when safe, else a literal. Spec: RFC 9051 §4.3, RFC 6855 §3."""
    data = _as_bytes(value)
    return quoted(data) if _quotable(data, utf8) else literal(data)


def nstring(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    """``nstring``: NIL for None, else ``string``. Spec: RFC 9051 §4.5."""
    return b"NIL" if value is None else string(value, utf8=utf8)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """``astring``: a bare atom when every octet is an ASTRING-CHAR (never for ``NIL``
    or the empty string), else ``string``. Spec: RFC 9051 §9 (astring)."""
    data = _as_bytes(value)
    if (
        data
        and data.upper() != b"NIL"
        and all(c <= 0x7E and c not in _ASTRING_SPECIALS for c in data)
    ):
        return data
    return string(data, utf8=utf8)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name: modified UTF-7 unless ``utf8``; ``INBOX`` in any case is sent
    as ``INBOX``. Spec: RFC 9051 §5.1, RFC 3501 §5.1.3, RFC 6855 §3."""
    if name.upper() == "INBOX":
        name = "INBOX"
    wire = name if utf8 else mutf7.encode(name)
    return astring(wire, utf8=utf8)


def flag_list(flag_names: Iterable[str]) -> bytes:
    """``(\\Seen $Junk)``. Spec: RFC 9051 §9 (flag-list)."""
    return b"(" + " ".join(flag_names).encode("ascii") + b")"


def compress_set(numbers: Iterable[int]) -> str:
    """Sorted, merged ``sequence-set`` text: ``[5, 1, 2, 3]`` is ``1:3,5`` (empty
    input gives ``""``). Spec: RFC 9051 §9 (sequence-set)."""
    out: list[str] = []
    ordered = sorted(set(numbers))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(out)


def ordered_set(numbers: Sequence[int]) -> str:
    """A sequence-set that keeps the order of ``numbers``: runs of consecutive
    ascending numbers merged, ``[3, 4, 2, 1]`` is ``3:4,2,1`` (empty input gives
    ``""``). Spec: RFC 4315 §3 (COPYUID correspondence), RFC 5267 §3 (ESORT ALL)."""
    return _ordered_set(numbers)


def _ordered_set(numbers: Sequence[int]) -> str:
    """Runs of consecutive ascending numbers, order kept (COPYUID correspondence)."""
    out: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)


# --- status responses ------------------------------------------------------------------
def _status_line(prefix: bytes, status: Status, message: str, code: Code | None) -> bytes:
    parts = [prefix, status.value.encode("ascii")]
    if code is not None:
        parts.append(code.render())
    parts.append(text(message) if message else b"done")
    return b" ".join(parts) + b"\r\n"


def tagged(tag: str, status: Status, message: str, code: Code | None = None) -> bytes:
    """``tag OK [code] text``. Spec: RFC 9051 §7.1."""
    return _status_line(tag.encode("ascii"), status, message, code)


def untagged(status: Status, message: str, code: Code | None = None) -> bytes:
    """``* OK [code] text`` (also the greeting, ``* PREAUTH``, ``* BAD``).
    Spec: RFC 9051 §7.1."""
    return _status_line(b"*", status, message, code)


def bye(message: str, code: Code | None = None) -> bytes:
    """``* BYE [code] text``. Spec: RFC 9051 §7.1.5."""
    return untagged(Status.BYE, message, code)


def continuation(message: str = "") -> bytes:
    """``+ text``. Spec: RFC 9051 §7.5."""
    return b"+ " + text(message) + b"\r\n" if message else b"+ \r\n"


def continuation_data(challenge: bytes) -> bytes:
    """``+ base64`` (an AUTHENTICATE challenge). Spec: RFC 9051 §6.2.2, §7.5."""
    return b"+ " + base64.b64encode(challenge) + b"\r\n"


# --- untagged data ---------------------------------------------------------------------
def capability(capabilities: Iterable[str]) -> bytes:
    """``* CAPABILITY IMAP4rev2 ...``. Spec: RFC 9051 §7.2.2."""
    return b"* CAPABILITY " + " ".join(capabilities).encode("ascii") + b"\r\n"


def enabled(capabilities: Iterable[str]) -> bytes:
    """``* ENABLED ...`` (no list: ``* ENABLED``). Spec: RFC 5161 §3.2."""
    caps = " ".join(capabilities)
    return b"* ENABLED" + (b" " + caps.encode("ascii") if caps else b"") + b"\r\n"


def exists(count: int) -> bytes:
    """``* n EXISTS``. Spec: RFC 9051 §7.4.1."""
    return b"* %d EXISTS\r\n" % count


def expunge(msn: int) -> bytes:
    """``* n EXPUNGE``. Spec: RFC 9051 §7.5.1."""
    return b"* %d EXPUNGE\r\n" % msn


def flags(flag_names: Iterable[str]) -> bytes:
    """``* FLAGS (...)``. Spec: RFC 9051 §7.3.5."""
    return b"* FLAGS " + flag_list(flag_names) + b"\r\n"


def list_response(
    attributes: Iterable[str],
    delimiter: str | None,
    name: str,
    *,
    utf8: bool = False,
    extended: bytes = b"",
    command: str = "LIST",
) -> bytes:
    """``* LIST (\\HasNoChildren) "/" name [extended-items]`` (``command="LSUB"`` for
    LSUB). ``extended`` is rendered mbox-list-extended data, e.g.
    ``("CHILDINFO" ("SUBSCRIBED"))``. Spec: RFC 9051 §7.3.1, RFC 5258 §6."""
    delim = b"NIL" if delimiter is None else quoted(delimiter)
    parts = [
        b"* " + command.encode("ascii"),
        flag_list(attributes),
        delim,
        mailbox(name, utf8=utf8),
    ]
    if extended:
        parts.append(extended)
    return b" ".join(parts) + b"\r\n"


def status(name: str, items: Sequence[tuple[str, int | str]], *, utf8: bool = False) -> bytes:
    """``* STATUS name (MESSAGES 3 UIDNEXT 7)``; a str value is sent as it is (e.g.
    ``MAILBOXID (F1-2)``). Spec: RFC 9051 §7.3.2; RFC 8474 §4.1."""
    body = " ".join(f"{item} {value}" for item, value in items).encode("ascii")
    return b"* STATUS " + mailbox(name, utf8=utf8) + b" (" + body + b")\r\n"


def search(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """``* SEARCH 2 84 882`` (IMAP4rev1 answer), ``* SEARCH 2 84 (MODSEQ 917)`` when
    ``modseq`` is given (a search with the MODSEQ key that found something).
    Spec: RFC 3501 §7.2.5; RFC 7162 §3.1.5."""
    tail = b" (MODSEQ %d)" % modseq if modseq is not None else b""
    return b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + tail + b"\r\n"


def esearch(
    tag: str | None,
    *,
    uid: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    all_numbers: Iterable[int] | None = None,
    count: int | None = None,
    ordered: bool = False,
    partial: tuple[str, Sequence[int]] | None = None,
    modseq: int | None = None,
) -> bytes:
    """``* ESEARCH (TAG "a") UID MIN 1 MAX 9 ALL 1:3,5 COUNT 4 MODSEQ 7``; items left
    None are omitted (and ALL when empty). ``ordered`` keeps the order of ``all_numbers`` (a
    SORT result) instead of sorting them. ``partial`` is (range text, the numbers in
    that range, in order): ``PARTIAL (2:4 3:4,2)``, ``NIL`` when there are none.
    Spec: RFC 9051 §7.3.4, RFC 4731 §3.2, RFC 5267 §3, §4.4, RFC 9394 §3.2,
    RFC 7162 §3.1.5 (MODSEQ)."""
    parts = [b"* ESEARCH"]
    if tag is not None:
        parts.append(b"(TAG " + string(tag) + b")")
    if uid:
        parts.append(b"UID")
    if minimum is not None:
        parts.append(b"MIN %d" % minimum)
    if maximum is not None:
        parts.append(b"MAX %d" % maximum)
    if all_numbers is not None:
        sequence = _ordered_set(list(all_numbers)) if ordered else compress_set(all_numbers)
        if sequence:
            parts.append(b"ALL " + sequence.encode("ascii"))
    if partial is not None:
        picked = _ordered_set(partial[1]) or "NIL"
        parts.append(f"PARTIAL ({partial[0]} {picked})".encode("ascii"))
    if count is not None:
        parts.append(b"COUNT %d" % count)
    if modseq is not None:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


def esearch_update(
    tag: str,
    *,
    uid: bool,
    removefrom: Sequence[tuple[int, Sequence[int]]] = (),
    addto: Sequence[tuple[int, Sequence[int]]] = (),
) -> bytes:
    """``* ESEARCH (TAG "a") [UID] REMOVEFROM (0 3:4) ADDTO (1 7)``: context updates as
    (position, numbers in result order) pairs, applied in the order given; b"" when
    there are none. Spec: RFC 5267 §4.3 (ADDTO, REMOVEFROM, context-position)."""
    if not removefrom and not addto:
        return b""
    parts = [b"* ESEARCH (TAG " + string(tag) + b")"]
    if uid:
        parts.append(b"UID")
    for word, pairs in ((b"REMOVEFROM", removefrom), (b"ADDTO", addto)):
        for position, numbers in pairs:
            if numbers:
                body = f"({position} {_ordered_set(numbers)})".encode("ascii")
                parts.append(word + b" " + body)
    return b" ".join(parts) + b"\r\n"


def sort(numbers: Iterable[int]) -> bytes:
    """``* SORT 2 3 6`` in sort order. Spec: RFC 5256 §4 (SORT response)."""
    return b"* SORT" + b"".join(b" %d" % n for n in numbers) + b"\r\n"


def thread(thread_lists: bytes) -> bytes:
    """``* THREAD (2)(3 6 (4 23)(44 7 96))``, or ``* THREAD`` when there are none;
    ``thread_lists`` comes from ``postel.imap.thread.format_threads``.
    Spec: RFC 5256 §4 (THREAD response), §5 (thread-data)."""
    if not thread_lists:
        return b"* THREAD\r\n"
    return b"* THREAD " + thread_lists + b"\r\n"


def noupdate(tag: str) -> Code:
    """``[NOUPDATE "tag"]``: the search is answered but will not be updated.
    Spec: RFC 5267 §4.2."""
    return Code("NOUPDATE", string(tag).decode("ascii", "replace"))


def id_response(params: Sequence[tuple[str, str | None]] | None) -> bytes:
    """``* ID ("name" "postel")`` or ``* ID NIL``. Spec: RFC 2971 §3.2."""
    if not params:
        return b"* ID NIL\r\n"
    body = b" ".join(string(k, utf8=True) + b" " + nstring(v, utf8=True) for k, v in params)
    return b"* ID (" + body + b")\r\n"


def namespace(
    personal: Sequence[tuple[str, str | None]] | None,
    other: Sequence[tuple[str, str | None]] | None = None,
    shared: Sequence[tuple[str, str | None]] | None = None,
    *,
    utf8: bool = False,
) -> bytes:
    """``* NAMESPACE (("" "/")) NIL NIL``: each class a list of (prefix, delimiter) or
    None. Spec: RFC 9051 §7.3.3."""

    def one(spaces: Sequence[tuple[str, str | None]] | None) -> bytes:
        if not spaces:
            return b"NIL"
        items = b"".join(
            b"("
            + string(prefix if utf8 else mutf7.encode(prefix), utf8=utf8)
            + b" "
            + (b"NIL" if delim is None else quoted(delim))
            + b")"
            for prefix, delim in spaces
        )
        return b"(" + items + b")"

    return b"* NAMESPACE " + one(personal) + b" " + one(other) + b" " + one(shared) + b"\r\n"


def fetch_response(msn: int, items: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``* n FETCH (NAME value NAME value)`` from pre-rendered items, e.g.
    ``(b"UID", b"7")``, ``(b"BODY[]", literal(data))``. Spec: RFC 9051 §7.5.2."""
    return b"".join(fetch_response_parts(msn, items))


def fetch_response_parts(msn: int, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """``fetch_response`` as the pieces that make it up, in order, each value one piece
    of its own: a large literal is written as it is, never copied into the whole."""
    parts = [b"* %d FETCH (" % msn]
    for i, (name, value) in enumerate(items):
        parts += [b" " + name + b" " if i else name + b" ", value]
    parts.append(b")\r\n")
    return parts
