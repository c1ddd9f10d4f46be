"""SEARCH narrowed by the full-text index before the exact evaluation.

The string keys a search key requires (those AND-ed at the top, not under NOT or OR)
become index clauses; the store answers with the messages that may match them
(``matched``) and those it cannot answer for (``unindexed``). Only those are then
evaluated, byte by byte, by ``postel.imap.search``: the index is a superset filter, so
the answer is exactly that of a full scan (tests/store/test_fulltext_property.py) and
only its cost changes.

Spec: RFC 9051 §6.4.4 (substring semantics of the string keys).
"""

from __future__ import annotations

from collections.abc import Sequence

from postel.ids import MailboxId
from postel.imap.search_keys import AndKey, BodyKey, HeaderKey, SearchKey, TextKey
from postel.store import Store
from postel.store.fulltext import Clause, SearchField

__all__ = ["narrow", "text_clauses"]

_NAMED = {
    "from": SearchField.FROM,
    "to": SearchField.TO,
    "cc": SearchField.CC,
    "bcc": SearchField.BCC,
    "subject": SearchField.SUBJECT,
}


def text_clauses(key: SearchKey) -> list[Clause]:
    """The string keys every match of ``key`` must satisfy (its top-level conjunction),
    as index clauses. A HEADER key with an empty value (the field merely present)
    cannot narrow and is left out."""
    out: list[Clause] = []
    stack = [key]
    while stack:
        current = stack.pop()
        match current:
            case AndKey(keys=keys):
                stack.extend(keys)
            case TextKey(value=value) if value:
                out.append(Clause(SearchField.TEXT, value))
            case BodyKey(value=value) if value:
                out.append(Clause(SearchField.BODY, value))
            case HeaderKey(field=name, value=value) if value:
                named = _NAMED.get(name.lower())
                if named is not None:
                    out.append(Clause(named, value))
                else:
                    out.append(Clause(SearchField.HEADER, value, name))
    return out


async def narrow(
    store: Store, mailbox_id: MailboxId, key: SearchKey, pairs: Sequence[tuple[int, int]]
) -> Sequence[tuple[int, int]]:
    """The ``(msn, uid)`` pairs that can match ``key`` as far as the index can tell
    (all of them when it cannot narrow), in the same order."""
    clauses = text_clauses(key)
    if not clauses or not pairs:
        return pairs
    candidates = await store.search_candidates(mailbox_id, clauses)
    if candidates is None:
        return pairs
    keep = candidates.matched | candidates.unindexed
    return [pair for pair in pairs if pair[1] in keep]
