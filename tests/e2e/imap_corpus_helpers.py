"""Helpers for comparing postel's IMAP answers about the message corpus, fetched over
the wire, with Dovecot 2.3.19's reference answers and with Python's ``email`` package.

- ``multiappend`` stores messages with one MULTIAPPEND of LITERAL+ literals;
  ``fetch`` runs one FETCH and returns every ``* n FETCH`` response parsed.
- ``wire_differences`` compares one message's wire answer with Dovecot's the way
  ``tests/mail/test_dovecot_compare.py`` compares the offline renderers' answer;
  ``listed_differences`` reads the differences that test documents.
- ``structure_parts`` (from a parsed BODYSTRUCTURE) and ``email_parts`` (from a message
  parsed by Python's ``email``, policy compat32) number the parts of a message the IMAP
  way; ``header_items``, ``raw_payload`` and ``expected_binary`` give what Python says a
  MIME header block, a leaf's raw body and its decoded body are.

Spec: RFC 9051 §6.4.5 (FETCH, part numbers), §7.5.2 (BODYSTRUCTURE, ENVELOPE);
RFC 3502 (MULTIAPPEND); RFC 7888 (LITERAL+); RFC 3516 (BINARY); RFC 2045 §6
(Content-Transfer-Encoding); RFC 2046 §5.1 (multipart).
"""

from __future__ import annotations

import binascii
import email
import email.message
import email.parser
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mail.dovecot_compare import Case, first_difference, norm_body
from mail.imapsexp import Atom, fetch_items

from .imap_raw import Completion, RawImap

DIFFERENCES = Path(__file__).resolve().parents[1] / "mail" / "dovecot_differences.tsv"
"""The documented differences from Dovecot (file, field, path, ours, dovecot, reason)."""

COMPARED_ITEMS = ("RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE")
"""The FETCH items of Dovecot's reference answers, in the order the offline test uses."""

IDENTITY_ENCODINGS = frozenset({b"", b"7bit", b"8bit", b"binary"})
"""Content-Transfer-Encoding values whose decoded body is the body as stored
(RFC 2045 §6.2; absent means 7bit)."""

_ANY_LITERAL = re.compile(rb"(~?)\{(\d+)\+?\}\r\n")
_FETCH_HEAD = re.compile(rb"^\* (\d+) FETCH \(")


@dataclass(frozen=True, slots=True)
class Fetched:
    """One ``* msn FETCH (...)`` response: its bytes (literals inline) and its items,
    keyed by upper-cased name (``BODY[1.MIME]``, ``BINARY.SIZE[2]``); values as
    ``mail.imapsexp`` parses them (bytes, Atom, None, lists)."""

    msn: int
    raw: bytes
    items: dict[str, object]


@dataclass(frozen=True, slots=True)
class Difference:
    """One FETCH item of one message that differs from Dovecot's: the first differing
    value's path in the parsed item, and both values as IMAP text (dovecot_compare)."""

    file: str
    field: str
    path: str
    ours: str
    dovecot: str


class PartKind(StrEnum):
    """What a part is to Python's ``email`` parser."""

    LEAF = "leaf"
    """A body that is not split further: its payload is the raw body."""
    MULTIPART = "multipart"
    """multipart/*: the children are parts."""
    MESSAGE = "message"
    """message/rfc822: one encapsulated message."""
    OPAQUE = "opaque"
    """A leaf to IMAP that Python splits into header blocks (message/delivery-status,
    message/external-body...): no raw payload to compare."""


@dataclass(frozen=True, slots=True)
class EmailPart:
    """A part as Python's ``email`` sees it, and whether it has a MIME header of its
    own (its parent is a multipart) that ``BODY[n.MIME]`` returns."""

    message: email.message.Message
    kind: PartKind
    has_mime_header: bool


