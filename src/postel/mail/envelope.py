"""The IMAP ENVELOPE of a message, taken from its header section.

Values are raw octets: unfolded (RFC 5322 §2.2.3), leading whitespace removed, encoded
words untouched, because IMAP returns them as they are (RFC 9051 §7.5.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from postel.mail.address import ADDRESSES_MAX, Address, parse_address_list
from postel.mail.header import HeaderBlock, unfold

__all__ = ["Envelope", "envelope_from_header", "field_text"]


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
    if field is None:
        return None
    return unfold(field.value.lstrip(b" \t"))


def _addresses(header: HeaderBlock, name: bytes) -> tuple[Address, ...]:
    """The addresses of every ``name`` field, in order, at most ADDRESSES_MAX in all."""
    out: list[Address] = []
    for field in header.get_all(name):
        out.extend(parse_address_list(field.value, max_addresses=ADDRESSES_MAX - len(out)))
        if len(out) >= ADDRESSES_MAX:
            break
    return tuple(out)


def envelope_from_header(header: HeaderBlock) -> Envelope:
    """Build the ENVELOPE from a message's header section.

    A message should have each of these fields at most once (RFC 5322 §3.6). When one
    is repeated, the addresses of all address fields of that name are listed and the
    last Date, Subject, In-Reply-To and Message-ID is used: the choices of Dovecot, so
    that ENVELOPE agrees with the reference server.

    Spec: RFC 9051 §7.5.2, RFC 3501 §7.4.2 (sender and reply-to default to from).
    """
    from_ = _addresses(header, b"from")
    sender = _addresses(header, b"sender") or from_
    reply_to = _addresses(header, b"reply-to") or from_
    return Envelope(
        date=field_text(header, b"date", last=True),
        subject=field_text(header, b"subject", last=True),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=_addresses(header, b"to"),
        cc=_addresses(header, b"cc"),
        bcc=_addresses(header, b"bcc"),
        in_reply_to=field_text(header, b"in-reply-to", last=True),
        message_id=field_text(header, b"message-id", last=True),
    )
