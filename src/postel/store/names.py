"""Mailbox names as the store keeps them: validation, INBOX, hierarchy.

Names are full UTF-8 strings with ``/`` as the hierarchy separator. They are only ever
database values (never file names). ``INBOX`` is case-insensitive and stored upper-case,
also as the first level of an inferior name (``inbox/x`` is ``INBOX/x``).

Spec: RFC 9051 §5.1 (mailbox naming), §5.1.1 (hierarchy); RFC 5198 (Net-Unicode).
"""

from __future__ import annotations

from postel.store.api import InvalidMailboxName
from postel.store.schema import MAILBOX_NAME_MAX

SEPARATOR = "/"
"""The hierarchy separator. Spec: RFC 9051 §5.1.1."""
INBOX = "INBOX"
MAILBOX_DEPTH_MAX = 64
"""Levels in a mailbox name (local policy; bounds LIST work per name)."""
MAILBOXES_PER_ACCOUNT_MAX = 10_000
"""Mailboxes one account may hold (local policy; bounds LIST and storage)."""
SUBSCRIPTIONS_PER_ACCOUNT_MAX = 10_000
"""Subscriptions one account may hold; a name need not exist to be subscribed, so
without a bound a client could store names without end (local policy; bounds LSUB,
LIST (SUBSCRIBED) and storage). Spec: RFC 9051 §6.3.7."""
_REFUSED = (
    frozenset("%*\u2028\u2029")
    | {chr(c) for c in range(0x20)}
    | {chr(c) for c in range(0x7F, 0xA0)}
)
"""LIST wildcards (RFC 9051 §5.1 recommends against them in names), control characters
(RFC 5198 §2: not Net-Unicode) and the line and paragraph separators U+2028, U+2029
(RFC 9051 §5.1: MUST NOT)."""


def normalize(name: str) -> str:
    """The stored form of ``name``: a first level ``INBOX`` in any case upper-cased.
    Does not validate (lookups of odd names simply find nothing). Spec: RFC 9051 §5.1."""
    first, sep, rest = name.partition(SEPARATOR)
    if first.upper() == INBOX:
        return INBOX + sep + rest
    return name


def validate(name: str) -> str:
    """``normalize(name)`` if it may be created; InvalidMailboxName otherwise.
    Spec: RFC 9051 §5.1."""
    if not name:
        raise InvalidMailboxName("empty mailbox name")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMailboxName("mailbox name is not valid UTF-8") from exc
    if len(encoded) > MAILBOX_NAME_MAX:
        raise InvalidMailboxName(f"mailbox name longer than {MAILBOX_NAME_MAX} octets")
    levels = name.split(SEPARATOR)
    if any(not level for level in levels):
        raise InvalidMailboxName(f"mailbox name {name!r} has an empty level")
    if len(levels) > MAILBOX_DEPTH_MAX:
        raise InvalidMailboxName(f"mailbox name deeper than {MAILBOX_DEPTH_MAX} levels")
    if not _REFUSED.isdisjoint(name):
        raise InvalidMailboxName(
            f"mailbox name {name!r} has a wildcard, control character or line separator"
        )
    return normalize(name)


def renamed(name: str, old: str, new: str) -> str | None:
    """``name`` after ``old`` became ``new``: ``new`` for ``old``, ``new/x`` for an
    inferior ``old/x``, None for an unrelated name. Spec: RFC 9051 §6.3.6."""
    if name == old:
        return new
    if name.startswith(old + SEPARATOR):
        return new + name[len(old) :]
    return None
