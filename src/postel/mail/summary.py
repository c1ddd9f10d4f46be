"""MessageSummary: what IMAP needs of a message, parsed once at delivery, stored as JSON.

JSON format (version 1): a compact object ``{"v": 1, "ie1": "...", "size": n,
"env": [...], "body": {...}}``. ``ie1``, always the second key, is the ENVELOPE as IMAP
FETCH sends it (:func:`postel.mail.imapfmt.render_envelope`), rendered once here so that
a FETCH of many ENVELOPEs reads one string per message (:func:`imap_envelope`) instead
of decoding and rendering the summary; a change of that rendering renames the key, and
a summary without it (written before it existed) is decoded as before. Octet strings (header values, which may hold 8-bit octets) are JSON
strings in which each character is one octet (latin-1 mapping: U+0000-U+00FF), so a
round trip is exact whatever the octets; encoded output uses ``\\u00XX`` escapes for
non-ASCII. Part keys are short and default values are omitted.

Section numbers (RFC 9051 §6.4.5): ``section_range`` maps a part number such as
``(2, 1)`` and a section text (HEADER, TEXT, MIME or the whole part) to the octet range
of the stored message.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from postel import fastjson
from postel.errors import ProtocolError
from postel.mail.address import Address
from postel.mail.envelope import Envelope, envelope_from_header
from postel.mail.header import split_header
from postel.mail.mime import BodyPart, EnclosedMessage, parse_mime, parse_mime_header
from postel.mail.params import Param

__all__ = [
    "SUMMARY_VERSION",
    "MessageSummary",
    "SectionText",
    "find_part",
    "imap_envelope",
    "parse_message",
    "section_range",
]

SUMMARY_VERSION = 1


class SectionText(StrEnum):
    """The section-text of a BODY[] section. Spec: RFC 9051 §6.4.5."""

    ALL = ""
    HEADER = "HEADER"
    TEXT = "TEXT"
    MIME = "MIME"


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """ENVELOPE, MIME tree with offsets and RFC822.SIZE of one stored message.

    ``size`` is the message size in octets; ``body`` is the root entity (its header is
    the message header).

    Spec: RFC 9051 §7.5.2, RFC 5322, RFC 2045-2046.
    """

    size: int
    envelope: Envelope
    body: BodyPart

    def to_json(self) -> str:
        """Encode as compact versioned JSON (see the module docstring). Never raises."""
        from postel.mail.imapfmt import render_envelope  # imapfmt renders summaries

        obj = {
            "v": SUMMARY_VERSION,
            _IMAP_ENVELOPE_KEY: render_envelope(self).decode("latin-1"),
            "size": self.size,
            "env": _env_out(self.envelope),
            "body": _part_out(self.body),
        }
        return fastjson.dumps(obj).decode()

    @classmethod
    def from_json(cls, text: str, *, envelope_only: bool = False) -> MessageSummary:
        """Decode ``to_json`` output. With ``envelope_only`` the MIME tree is not
        built: ``body`` is then an empty text/plain part, for readers of the ENVELOPE
        alone (FETCH ENVELOPE, SORT), which cost a fraction of the whole decode.

        Raises ProtocolError if the text is not a version 1 summary.
        """
        try:
            obj = fastjson.loads(text)
            if obj.get("v") != SUMMARY_VERSION:
                raise ProtocolError(f"unsupported summary version {obj.get('v')!r}")
            body = _NO_BODY if envelope_only else _part_in(obj["body"])
            return cls(int(obj["size"]), _env_in(obj["env"]), body)
        except ProtocolError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ProtocolError(f"bad message summary: {exc}") from exc


_NO_BODY = parse_mime(b"\r\n")
_IMAP_ENVELOPE_KEY = "ie1"
_IMAP_ENVELOPE_START = f'{{"v":{SUMMARY_VERSION},"{_IMAP_ENVELOPE_KEY}":'
_DECODER = json.JSONDecoder()


def imap_envelope(text: str) -> bytes | None:
    """The pre-rendered IMAP ENVELOPE of a summary's JSON (see the module docstring),
    read without decoding the rest; None when the summary has none (the caller then
    decodes it and renders). Never raises. Spec: RFC 9051 §7.5.2 (ENVELOPE)."""
    if not text.startswith(_IMAP_ENVELOPE_START):
        return None
    try:
        value, _end = _DECODER.raw_decode(text, len(_IMAP_ENVELOPE_START))
        if not isinstance(value, str) or "\x00" in value:
            return None  # rendered before NULs were left out of IMAP strings
        return value.encode("latin-1")
    except (ValueError, UnicodeEncodeError):
        return None


def parse_message(data: bytes, added: bytes = b"") -> MessageSummary:
    """Parse a whole message (header + body octets, CRLF) into its summary.

    ``added`` holds header fields stored before the message (fields the server adds,
    such as the Date and Message-ID of a submission that had none): the ENVELOPE reads
    them as the message's own; the offsets stay relative to ``data``.

    Never raises: malformed input yields the best structure the rules in
    ``postel.mail.mime`` give.

    Spec: RFC 5322 §2.1, RFC 2045, RFC 2046, RFC 9051 §7.5.2; RFC 6409 §8.2, §8.3.
    """
    body, header = parse_mime_header(data)
    if added:
        header = dataclasses.replace(header, fields=split_header(added).fields + header.fields)
    return MessageSummary(len(data), envelope_from_header(header), body)


def find_part(root: BodyPart, numbers: tuple[int, ...]) -> BodyPart | None:
    """The part named by an IMAP part number, or None if there is no such part.

    ``()`` is the message itself. A non-multipart message has one part, numbered 1; the
    parts of a message/rfc822 part are numbered below it as those of a message.

    Spec: RFC 9051 §6.4.5.
    """
    part = root
    for i, n in enumerate(numbers):
        if i > 0 and part.message is not None:
            part = part.message.body
        elif i > 0 and not part.is_multipart:
            return None
        if part.is_multipart:
            if not 1 <= n <= len(part.parts):
                return None
            part = part.parts[n - 1]
        elif n != 1:
            return None
    return part


def section_range(
    summary: MessageSummary, numbers: tuple[int, ...], text: SectionText
) -> tuple[int, int] | None:
    """Octet range (offset, length) of BODY[<numbers>.<text>], or None if it does not exist.

    HEADER and TEXT apply to the message itself (``numbers == ()``) or to a
    message/rfc822 part; MIME needs a part number. ``()`` with ALL is the whole message.

    Spec: RFC 9051 §6.4.5.
    """
    part = find_part(summary.body, numbers)
    if part is None:
        return None
    if text is SectionText.MIME:
        return None if not numbers else (part.header_offset, part.header_length)
    if text is SectionText.ALL:
        if not numbers:
            return 0, summary.size
        return part.body_offset, part.body_length
    if numbers:
        if part.message is None:
            return None
        part = part.message.body
    if text is SectionText.HEADER:
        return part.header_offset, part.header_length
    start = part.body_offset
    end = summary.size if not numbers else part.body_offset + part.body_length
    return start, max(end - start, 0)


# --- JSON mapping -------------------------------------------------------------------


def _s(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _b(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value.encode("latin-1")


def _bb(value: Any) -> bytes:
    out = _b(value)
    if out is None:
        raise TypeError("expected a string")
    return out


def _addrs_out(addrs: tuple[Address, ...]) -> list[list[str | None]]:
    return [[_s(a.name), _s(a.adl), _s(a.mailbox), _s(a.host)] for a in addrs]


def _addrs_in(obj: Any) -> tuple[Address, ...]:
    return tuple(Address(_b(a[0]), _b(a[1]), _b(a[2]), _b(a[3])) for a in obj)


def _env_out(env: Envelope) -> list[Any]:
    return [
        _s(env.date),
        _s(env.subject),
        _addrs_out(env.from_),
        _addrs_out(env.sender),
        _addrs_out(env.reply_to),
        _addrs_out(env.to),
        _addrs_out(env.cc),
        _addrs_out(env.bcc),
        _s(env.in_reply_to),
        _s(env.message_id),
    ]


def _env_in(obj: Any) -> Envelope:
    return Envelope(
        date=_b(obj[0]),
        subject=_b(obj[1]),
        from_=_addrs_in(obj[2]),
        sender=_addrs_in(obj[3]),
        reply_to=_addrs_in(obj[4]),
        to=_addrs_in(obj[5]),
        cc=_addrs_in(obj[6]),
        bcc=_addrs_in(obj[7]),
        in_reply_to=_b(obj[8]),
        message_id=_b(obj[9]),
    )


def _params_out(params: tuple[Param, ...]) -> list[list[str]]:
    return [[p.name.decode("latin-1"), p.value.decode("latin-1")] for p in params]


def _params_in(obj: Any) -> tuple[Param, ...]:
    return tuple(Param(_bb(p[0]), _bb(p[1])) for p in obj)


_OPTIONAL_OCTETS = {
    "id": "content_id",
    "desc": "description",
    "enc": "encoding",
    "md5": "md5",
    "disp": "disposition",
    "loc": "location",
}


def _part_out(part: BodyPart) -> dict[str, Any]:
    out: dict[str, Any] = {
        "o": [part.header_offset, part.header_length, part.body_offset, part.body_length],
        "n": part.body_lines,
        "t": f"{part.type}/{part.subtype}",
    }
    if part.params:
        out["p"] = _params_out(part.params)
    for key, attr in _OPTIONAL_OCTETS.items():
        value = getattr(part, attr)
        if value is not None:
            out[key] = value.decode("latin-1")
    if part.disposition_params:
        out["dp"] = _params_out(part.disposition_params)
    if part.language:
        out["lang"] = [x.decode("latin-1") for x in part.language]
    if part.parts:
        out["parts"] = [_part_out(p) for p in part.parts]
    if part.message is not None:
        out["msg"] = {"env": _env_out(part.message.envelope), "body": _part_out(part.message.body)}
    if part.opaque:
        out["opaque"] = True
    return out


def _part_in(obj: Any) -> BodyPart:
    o = obj["o"]
    mtype, _, subtype = str(obj["t"]).partition("/")
    msg = obj.get("msg")
    optional = {attr: _b(obj.get(key)) for key, attr in _OPTIONAL_OCTETS.items()}
    return BodyPart(
        header_offset=int(o[0]),
        header_length=int(o[1]),
        body_offset=int(o[2]),
        body_length=int(o[3]),
        body_lines=int(obj["n"]),
        type=mtype,
        subtype=subtype,
        params=_params_in(obj.get("p", ())),
        disposition_params=_params_in(obj.get("dp", ())),
        language=tuple(_bb(x) for x in obj.get("lang", ())),
        parts=tuple(_part_in(p) for p in obj.get("parts", ())),
        message=None
        if msg is None
        else EnclosedMessage(_env_in(msg["env"]), _part_in(msg["body"])),
        opaque=bool(obj.get("opaque", False)),
        **optional,
    )
