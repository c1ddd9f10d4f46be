"""The IMAP ENVELOPE of a message, taken from its header section.

Values are raw octets: unfolded (RFC 5322 §2.2.3), leading whitespace removed, encoded
words untouched, because IMAP returns them as they are (RFC 9051 §7.5.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from postel.mail.address import ADDRESSES_MAX, Address, parse_address_list
from postel.mail.header import HeaderBlock, HeaderField, unfold

__all__ = ["Envelope", "envelope_from_header", "field_text", "field_value", "first_fields"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """ENVELOPE fields. None = NIL; an empty address tuple renders as NIL.

    ``sender`` and ``reply_to`` already hold the From addresses when the message has no
    (usable) Sender or Reply-To field.

    Spec: RFC 9051 §7.5.2, RFC 3501 §7.4.2.
    """

    date: bytes | None = None
    subject: bytes | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: bytes | None = None
    message_id: bytes | None = None


def field_text(header: HeaderBlock, name: bytes, *, last: bool = False) -> bytes | None:
    """A ``name`` field's value, leading WSP removed, then unfolded; None if absent.

    (A value that starts on the next line keeps the folding WSP, as Dovecot sends it.)

    The first field of that name is used, or the last one when ``last`` is set.

    Spec: RFC 5322 §2.2.3.
    """
    field = header.last(name) if last else header.first(name)
    return None if field is None else _text(field)


def first_fields(header: HeaderBlock, prefix: bytes) -> dict[bytes, HeaderField]:
    """The first field of each name that starts with ``prefix`` (lower case), by its
    lower-case name: one pass for a reader of several such fields (a MIME part's
    ``content-*``), where ``field_text`` would scan the header once per name."""
    out: dict[bytes, HeaderField] = {}
    for field in header.fields:
        name = field.name.lower()
        if name.startswith(prefix) and name not in out:
            out[name] = field
    return out


def field_value(field: HeaderField | None) -> bytes | None:
    """``field``'s value as ``field_text`` gives it; None for None."""
    return None if field is None else _text(field)


_ENVELOPE_FIELDS = frozenset(
    {
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
    }
)
"""The header fields the ENVELOPE is made of. Spec: RFC 9051 §7.5.2."""


def _addresses(fields: list[HeaderField]) -> tuple[Address, ...]:
    """The addresses of ``fields``, in order, at most ADDRESSES_MAX in all."""
    out: list[Address] = []
    for field in fields:
        out.extend(parse_address_list(field.value, max_addresses=ADDRESSES_MAX - len(out)))
        if len(out) >= ADDRESSES_MAX:
            break
    return tuple(out)


def _last_text(fields: list[HeaderField]) -> bytes | None:
    """The last field's value as ``field_text(..., last=True)`` gives it; None if none."""
    return _text(fields[-1]) if fields else None


def _text(field: HeaderField) -> bytes:
    """A field's value, leading WSP removed, then unfolded. Spec: RFC 5322 §2.2.3."""
    return unfold(field.value.lstrip(b" \t"))


def envelope_from_header(header: HeaderBlock) -> Envelope:
    """Build the ENVELOPE from a message's header section.

    A message should have each of these fields at most once (RFC 5322 §3.6). When one
    is repeated, the addresses of all address fields of that name are listed and the
    last Date, Subject, In-Reply-To and Message-ID is used: the choices of Dovecot, so
    that ENVELOPE agrees with the reference server.

    Spec: RFC 9051 §7.5.2, RFC 3501 §7.4.2 (sender and reply-to default to from).
    """
    named: dict[bytes, list[HeaderField]] = {}
    for field in header.fields:  # one pass: each name lowered once
        key = field.name.lower()
        if key in _ENVELOPE_FIELDS:
            named.setdefault(key, []).append(field)
    none: list[HeaderField] = []
    from_ = _addresses(named.get(b"from", none))
    sender = _addresses(named.get(b"sender", none)) or from_
    reply_to = _addresses(named.get(b"reply-to", none)) or from_
    return Envelope(
        date=_last_text(named.get(b"date", none)),
        subject=_last_text(named.get(b"subject", none)),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=_addresses(named.get(b"to", none)),
        cc=_addresses(named.get(b"cc", none)),
        bcc=_addresses(named.get(b"bcc", none)),
        in_reply_to=_last_text(named.get(b"in-reply-to", none)),
        message_id=_last_text(named.get(b"message-id", none)),
    )