@dataclass(frozen=True, slots=True)
class StructurePart:
    """A part as postel's BODYSTRUCTURE describes it: ``type/subtype`` in lower case,
    its body-fld-enc in lower case (b"" for multiparts), whether it is a multipart,
    a message/rfc822 with an encapsulated message, and has a MIME header of its own;
    body-fld-octets and body-fld-lines (None where the body type has none)."""

    content_type: str
    encoding: bytes
    multipart: bool
    message: bool
    has_mime_header: bool
    size: int | None = None
    lines: int | None = None


# -- over the wire -----------------------------------------------------------------------


def multiappend(client: RawImap, mailbox: str, messages: Iterable[bytes]) -> Completion:
    """APPEND every one of ``messages`` to ``mailbox`` in one MULTIAPPEND command with
    non-synchronizing literals; returns the completion (APPENDUID in the tagged OK).
    Spec: RFC 3502 §6.3.11, RFC 7888 §4."""
    tag = client.tag()
    command = bytearray(f'{tag} APPEND "{mailbox}"'.encode())
    for message in messages:
        command += b" {%d+}\r\n" % len(message)
        command += message
    command += b"\r\n"
    client.send(bytes(command))
    return client.until_tagged(tag)


def plain_literals(data: bytes) -> bytes:
    """``data`` with each literal8 announcement ``~{n}`` written ``{n}`` (the octets
    unchanged), so that ``mail.imapsexp`` parses it. Literal octets are skipped, not
    scanned. Spec: RFC 3516 §4.2 (literal8)."""
    out = bytearray()
    pos = 0
    while (match := _ANY_LITERAL.search(data, pos)) is not None:
        end = match.end() + int(match.group(2))
        out += data[pos : match.start()]
        out += b"{%s}\r\n" % match.group(2)
        out += data[match.end() : end]
        pos = end
    out += data[pos:]
    return bytes(out)


def parse_fetch(response: bytes) -> Fetched | None:
    """The ``Fetched`` of an untagged FETCH response, None for any other response."""
    match = _FETCH_HEAD.match(response)
    if match is None:
        return None
    return Fetched(int(match.group(1)), response, fetch_items(plain_literals(response)))


def fetch(client: RawImap, sequence: str, items: str) -> tuple[Completion, dict[int, Fetched]]:
    """``FETCH sequence items``: the completion and the FETCH responses by msn (several
    responses for one msn are merged). Spec: RFC 9051 §6.4.5."""
    done = client.command(f"FETCH {sequence} {items}")
    return done, collect(done)


def collect(done: Completion) -> dict[int, Fetched]:
    """The FETCH responses of a completion by msn, items of one msn merged."""
    out: dict[int, Fetched] = {}
    for response in done.untagged:
        got = parse_fetch(response)
        if got is None:
            continue
        before = out.get(got.msn)
        if before is not None:
            got = Fetched(got.msn, before.raw + got.raw, {**before.items, **got.items})
        out[got.msn] = got
    return out


def pipelined(client: RawImap, commands: list[str]) -> list[Completion]:
    """Send every command (tagged here) at once, then read each completion in order.
    Keep the batch small: the commands must fit in the socket buffers."""
    tags = [client.tag() for _ in commands]
    client.send(b"".join(f"{t} {c}\r\n".encode() for t, c in zip(tags, commands, strict=True)))
    return [client.until_tagged(t) for t in tags]


# -- Dovecot's reference answers ----------------------------------------------------------


def wire_differences(case: Case, wire: dict[str, object]) -> list[Difference]:
    """Each FETCH item of ``wire`` (postel's answer) that differs from ``case.fetch``
    (Dovecot's), compared as ``tests/mail/dovecot_compare.differences`` does: parsed
    values, types, subtypes and parameter names case-folded."""
    theirs = fetch_items(case.fetch)
    out: list[Difference] = []
    for name in COMPARED_ITEMS:
        a, b = wire[name], theirs[name]
        if name in ("BODY", "BODYSTRUCTURE"):
            a, b = norm_body(a), norm_body(b)
        found = first_difference(a, b)
        if found is not None:
            out.append(Difference(case.file, name, *found))
    return out


