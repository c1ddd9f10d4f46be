"""SEARCH evaluation: does one message match a search key tree?

Semantics (RFC 9051 §6.4.4), with the choices the RFC leaves open:

* String keys match a case-insensitive substring: both sides are Unicode-casefolded
  after decoding, so ``STRASSE`` finds "Straße"; there is no locale-specific folding
  (Turkish dotted/dotless i fold as in the Unicode default).
* FROM, TO, CC, BCC, SUBJECT and HEADER test every field of that name in the top-level
  header (trace fields included), unfolded and with RFC 2047 words decoded; addresses
  match anywhere in the decoded field text (display name or address). ``HEADER name ""``
  matches when the field is present. BODY tests the body text
  (:func:`postel.imap.textsearch.search_texts`: text/html also reduced to text), TEXT
  the header text or the body text.
  A match never spans two parts.
* BEFORE/ON/SINCE compare the date of the internal date in its own zone (the date
  FETCH INTERNALDATE shows; the store keeps UTC, so this is the UTC date).
  SENTBEFORE/SENTON/SENTSINCE compare the date written in the Date: field; without a
  parsable Date: the internal date is used, as Dovecot does.
* ``*`` in a sequence set is the largest sequence number or UID of the mailbox; ``$``
  (RFC 5182) names the saved result, kept as UIDs; with no saved result it is empty.
* No message is \\Recent (postel keeps no such state): RECENT matches nothing, OLD all.

Only HEADER-type, BODY and TEXT keys read message octets (:func:`needs_bytes`); SENT*
keys read the summary's ENVELOPE date (:func:`needs_summary`); every other key reads
only the message's attributes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from postel.errors import LocalProtocolError
from postel.imap.search_keys import (
    AllKey,
    AndKey,
    BodyKey,
    DateField,
    DateKey,
    DateOp,
    FlagKey,
    HeaderKey,
    ModseqKey,
    NotKey,
    OrKey,
    RecentKey,
    SearchKey,
    SequenceKey,
    SizeKey,
    SizeOp,
    TextKey,
)
from postel.imap.textsearch import HeaderText, header_text, search_texts
from postel.mail.date import parse_date
from postel.mail.header import split_header
from postel.mail.mime import BodyPart, parse_mime
from postel.mail.summary import MessageSummary

__all__ = [
    "SearchContext",
    "SearchDataMissing",
    "SearchSource",
    "decide_without_text",
    "evaluate",
    "header_key_count",
    "in_sequence",
    "needs_bytes",
    "needs_summary",
    "required_sequences",
    "text_key_count",
    "walk",
]


class SearchDataMissing(LocalProtocolError):
    """A key needs the message octets or summary and ``SearchSource`` lacks them (the
    driver should have loaded them: see :func:`needs_bytes`, :func:`needs_summary`)."""


@dataclass(frozen=True, slots=True)
class SearchSource:
    """What SEARCH reads of one message.

    ``msn`` is its message sequence number, ``size`` RFC822.SIZE; ``summary`` (of the
    blob) is needed by SENT* keys unless ``data`` is given; ``data`` is the stored
    message (``trace_prefix + blob``), needed by HEADER, FROM..SUBJECT, BODY and TEXT.

    Spec: RFC 9051 §2.3, §6.4.4.
    """

    msn: int
    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    size: int
    summary: MessageSummary | None = None
    trace_prefix: bytes = b""
    data: bytes | None = None
    modseq: int = 0
    """The message's MODSEQ (the MODSEQ key, RFC 7162 §3.1.5)."""
    save_date: dt.datetime | None = None
    """The SAVEDATE (SAVED* keys, RFC 8514 §2.2); None falls back to internal_date."""


@dataclass(frozen=True, slots=True)
class SearchContext:
    """The mailbox around the message: ``largest_msn`` and ``largest_uid`` stand for
    ``*``; ``saved_uids`` is the saved search result (``$``), None when there is none;
    ``recent_uids`` the messages recent in this session.

    Spec: RFC 9051 §9 (seq-number), RFC 5182 §2.1.
    """

    largest_msn: int
    largest_uid: int
    saved_uids: frozenset[int] | None = None
    recent_uids: frozenset[int] = frozenset()
    """UIDs with \\Recent in this session (IMAP4rev1 RECENT, NEW, OLD; RFC 3501 §6.4.4)."""


def needs_bytes(key: SearchKey) -> bool:
    """True when evaluating ``key`` may read the message octets (HEADER, FROM, TO, CC,
    BCC, SUBJECT, BODY, TEXT anywhere in the tree). Spec: RFC 9051 §6.4.4."""
    return _any_key(key, lambda k: isinstance(k, HeaderKey | BodyKey | TextKey))


