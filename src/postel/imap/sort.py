"""SORT: the sort criteria of a SORT command and the ordering of messages by them.

Pure functions over `SortRecord` values that the driver builds from the store (the
header fields already parsed and RFC 2047-decoded). `sort_records` sorts once per
criterion, least significant first, with Python's stable sort: each pass uses a key
function (no comparison function), and REVERSE is that one pass's ``reverse=True``,
which keeps ties in their previous order, so REVERSE never reverses the implicit
sequence-number criterion. O(k n log n) for k distinct criteria (k <= 9).

Spec: RFC 5256 §3 (SORT), §2.1 (base subject), §2.2 (sent date), RFC 5957 §3
(DISPLAYFROM, DISPLAYTO), RFC 5051 (i;unicode-casemap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from postel.errors import ProtocolError
from postel.mail.address import Address
from postel.mail.basesubject import base_subject, casemap
from postel.mail.header import decode_encoded_words

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

__all__ = [
    "SORT_CRITERIA_MAX",
    "SortCriteriaError",
    "SortCriterion",
    "SortKey",
    "SortRecord",
    "first_display",
    "first_mailbox",
    "parse_sort_criteria",
    "sort_records",
]

SORT_CRITERIA_MAX = 32
"""Sort criteria accepted in one SORT command. Nine keys, each at most once with or
without REVERSE, make every useful list; more is refused with BAD. Local policy
(RFC 5256 §3 sets no bound; RELIABILITY.md D7)."""

_REVERSE = "REVERSE"


class SortCriteriaError(ProtocolError, ValueError):
    """A sort criteria list that does not parse: empty, too long, an unknown key, or
    REVERSE not followed by a key. The driver answers BAD. Spec: RFC 5256 §5
    (sort-criterion = ["REVERSE" SP] sort-key)."""


class SortKey(StrEnum):
    """The sort keys. DISPLAYFROM and DISPLAYTO belong to SORT=DISPLAY.

    Spec: RFC 5256 §3, RFC 5957 §3.
    """

    ARRIVAL = "ARRIVAL"
    CC = "CC"
    DATE = "DATE"
    FROM = "FROM"
    SIZE = "SIZE"
    SUBJECT = "SUBJECT"
    TO = "TO"
    DISPLAYFROM = "DISPLAYFROM"
    DISPLAYTO = "DISPLAYTO"


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """One sort-criterion: a key, descending when ``reverse``. Spec: RFC 5256 §3."""

    key: SortKey
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class SortRecord:
    """What SORT needs of one message.

    ``seq`` message sequence number, ``uid`` UID, ``internal_date`` INTERNALDATE,
    ``sent_date`` the parsed Date: field (None when missing or unparsable), ``size``
    RFC822.SIZE in octets, ``subject`` the decoded Subject ("" when absent).
    ``from_mailbox``, ``to_mailbox``, ``cc_mailbox``: the addr-mailbox (local part) of
    the first address of that field, None when absent (see `first_mailbox`).
    ``from_display``, ``to_display``: display-name of the first address, else its
    addr-spec, None when absent (see `first_display`). Datetimes without a zone are
    taken as UTC.

    Spec: RFC 5256 §3, RFC 5957 §3.
    """

    seq: int
    uid: int
    internal_date: datetime
    sent_date: datetime | None
    size: int
    subject: str = ""
    from_mailbox: str | None = None
    to_mailbox: str | None = None
    cc_mailbox: str | None = None
    from_display: str | None = None
    to_display: str | None = None


def parse_sort_criteria(tokens: Sequence[str]) -> tuple[SortCriterion, ...]:
    """Parse the atoms inside a SORT command's parenthesised criteria list.

    ``tokens`` are the atoms in order, e.g. ``["REVERSE", "DATE", "subject"]`` (case is
    ignored). Raises `SortCriteriaError` on an empty list, more than SORT_CRITERIA_MAX
    criteria, an unknown key, or a REVERSE not followed by a key (including
    ``REVERSE REVERSE``).

    Spec: RFC 5256 §5 (sort-criterion, sort-key), RFC 5957 §4.
    """
    if not tokens:
        raise SortCriteriaError("empty sort criteria list")
    criteria: list[SortCriterion] = []
    reverse = False
    for token in tokens:
        word = token.upper()
        if word == _REVERSE:
            if reverse:
                raise SortCriteriaError("REVERSE must be followed by a sort key")
            reverse = True
            continue
        try:
            key = SortKey(word)
        except ValueError:
            raise SortCriteriaError(f"unknown sort key {token[:64]!r}") from None
        criteria.append(SortCriterion(key, reverse))
        reverse = False
        if len(criteria) > SORT_CRITERIA_MAX:
            raise SortCriteriaError(f"more than {SORT_CRITERIA_MAX} sort criteria")
    if reverse:
        raise SortCriteriaError("REVERSE must be followed by a sort key")
    return tuple(criteria)


def sort_records(
    records: Iterable[SortRecord], criteria: Sequence[SortCriterion]
) -> list[SortRecord]:
    """Order messages by ``criteria`` in priority order, then by sequence number.

    ARRIVAL: INTERNALDATE. DATE: the sent date, or INTERNALDATE when there is none;
    dates compare as instants (zone-adjusted). SIZE: octets. FROM, TO, CC: the
    addr-mailbox; DISPLAYFROM, DISPLAYTO: display name or addr-spec; SUBJECT: the base
    subject; strings compare under i;unicode-casemap, an absent value being the empty
    string, which sorts first. REVERSE reverses its own criterion only. A key repeated
    later in the list cannot change the order and is skipped. Returns a new list; never
    raises.

    Spec: RFC 5256 §3, §2.1, §2.2, RFC 5957 §3.
    """
    ordered = sorted(records, key=_seq)
    seen: set[SortKey] = set()
    passes: list[SortCriterion] = []
    for criterion in criteria:
        if criterion.key not in seen:
            seen.add(criterion.key)
            passes.append(criterion)
    for criterion in reversed(passes):
        ordered.sort(key=_KEY_FUNCTIONS[criterion.key], reverse=criterion.reverse)
    return ordered


def first_mailbox(addresses: Sequence[Address]) -> str | None:
    """The addr-mailbox of the first address (for a group, the group name), decoded as
    UTF-8 (latin-1 fallback); None when there is no address.

    Spec: RFC 5256 §3 (CC, FROM, TO), RFC 9051 §7.5.2 (address structure).
    """
    if not addresses or addresses[0].mailbox is None:
        return None
    return _text(addresses[0].mailbox)


def first_display(addresses: Sequence[Address]) -> str | None:
    """The RFC 5957 sort value of the first address: its display name (RFC 2047
    decoded) when present and not empty, else its addr-spec ``mailbox@host`` (just the
    mailbox without a host; for a group, the group name); None when there is none.

    Spec: RFC 5957 §3 (DISPLAYFROM, DISPLAYTO).
    """
    if not addresses:
        return None
    first = addresses[0]
    if first.name:
        name = decode_encoded_words(first.name).strip()
        if name:
            return name
    if first.mailbox is None:
        return None
    mailbox = _text(first.mailbox)
    if first.host is None:
        return mailbox
    return f"{mailbox}@{_text(first.host)}"


def _text(raw: bytes) -> str:
    """Address octets as text: UTF-8 (RFC 6532), else latin-1. Never raises."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _utc(when: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken as UTC."""
    if when.tzinfo is None or when.utcoffset() is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _seq(record: SortRecord) -> int:
    return record.seq


