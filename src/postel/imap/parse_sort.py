"""SORT, THREAD and CANCELUPDATE arguments.

SORT and THREAD name their charset without the CHARSET keyword (it is required) and
take the same search keys as SEARCH (``postel.imap.parse_search``); only UTF-8 and
US-ASCII are accepted (others raise BadCharset, answered ``NO [BADCHARSET]``).

Spec: RFC 5256 §5 (sort, thread), RFC 5267 §3 (sort-return-opts), §4.2
(CANCELUPDATE), RFC 5957 §4 (DISPLAYFROM, DISPLAYTO).
"""

from __future__ import annotations

from postel.imap.command_types import CancelUpdate, Command, Sort, Thread
from postel.imap.grammar import Cursor
from postel.imap.parse_search import parse_charset, parse_return_options, parse_search_keys
from postel.imap.sort import (
    SORT_CRITERIA_MAX,
    SortCriteriaError,
    SortCriterion,
    parse_sort_criteria,
)
from postel.imap.thread import ThreadAlgorithmError, parse_thread_algorithm

__all__ = ["CANCELUPDATE_TAGS_MAX", "parse_cancelupdate", "parse_sort", "parse_thread"]

CANCELUPDATE_TAGS_MAX = 100
"""Tags in one CANCELUPDATE command; far above the number of contexts a session may
hold (``postel.server.imap_context.CONTEXT_UPDATES_MAX``). Local policy (RFC 5267 §4.2
sets no bound; RELIABILITY.md D7)."""

_CRITERIA_TOKENS_MAX = 2 * SORT_CRITERIA_MAX
"""Atoms read inside the criteria list (each criterion may carry REVERSE) before the
list is refused, so a long list costs no more than the bound allows."""


def parse_sort(cur: Cursor, tag: str, uid: bool) -> Command:
    """``SORT [SP "RETURN" SP (opts)] SP (criteria) SP charset 1*(SP search-key)``.
    Raises ImapSyntaxError or BadCharset. Spec: RFC 5256 §5 (sort), RFC 5267 §3."""
    returns = None
    partial = None
    if cur.take(b" RETURN "):
        returns, partial = parse_return_options(cur)
    cur.sp()
    criteria = _criteria(cur)
    cur.sp()
    charset = parse_charset(cur)
    key = parse_search_keys(cur)
    return Sort(tag, criteria, key, charset, returns=returns, uid=uid, partial=partial)


def _criteria(cur: Cursor) -> tuple[SortCriterion, ...]:
    cur.open()
    tokens: list[str] = []
    while not cur.closing():
        if tokens:
            cur.sp()
        tokens.append(cur.atom())
        if len(tokens) > _CRITERIA_TOKENS_MAX:
            raise cur.error("too many sort criteria")
    try:
        return parse_sort_criteria(tokens)
    except SortCriteriaError as exc:
        raise cur.error(str(exc)) from exc


def parse_thread(cur: Cursor, tag: str, uid: bool) -> Command:
    """``THREAD SP thread-alg SP charset 1*(SP search-key)``. Raises ImapSyntaxError
    or BadCharset. Spec: RFC 5256 §5 (thread)."""
    cur.sp()
    name = cur.atom()
    try:
        algorithm = parse_thread_algorithm(name)
    except ThreadAlgorithmError as exc:
        raise cur.error(str(exc)) from exc
    cur.sp()
    charset = parse_charset(cur)
    key = parse_search_keys(cur)
    return Thread(tag, algorithm, key, charset, uid=uid)


def parse_cancelupdate(cur: Cursor, tag: str, uid: bool) -> Command:
    """``CANCELUPDATE 1*(SP tag-string)``; tags are strings (quoted or literal).
    Spec: RFC 5267 §4.2."""
    tags: list[str] = []
    while cur.take(b" "):
        tags.append(cur.string().decode("ascii", "replace"))
        if len(tags) > CANCELUPDATE_TAGS_MAX:
            raise cur.error("too many tags")
    if not tags:
        raise cur.error("CANCELUPDATE needs a tag")
    return CancelUpdate(tag, tuple(tags))
