"""SEARCH narrowed by the full-text index: the residual key left for a message the index
matched exactly gives the evaluator's answer (property test over random key trees and
messages), and which clauses count as exact."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.search import SearchContext, SearchSource, evaluate
from postel.imap.search_keys import (
    AllKey,
    AndKey,
    BodyKey,
    FlagKey,
    HeaderKey,
    NotKey,
    OrKey,
    SearchKey,
    SizeKey,
    SizeOp,
    TextKey,
)
from postel.server.imap_fulltext import residual_key, text_clauses
from postel.store.fulltext import Clause, SearchField, exact_clause

WORDS = ("invoice", "Straße", "STRASSE", "café", "fish & chips", "ab", "x\ny", "meeting")
T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)

word = st.sampled_from(WORDS)


def _text(words: list[str]) -> str:
    return " ".join(words)


@st.composite
def message(draw: st.DrawFn) -> bytes:
    """A small message: From, Subject, and a text/plain or text/html body."""
    subject = _text(draw(st.lists(word, min_size=1, max_size=3)))
    body = _text(draw(st.lists(word, min_size=1, max_size=6)))
    html = draw(st.booleans())
    if html:
        body = "<p>" + body.replace("&", "&amp;").replace(" ", "</b> <b>") + "</p>"
    head = (
        f"From: {draw(word)} <a@example.org>\r\nSubject: {subject}\r\n"
        f"Content-Type: text/{'html' if html else 'plain'}; charset=utf-8\r\n\r\n"
    )
    return (head + body.replace("\n", "\r\n") + "\r\n").encode()


leaf = st.one_of(
    word.map(TextKey),
    word.map(BodyKey),
    st.tuples(st.sampled_from(["subject", "From", "x-other"]), word).map(
        lambda t: HeaderKey(t[0], t[1])
    ),
    st.sampled_from(["\\Seen", "\\Flagged"]).flatmap(
        lambda f: st.booleans().map(lambda b: FlagKey(f, b))
    ),
    st.integers(0, 400).map(lambda n: SizeKey(SizeOp.LARGER, n)),
    st.just(AllKey()),
)

keys: st.SearchStrategy[SearchKey] = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: AndKey(tuple(ks))),
        st.tuples(inner, inner).map(lambda t: OrKey(t[0], t[1])),
        inner.map(NotKey),
    ),
    max_leaves=6,
)


def _clause_key(clause: Clause) -> SearchKey:
    if clause.field is SearchField.TEXT:
        return TextKey(clause.needle)
    if clause.field is SearchField.BODY:
        return BodyKey(clause.needle)
    return HeaderKey(clause.name or clause.field.value, clause.needle)


@settings(max_examples=300, deadline=None)
@given(key=keys, data=message(), flags=st.sets(st.sampled_from(["\\Seen", "\\Flagged"])))
def test_residual_key_completes_exact_clauses(key: SearchKey, data: bytes, flags: set[str]) -> None:
    """For a message satisfying every top-level string key (as an exact index match
    says), the residual key answers as the whole key does; and every clause it drops
    is exact."""
    residual = residual_key(key)
    if residual is None:
        assert not all(exact_clause(c) for c in text_clauses(key))
        return
    source = SearchSource(1, 1, frozenset(flags), T0, len(data), data=data)
    ctx = SearchContext(largest_msn=1, largest_uid=1)
    clauses = text_clauses(key)
    assert all(exact_clause(c) for c in clauses)
    satisfied = all(evaluate(_clause_key(c), source, ctx) for c in clauses)
    if satisfied:
        assert evaluate(residual, source, ctx) == evaluate(key, source, ctx)
    else:
        assert not evaluate(key, source, ctx)


def test_exact_clauses() -> None:
    assert exact_clause(Clause(SearchField.TEXT, "Invoice"))
    assert exact_clause(Clause(SearchField.FROM, "grace.smith"))
    assert exact_clause(Clause(SearchField.BODY, "x" * 128))
    assert not exact_clause(Clause(SearchField.BODY, "x" * 129))  # only a prefix looked up
    assert not exact_clause(Clause(SearchField.TEXT, "ab"))  # shorter than a trigram
    assert not exact_clause(Clause(SearchField.TEXT, "two\nlines"))  # cut at line breaks
    assert not exact_clause(Clause(SearchField.TEXT, "nul\x00byte"))
    assert not exact_clause(Clause(SearchField.HEADER, "value", "X-Other"))  # whole header


def test_residual_key_shapes() -> None:
    seen = FlagKey("\\Seen", True)
    assert residual_key(AndKey((TextKey("invoice"),))) == AllKey()
    assert residual_key(AndKey((TextKey("invoice"), seen))) == seen
    assert residual_key(AndKey((AndKey((BodyKey("café"), seen)), HeaderKey("From", "bob")))) == seen
    assert residual_key(AndKey((TextKey("ab"), seen))) is None
    assert residual_key(AndKey((HeaderKey("X-Other", "value"),))) is None
    # string keys under OR and NOT stay in the residual key, evaluated as before
    either = OrKey(TextKey("invoice"), seen)
    assert residual_key(AndKey((TextKey("meeting"), either))) == either
    assert residual_key(AndKey((NotKey(TextKey("invoice")),))) == NotKey(TextKey("invoice"))
    assert text_clauses(AndKey((TextKey("meeting"), either))) == [
        Clause(SearchField.TEXT, "meeting")
    ]