def listed_differences(path: Path = DIFFERENCES) -> set[Difference]:
    """The differences listed in ``dovecot_differences.tsv`` (comment lines skipped);
    asserts each has a reason."""
    out: set[Difference] = set()
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        file, field, where, ours, dovecot, reason = line.split("\t")
        assert reason.strip(), f"difference without a reason: {line}"
        out.add(Difference(file, field, where, ours, dovecot))
    return out


# -- part numbers --------------------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").lower()
    if isinstance(value, Atom):
        return value.text.decode("latin-1").lower()
    return ""


def _is_multipart(body: object) -> bool:
    return isinstance(body, list) and bool(body) and isinstance(body[0], list)


def _is_message(body: object) -> bool:
    return (
        isinstance(body, list)
        and len(body) > 9
        and _text(body[0]) == "message"
        and _text(body[1]) == "rfc822"
        and isinstance(body[8], list)
    )


def _multipart_children(body: object) -> list[object]:
    assert isinstance(body, list)
    out: list[object] = []
    for child in body:
        if not isinstance(child, list):
            break
        out.append(child)
    return out


def structure_parts(body: object) -> dict[str, StructurePart]:
    """Every part number of a message whose root body is the parsed BODYSTRUCTURE
    ``body``, mapped to what it describes. A non-multipart message's body is part 1; a
    message/rfc822 part ``n`` numbers its message's parts ``n.1``... Spec: RFC 9051
    §6.4.5 (section part)."""
    out: dict[str, StructurePart] = {}
    _structure_entity(body, "", out)
    return out


def _structure_entity(body: object, prefix: str, out: dict[str, StructurePart]) -> None:
    if _is_multipart(body):
        for i, child in enumerate(_multipart_children(body), 1):
            _structure_below(child, f"{prefix}{i}", True, out)
    else:
        _structure_below(body, f"{prefix}1", False, out)


def _structure_below(
    body: object, number: str, has_mime: bool, out: dict[str, StructurePart]
) -> None:
    assert isinstance(body, list)
    if _is_multipart(body):
        children = _multipart_children(body)
        subtype = _text(body[len(children)])
        out[number] = StructurePart(f"multipart/{subtype}", b"", True, False, has_mime)
        for i, child in enumerate(children, 1):
            _structure_below(child, f"{number}.{i}", True, out)
        return
    message = _is_message(body)
    content_type = f"{_text(body[0])}/{_text(body[1])}"
    encoding = _text(body[5]).strip().encode("latin-1")
    at_lines = 9 if message else 7 if content_type.startswith("text/") else None
    out[number] = StructurePart(
        content_type,
        encoding,
        False,
        message,
        has_mime,
        _int(body[6]),
        None if at_lines is None else _int(body[at_lines]),
    )
    if message:
        _structure_entity(body[8], f"{number}.", out)


def _int(value: object) -> int:
    assert isinstance(value, Atom), value
    return int(value.text)


def _kind(part: email.message.Message) -> PartKind:
    if not part.is_multipart():
        return PartKind.LEAF
    if part.get_content_maintype() == "multipart":
        return PartKind.MULTIPART
    if part.get_content_type() == "message/rfc822":
        return PartKind.MESSAGE
    return PartKind.OPAQUE


def email_parts(message: email.message.Message) -> dict[str, EmailPart]:
    """Every part of ``message`` (parsed by Python's ``email``) by IMAP part number,
    numbered as ``structure_parts`` numbers them."""
    out: dict[str, EmailPart] = {}
    _email_entity(message, "", out)
    return out


def _email_entity(message: email.message.Message, prefix: str, out: dict[str, EmailPart]) -> None:
    if _kind(message) is PartKind.MULTIPART:
        for i, child in enumerate(_payload_list(message), 1):
            _email_below(child, f"{prefix}{i}", True, out)
    else:
        _email_below(message, f"{prefix}1", False, out)