def walk(key: SearchKey) -> Iterator[SearchKey]:
    """``key`` and every key below it (under NOT, OR and AND), depth first."""
    stack: list[SearchKey] = [key]
    while stack:
        k = stack.pop()
        yield k
        if isinstance(k, NotKey):
            stack.append(k.key)
        elif isinstance(k, OrKey):
            stack.extend((k.left, k.right))
        elif isinstance(k, AndKey):
            stack.extend(k.keys)


def text_key_count(key: SearchKey) -> int:
    """How many BODY and TEXT keys ``key`` holds (anywhere in the tree, each counted
    as often as it appears): how many times evaluating it may scan a message's decoded
    text. Spec: RFC 9051 §6.4.4."""
    return sum(1 for k in walk(key) if isinstance(k, BodyKey | TextKey))


def header_key_count(key: SearchKey) -> int:
    """How many HEADER, FROM, TO, CC, BCC and SUBJECT keys ``key`` holds (each counted
    as often as it appears): how many times evaluating it may scan a message's header
    section. Spec: RFC 9051 §6.4.4."""
    return sum(1 for k in walk(key) if isinstance(k, HeaderKey))


def required_sequences(key: SearchKey) -> tuple[SequenceKey, ...]:
    """The sequence sets (message sequence numbers, UIDs or ``$``) AND-ed at the top of
    ``key``: a message outside any of them cannot match, whatever the rest of the key
    says, so a driver may skip it before reading anything. Spec: RFC 9051 §6.4.4
    (keys are AND-ed; a sequence set as a key)."""
    found: list[SequenceKey] = []
    stack: list[SearchKey] = [key]
    while stack:
        k = stack.pop()
        if isinstance(k, SequenceKey):
            found.append(k)
        elif isinstance(k, AndKey):
            stack.extend(k.keys)
    return tuple(found)


def in_sequence(key: SequenceKey, msn: int, uid: int, ctx: SearchContext) -> bool:
    """True when the message numbered ``msn`` with ``uid`` is in ``key``'s set (``*``
    and ``$`` from ``ctx``). Spec: RFC 9051 §6.4.4, §9 (seq-number); RFC 5182 §2.1."""
    if key.set.saved:
        saved = ctx.saved_uids
        return saved is not None and uid in saved
    if key.uid:
        return key.set.contains(uid, ctx.largest_uid)
    return key.set.contains(msn, ctx.largest_msn)


def needs_summary(key: SearchKey) -> bool:
    """True when ``key`` holds SENTBEFORE/SENTON/SENTSINCE, which read the Date: field
    from the summary's ENVELOPE (or from the octets). Spec: RFC 9051 §6.4.4."""
    return _any_key(key, lambda k: isinstance(k, DateKey) and k.field is DateField.SENT)


def _any_key(key: SearchKey, test: Callable[[SearchKey], bool]) -> bool:
    return any(test(k) for k in walk(key))


def decide_without_text(key: SearchKey, msg: SearchSource, ctx: SearchContext) -> bool | None:
    """The answer of ``key`` for ``msg`` when the message text cannot change it, else
    None: an AND is False once one of its keys is False, an OR True once one is True,
    whatever its HEADER, FROM..SUBJECT, BODY and TEXT keys would say (and a SENT* key
    counts as text when ``msg`` has no summary). ``msg.data`` is never read, so a driver
    may ask before reading the message. Agrees with ``evaluate`` whenever it is not
    None. Spec: RFC 9051 §6.4.4 (keys are AND-ed; OR, NOT)."""
    return _Evaluator(msg, ctx).decide(key)


def evaluate(key: SearchKey, msg: SearchSource, ctx: SearchContext) -> bool:
    """True when ``msg`` matches ``key``. Message text is decoded at most once per call.

    Raises SearchDataMissing when the key needs octets or a summary ``msg`` lacks;
    nothing else, whatever the message holds. Spec: RFC 9051 §6.4.4.
    """
    return _Evaluator(msg, ctx).test(key)


