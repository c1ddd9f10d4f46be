"""SEARCH narrowed by the full-text index before the exact evaluation.

The string keys a search key requires (those AND-ed at the top, not under NOT or OR)
become index clauses; the store answers with the messages that may match them
(``matched``) and those it cannot answer for (``unindexed``). Only those are then
evaluated by ``postel.imap.search``. When every such clause is exact
(:func:`postel.store.fulltext.exact_clause`), a matched message satisfies them for
certain, and only the rest of the key (``Narrowed.residual``: flags, dates, string
keys under OR or NOT...) is evaluated for it, usually without reading its octets. The
answer is exactly that of a full scan either way (tests/store/test_fulltext_property.py,
tests/server/test_search_residual.py); only its cost changes.

Spec: RFC 9051 §6.4.4 (substring semantics of the string keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from postel.ids import MailboxId
from postel.imap.search_keys import AllKey, AndKey, BodyKey, HeaderKey, SearchKey, TextKey
from postel.store import Store
from postel.store.fulltext import Clause, SearchField, exact_clause

__all__ = ["Narrowed", "narrow", "residual_key", "text_clauses"]

_NAMED = {
    "from": SearchField.FROM,
    "to": SearchField.TO,
    "cc": SearchField.CC,
    "bcc": SearchField.BCC,
    "subject": SearchField.SUBJECT,
}


_ALL = AllKey()


@dataclass(frozen=True, slots=True)
class Narrowed:
    """What is left to evaluate: the ``(msn, uid)`` pairs that can match, in the
    order given; for those whose UID is in ``known``, only ``residual`` (the key with
    the string keys the index answered removed) is left to test."""

    pairs: Sequence[tuple[int, int]]
    known: frozenset[int] = frozenset()
    residual: SearchKey = _ALL


def _clause(key: SearchKey) -> Clause | None:
    match key:
        case TextKey(value=value) if value:
            return Clause(SearchField.TEXT, value)
        case BodyKey(value=value) if value:
            return Clause(SearchField.BODY, value)
        case HeaderKey(field=name, value=value) if value:
            named = _NAMED.get(name.lower())
            if named is not None:
                return Clause(named, value)
            return Clause(SearchField.HEADER, value, name)
    return None


def residual_key(key: SearchKey) -> SearchKey | None:
    """``key`` without its top-level string keys when all of them are exact
    (a message the index matched satisfies them), else None."""
    if isinstance(key, AndKey):
        rest: list[SearchKey] = []
        for k in key.keys:
            left = residual_key(k)
            if left is None:
                return None
            if not isinstance(left, AllKey):
                rest.append(left)
        if not rest:
            return AllKey()
        return rest[0] if len(rest) == 1 else AndKey(tuple(rest))
    clause = _clause(key)
    if clause is None:
        return key
    return AllKey() if exact_clause(clause) else None


def text_clauses(key: SearchKey) -> list[Clause]:
    """The string keys every match of ``key`` must satisfy (its top-level conjunction),
    as index clauses. A HEADER key with an empty value (the field merely present)
    cannot narrow and is left out."""
    out: list[Clause] = []
    stack = [key]
    while stack:
        current = stack.pop()
        if isinstance(current, AndKey):
            stack.extend(current.keys)
            continue
        clause = _clause(current)
        if clause is not None:
            out.append(clause)
    return out


async def narrow(
    store: Store, mailbox_id: MailboxId, key: SearchKey, pairs: Sequence[tuple[int, int]]
) -> Narrowed:
    """The ``(msn, uid)`` pairs that can match ``key`` as far as the index can tell
    (all of them when it cannot narrow), in the same order, and those it answered
    exactly (see Narrowed)."""
    clauses = text_clauses(key)
    if not clauses or not pairs:
        return Narrowed(pairs)
    candidates = await store.search_candidates(mailbox_id, clauses)
    if candidates is None:
        return Narrowed(pairs)
    keep = candidates.matched | candidates.unindexed
    kept = [pair for pair in pairs if pair[1] in keep]
    residual = residual_key(key)
    if residual is None:
        return Narrowed(kept)
    return Narrowed(kept, candidates.matched, residual)
