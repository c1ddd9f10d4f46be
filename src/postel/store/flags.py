"""Message flags as the store keeps them.

System flags are stored in their canonical case (``\\Seen``); ``\\Recent`` is never
stored (it is a session property in IMAP4rev1 and gone in IMAP4rev2). Keywords keep the
case of their first use on a message and are compared case-insensitively, so ``+FLAGS
($junk)`` on a message that has ``$Junk`` changes nothing. The stored form is the
sorted, space-separated set (atoms contain no space).

Spec: RFC 9051 §2.3.2 (flags; case-insensitive), §9 (flag, flag-keyword, atom).
"""

from __future__ import annotations

from collections.abc import Iterable

from postel.store.api import FlagMode, InvalidFlag

SYSTEM_FLAGS = ("\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen")
"""Spec: RFC 9051 §2.3.2."""
RECENT = "\\Recent"
SEEN = "\\Seen"
DELETED = "\\Deleted"
FLAG_LENGTH_MAX = 256
"""Octets in one keyword (local policy; IMAP gives atoms no length)."""
FLAGS_PER_MESSAGE_MAX = 128
"""Flags on one message (local policy)."""
_SYSTEM_BY_KEY = {f.lower(): f for f in SYSTEM_FLAGS}
_ATOM_SPECIALS = frozenset('(){ %*"\\]') | {chr(c) for c in range(0x20)} | {"\x7f"}
"""Spec: RFC 9051 §9 (atom-specials, CTL)."""


def _shown(flag: str) -> str:
    """``flag`` as an error text quotes it: as sent when it is printable ASCII (what
    a client typed), else escaped (no control or 8-bit octet goes into a response)."""
    return flag if flag.isascii() and flag.isprintable() else ascii(flag)


def canonical(flag: str) -> str | None:
    """The stored spelling of ``flag``; None for ``\\Recent``. InvalidFlag for an
    unknown ``\\`` flag or a keyword that is not an atom. Spec: RFC 9051 §9 (flag)."""
    if flag.startswith("\\"):
        key = flag.lower()
        if key == RECENT.lower():
            return None
        system = _SYSTEM_BY_KEY.get(key)
        if system is None:
            raise InvalidFlag(f"unknown system flag {_shown(flag)}")
        return system
    if not flag or len(flag) > FLAG_LENGTH_MAX or not flag.isascii():
        raise InvalidFlag(f"bad keyword {_shown(flag)}")
    if not _ATOM_SPECIALS.isdisjoint(flag):
        raise InvalidFlag(f"bad keyword {_shown(flag)}")
    return flag


def canonical_set(flags: Iterable[str]) -> frozenset[str]:
    """``flags`` in stored spelling, one per case-insensitive name (the first given wins),
    without ``\\Recent``. InvalidFlag as ``canonical``."""
    out: dict[str, str] = {}
    for flag in flags:
        c = canonical(flag)
        if c is not None:
            out.setdefault(c.lower(), c)
    if len(out) > FLAGS_PER_MESSAGE_MAX:
        raise InvalidFlag(f"more than {FLAGS_PER_MESSAGE_MAX} flags")
    return frozenset(out.values())


def apply(current: frozenset[str], mode: FlagMode, given: frozenset[str]) -> frozenset[str]:
    """The flags of a message after ``STORE`` with ``mode`` and canonical ``given``; a
    keyword already present in another case keeps its spelling. Spec: RFC 9051 §6.4.6."""
    if mode is FlagMode.SET:
        have = {f.lower(): f for f in current}
        return frozenset(have.get(f.lower(), f) for f in given)
    if mode is FlagMode.ADD:
        keys = {f.lower() for f in current}
        added = [f for f in given if f.lower() not in keys]
        if not added:
            return current
        result = current | frozenset(added)
        if len(result) > FLAGS_PER_MESSAGE_MAX:
            raise InvalidFlag(f"more than {FLAGS_PER_MESSAGE_MAX} flags")
        return result
    drop = {f.lower() for f in given}
    return frozenset(f for f in current if f.lower() not in drop)


def to_text(flags: frozenset[str]) -> str:
    """The stored form: sorted, space-separated."""
    return " ".join(sorted(flags))


class FlagCache:
    """Parses stored flag text into frozensets, one shared object per distinct text, so
    a snapshot of many messages holds few sets."""

    def __init__(self) -> None:
        self._sets: dict[str, frozenset[str]] = {}

    def parse(self, text: str) -> frozenset[str]:
        got = self._sets.get(text)
        if got is None:
            got = self._sets[text] = frozenset(text.split())
        return got

    def union(self) -> frozenset[str]:
        """Every flag of every text parsed so far."""
        return frozenset().union(*self._sets.values())
