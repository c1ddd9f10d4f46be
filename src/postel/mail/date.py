"""Tolerant RFC 5322 date-time parsing (Date: fields, for INTERNALDATE and SEARCH)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["DATE_TEXT_MAX", "parse_date"]

DATE_TEXT_MAX = 256
"""Longer Date values are not parsed (RELIABILITY.md D7: bounded work per field)."""

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
# Obsolete zone names. Spec: RFC 5322 §4.3.
_ZONES = {
    "ut": 0, "gmt": 0, "z": 0, "utc": 0,
    "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
}  # fmt: skip
_COMMENT = re.compile(r"\([^()]*\)")
_DATE = re.compile(
    r"""^\s*(?:[a-z]+\s*,?\s*)?
    (?P<day>\d{1,2})\s*[-\s]\s*(?P<month>[a-z]{3})[a-z]*\s*[-\s]\s*(?P<year>\d{2,4})\s+
    (?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*
    (?P<zone>[+-]\d{4}|[a-z]+)?""",
    re.X | re.I,
)


def parse_date(value: bytes) -> datetime | None:
    """Parse a Date field value into an aware datetime; None if it is not a date.

    Accepts the obsolete forms of RFC 5322 §4.3: two-digit years, zone names, missing
    seconds or day name, comments. An unknown zone is taken as UTC (-0000). Never raises.

    Spec: RFC 5322 §3.3, §4.3.
    """
    if len(value) > DATE_TEXT_MAX:
        return None
    text = _COMMENT.sub(" ", value.decode("latin-1"))
    m = _DATE.match(text)
    if m is None:
        return None
    month = _MONTHS.get(m.group("month").lower())
    if month is None:
        return None
    year = int(m.group("year"))
    if len(m.group("year")) < 4:
        year += 2000 if year < 50 else 1900
    zone = _zone(m.group("zone"))
    try:
        return datetime(
            year,
            month,
            int(m.group("day")),
            int(m.group("hour")),
            int(m.group("minute")),
            int(m.group("second") or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None


def _zone(text: str | None) -> timezone:
    if text is None:
        return UTC
    if text[0] in "+-":
        minutes = int(text[1:3]) * 60 + int(text[3:5])
        if minutes >= 24 * 60:
            return UTC
        return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))
    return timezone(timedelta(hours=_ZONES.get(text.lower(), 0)))