def _email_below(
    part: email.message.Message, number: str, has_mime: bool, out: dict[str, EmailPart]
) -> None:
    kind = _kind(part)
    out[number] = EmailPart(part, kind, has_mime)
    if kind is PartKind.MULTIPART:
        for i, child in enumerate(_payload_list(part), 1):
            _email_below(child, f"{number}.{i}", True, out)
    elif kind is PartKind.MESSAGE:
        inner = _payload_list(part)
        assert len(inner) == 1
        _email_entity(inner[0], f"{number}.", out)


def _payload_list(part: email.message.Message) -> list[email.message.Message]:
    payload = part.get_payload()
    assert isinstance(payload, list)
    return [p for p in payload if isinstance(p, email.message.Message)]


def has_defects(parts: dict[str, EmailPart], root: email.message.Message) -> bool:
    """True when Python's parser recorded a defect anywhere in the message."""
    return bool(root.defects) or any(p.message.defects for p in parts.values())


# -- what Python's email says -------------------------------------------------------------


def parse_bytes(data: bytes) -> email.message.Message:
    """``data`` parsed by Python's ``email`` with the compat32 policy (raw bodies kept)."""
    return email.message_from_bytes(data, policy=email.policy.compat32)


def header_items(block: bytes) -> list[tuple[str, str]]:
    """The header fields of a header block (``BODY[n.MIME]``, ``BODY[n.HEADER]``) as
    Python's compat32 parser reads them: (name, value) in order, folds kept."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    return list(parser.parsebytes(block).items())


def raw_payload(part: email.message.Message) -> bytes | None:
    """A leaf's body octets as Python's parser kept them, or None when Python cannot
    give them back. compat32 keeps the octets as ASCII text with surrogate escapes, but
    ``get_payload()`` decodes text holding 8-bit octets by its charset; for those,
    ``get_payload(decode=True)`` returns the octets when the transfer encoding is an
    identity one."""
    payload = part.get_payload()
    assert isinstance(payload, str)
    try:
        return payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        pass
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower().encode()
    if encoding not in IDENTITY_ENCODINGS:
        return None
    octets = part.get_payload(decode=True)
    assert isinstance(octets, bytes)
    return octets


class Binary(StrEnum):
    """How ``BINARY[n]`` of a leaf is checked against Python's decoding."""

    EQUAL = "equal"
    """Python's decoded payload must equal it."""
    UNKNOWN_CTE = "unknown-cte"
    """An encoding postel cannot decode: ``NO [UNKNOWN-CTE]`` (RFC 3516 §4.3)."""
    LENIENT = "lenient"
    """Python decodes by its own lenient rule (see ``expected_binary``): not compared."""


def expected_binary(encoding: bytes, raw: bytes, decoded: bytes, got: bytes) -> Binary:
    """How to check ``got`` (postel's ``BINARY[n]``) of a leaf with body-fld-enc
    ``encoding`` (lower case), raw body ``raw`` and Python's decoded payload
    ``decoded``. Python is lenient where postel follows the RFC: base64 that
    ``binascii`` refuses (Python then returns other octets), and quoted-printable lines
    with trailing white space (deleted per RFC 2045 §6.7 rule 3, kept by Python), so
    those are not compared when the results differ."""
    if encoding in IDENTITY_ENCODINGS:
        return Binary.EQUAL
    if encoding == b"base64":
        try:
            binascii.a2b_base64(raw)
        except binascii.Error:
            return Binary.LENIENT
        return Binary.EQUAL
    if encoding == b"quoted-printable":
        if got != decoded and re.search(rb"[ \t]\r?\n", raw):
            return Binary.LENIENT
        return Binary.EQUAL
    return Binary.UNKNOWN_CTE


__all__ = [
    "COMPARED_ITEMS",
    "Binary",
    "Difference",
    "EmailPart",
    "Fetched",
    "PartKind",
    "StructurePart",
    "collect",
    "email_parts",
    "expected_binary",
    "fetch",
    "has_defects",
    "header_items",
    "listed_differences",
    "multiappend",
    "parse_bytes",
    "parse_fetch",
    "pipelined",
    "plain_literals",
    "raw_payload",
    "structure_parts",
    "wire_differences",
]
