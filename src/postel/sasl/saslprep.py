"""SASLprep: the stringprep profile applied to passwords before hashing.

SCRAM clients apply it to the password before computing their proof (RFC 5802 §2.2,
"Normalize"), so the server must derive its keys from the same form, or a password with
non-ASCII characters would never authenticate.

Spec: RFC 4013 §2 (mapping, NFKC, prohibited output, bidi), RFC 3454 (tables).
"""

from __future__ import annotations

import stringprep
import unicodedata

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space
    stringprep.in_table_c21_c22,  # control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties / deprecated
    stringprep.in_table_c9,  # tagging characters
)


class SaslprepError(ValueError):
    """The string contains a character SASLprep prohibits (RFC 4013 §2.3, §2.4, §2.5)."""


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare ``text`` per SASLprep. ``allow_unassigned`` is False for stored strings
    (passwords being set) and True for queries (passwords being checked).

    Raises SaslprepError. Spec: RFC 4013 §2, RFC 3454 §7.
    """
    if text.isascii() and all(32 <= ord(c) < 127 for c in text):
        return text  # printable ASCII is unchanged by every step
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    for char in prepared:
        if any(table(char) for table in _PROHIBITED):
            raise SaslprepError(f"prohibited character U+{ord(char):04X}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise SaslprepError(f"unassigned code point U+{ord(char):04X}")
    _check_bidi(prepared)
    return prepared


def _check_bidi(text: str) -> None:
    """RFC 3454 §6: RandALCat text must not contain LCat and must start and end with
    RandALCat."""
    rand_al = [stringprep.in_table_d1(c) for c in text]
    if not any(rand_al):
        return
    if any(stringprep.in_table_d2(c) for c in text):
        raise SaslprepError("mixes right-to-left and left-to-right characters")
    if not (rand_al[0] and rand_al[-1]):
        raise SaslprepError("right-to-left text must start and end with a right-to-left character")