def _arrival(record: SortRecord) -> datetime:
    return _utc(record.internal_date)


def _date(record: SortRecord) -> datetime:
    sent = record.sent_date if record.sent_date is not None else record.internal_date
    return _utc(sent)


def _size(record: SortRecord) -> int:
    return record.size


def _subject(record: SortRecord) -> str:
    return casemap(base_subject(record.subject))


def _string_key(field: Callable[[SortRecord], str | None]) -> Callable[[SortRecord], str]:
    def key(record: SortRecord) -> str:
        value = field(record)
        return casemap(value) if value else ""

    return key


_KEY_FUNCTIONS: MappingProxyType[SortKey, Callable[[SortRecord], SupportsRichComparison]] = (
    MappingProxyType(
        {
            SortKey.ARRIVAL: _arrival,
            SortKey.DATE: _date,
            SortKey.SIZE: _size,
            SortKey.SUBJECT: _subject,
            SortKey.FROM: _string_key(lambda r: r.from_mailbox),
            SortKey.TO: _string_key(lambda r: r.to_mailbox),
            SortKey.CC: _string_key(lambda r: r.cc_mailbox),
            SortKey.DISPLAYFROM: _string_key(lambda r: r.from_display),
            SortKey.DISPLAYTO: _string_key(lambda r: r.to_display),
        }
    )
)
"""Read-only table: one key function per sort key."""