@dataclass(slots=True)
class _Evaluator:
    """One message's evaluation, caching its decoded text between keys."""

    msg: SearchSource
    ctx: SearchContext
    _flags: frozenset[str] | None = None
    _header: HeaderText | None = None
    _header_folded: str | None = None
    _body: list[str] | None = None
    _folded: dict[str, str] = field(default_factory=dict)
    _field_values: dict[str, list[str]] = field(default_factory=dict)

    def test(self, key: SearchKey) -> bool:
        if isinstance(key, AndKey):
            return all(self.test(k) for k in key.keys)
        if isinstance(key, OrKey):
            return self.test(key.left) or self.test(key.right)
        if isinstance(key, NotKey):
            return not self.test(key.key)
        if isinstance(key, AllKey):
            return True
        if isinstance(key, FlagKey):
            return (key.flag.lower() in self.flags()) == key.present
        if isinstance(key, RecentKey):
            return (self.msg.uid in self.ctx.recent_uids) == key.recent
        if isinstance(key, SizeKey):
            if key.op is SizeOp.LARGER:
                return self.msg.size > key.size
            return self.msg.size < key.size
        if isinstance(key, SequenceKey):
            return self.sequence(key)
        if isinstance(key, ModseqKey):
            return self.msg.modseq >= key.modseq
        if isinstance(key, DateKey):
            return self.date(key)
        if isinstance(key, HeaderKey):
            return self.header_field(key)
        if isinstance(key, BodyKey):
            return self.in_body(key.value)
        return self.in_header(key.value) or self.in_body(key.value)

    def decide(self, key: SearchKey) -> bool | None:
        """``decide_without_text``: three-valued, None where the text decides."""
        if isinstance(key, AndKey):
            answers = [self.decide(k) for k in key.keys]
            if False in answers:
                return False
            return None if None in answers else True
        if isinstance(key, OrKey):
            left = self.decide(key.left)
            if left is True:
                return True
            right = self.decide(key.right)
            if right is True:
                return True
            return None if None in (left, right) else False
        if isinstance(key, NotKey):
            inner = self.decide(key.key)
            return None if inner is None else not inner
        if isinstance(key, HeaderKey | BodyKey | TextKey):
            return None
        if isinstance(key, DateKey) and key.field is DateField.SENT and self.msg.summary is None:
            return None
        return self.test(key)

    def flags(self) -> frozenset[str]:
        if self._flags is None:
            self._flags = frozenset(f.lower() for f in self.msg.flags)
        return self._flags

    def sequence(self, key: SequenceKey) -> bool:
        return in_sequence(key, self.msg.msn, self.msg.uid, self.ctx)

    def date(self, key: DateKey) -> bool:
        if key.field is DateField.SENT:
            day = self.sent_date()
        elif key.field is DateField.SAVED:
            day = (self.msg.save_date or self.msg.internal_date).date()
        else:
            day = self.msg.internal_date.date()
        if key.op is DateOp.BEFORE:
            return day < key.date
        if key.op is DateOp.ON:
            return day == key.date
        return day >= key.date

    def sent_date(self) -> dt.date:
        summary = self.msg.summary
        if summary is not None:
            raw = summary.envelope.date
        else:
            data = self.data()
            date_field = split_header(data).first(b"date")
            raw = None if date_field is None else date_field.value
        parsed = None if raw is None else parse_date(raw.strip())
        return (parsed or self.msg.internal_date).date()

    def data(self) -> bytes:
        if self.msg.data is None:
            raise SearchDataMissing("SEARCH key needs the message octets")
        return self.msg.data

    def header(self) -> HeaderText:
        if self._header is None:
            self._header = header_text(self.data())
        return self._header

    def fold(self, text: str) -> str:
        folded = self._folded.get(text)
        if folded is None:
            folded = self._folded[text] = text.casefold()
        return folded

    def header_field(self, key: HeaderKey) -> bool:
        values = self.folded_values(key.field)
        if not key.value:
            return bool(values)
        needle = self.fold(key.value)
        return any(needle in value for value in values)

    def folded_values(self, name: str) -> list[str]:
        """The decoded values of the fields called ``name``, casefolded once per
        message however many keys read them."""
        low = name.lower()
        values = self._field_values.get(low)
        if values is None:
            values = self._field_values[low] = [v.casefold() for v in self.header().values(name)]
        return values

    def in_header(self, value: str) -> bool:
        if self._header_folded is None:
            self._header_folded = self.header().text().casefold()
        return self.fold(value) in self._header_folded

    def in_body(self, value: str) -> bool:
        if self._body is None:
            data = self.data()
            root, shift = self.structure(data)
            self._body = [text.casefold() for text in search_texts(data, root, shift)]
        needle = self.fold(value)
        return any(needle in text for text in self._body)

    def structure(self, data: bytes) -> tuple[BodyPart, int]:
        summary = self.msg.summary
        if summary is not None:
            return summary.body, len(self.msg.trace_prefix)
        return parse_mime(data), 0
