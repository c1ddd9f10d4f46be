"""Sequence sets: ``1:4,7,9:*`` naming messages by sequence number or UID.

Spec: RFC 9051 §9 (``sequence-set``, ``seq-number``, ``seq-range``), RFC 5182 (``$``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from postel.errors import ProtocolError

__all__ = [
    "NZ_NUMBER_MAX",
    "SEQUENCE_RANGES_MAX",
    "STAR",
    "SequenceSet",
    "SequenceSetError",
    "parse_sequence_set",
]

STAR = 0
"""Stands for ``*`` in a range bound: the largest number in use (RFC 9051 §9, seq-number)."""
NZ_NUMBER_MAX = 4_294_967_295
"""``nz-number`` is a non-zero 32-bit unsigned integer. Spec: RFC 9051 §9 (number, nz-number)."""
SEQUENCE_RANGES_MAX = 10_000
"""Most comma-separated elements accepted in one sequence set (local bound; the command
line limit applies too). Spec: RELIABILITY.md D7."""


class SequenceSetError(ProtocolError):
    """Text that is not a ``sequence-set``. Spec: RFC 9051 §9."""


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence set: ranges ``(low, high)`` as written, ``STAR`` (0) for ``*``.

    ``saved`` is True for ``$`` (the saved search result, RFC 5182), in which case
    ``ranges`` is empty. Bounds are not ordered: ``4:2`` means ``2:4`` (RFC 9051 §9).

    Spec: RFC 9051 §9 (sequence-set).
    """

    ranges: tuple[tuple[int, int], ...]
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with ``*`` replaced by ``largest`` and each range ordered low..high.

        ``largest`` is the highest message sequence number or UID in use (0 in an empty
        mailbox). As ``4:2`` is ``2:4``, a UID range ``5:*`` with highest UID 3 is ``3:5``
        and names UID 3 (RFC 9051 §6.4.9). Ranges are not merged.
        """
        out: list[tuple[int, int]] = []
        for low, high in self.ranges:
            lo = largest if low == STAR else low
            hi = largest if high == STAR else high
            if lo > hi:
                lo, hi = hi, lo
            out.append((lo, hi))
        return out

    def contains(self, number: int, largest: int) -> bool:
        """True when ``number`` is in the set, ``*`` being ``largest``."""
        return any(lo <= number <= hi for lo, hi in self.resolve(largest))

    def select(self, numbers: list[int]) -> Iterator[int]:
        """The members of sorted ``numbers`` that the set names, in ascending order.

        ``*`` is the last of ``numbers``. Cost O(len(numbers) * ranges) at most; for UIDs,
        ``numbers`` is the mailbox's UID list, so UIDs that do not exist are skipped.
        """
        if not numbers:
            return iter(())
        ranges = sorted(self.resolve(numbers[-1]))
        return (n for n in numbers if _in_sorted(ranges, n))

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def bound(n: int) -> str:
            return "*" if n == STAR else str(n)

        return ",".join(
            bound(lo) if lo == hi else f"{bound(lo)}:{bound(hi)}" for lo, hi in self.ranges
        )


def _in_sorted(ranges: list[tuple[int, int]], n: int) -> bool:
    for lo, hi in ranges:
        if n < lo:
            return False
        if n <= hi:
            return True
    return False


def parse_sequence_set(text: str) -> SequenceSet:
    """Parse ``sequence-set`` (or ``$``).

    Raises SequenceSetError for empty elements, zero, numbers over NZ_NUMBER_MAX, anything
    other than digits, ``*``, ``:`` and ``,``, or more than SEQUENCE_RANGES_MAX elements.

    Spec: RFC 9051 §9 (sequence-set, seq-range, seq-number), RFC 5182 §2.1 (``$``).
    """
    if text == "$":
        return SequenceSet((), saved=True)
    elements = text.split(",")
    if len(elements) > SEQUENCE_RANGES_MAX:
        raise SequenceSetError("too many elements in sequence set")
    ranges: list[tuple[int, int]] = []
    for element in elements:
        low, sep, high = element.partition(":")
        a = _seq_number(low)
        ranges.append((a, _seq_number(high) if sep else a))
    return SequenceSet(tuple(ranges))


def _seq_number(text: str) -> int:
    if text == "*":
        return STAR
    if not text or not text.isascii() or not text.isdigit() or text[0] == "0":
        raise SequenceSetError(f"bad sequence number {text[:20]!r}")
    if len(text) > 10 or int(text) > NZ_NUMBER_MAX:
        raise SequenceSetError("sequence number out of range")
    return int(text)
