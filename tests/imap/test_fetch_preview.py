"""FETCH PREVIEW parsing and rendering. Spec: RFC 8970 §3, §7."""

from __future__ import annotations

import datetime as dt

import pytest

from postel.imap.commands import Fetch, parse_command
from postel.imap.fetch import FetchSource, render_items
from postel.imap.fetch_items import FetchAttr
from postel.imap.grammar import ImapSyntaxError
from postel.imap.sequence import SequenceSet
from postel.mail import parse_message


def _parse(line: bytes) -> object:
    return parse_command([line])


@pytest.mark.parametrize(
    "line",
    [
        b"a FETCH 1 PREVIEW",
        b"a FETCH 1 (PREVIEW)",
        b"a FETCH 1 (PREVIEW (LAZY))",
        b"a FETCH 1 PREVIEW (lazy)",
        b"a FETCH 1 (PREVIEW (LAZY LAZY))",
    ],
)
def test_preview_parses(line: bytes) -> None:
    assert _parse(line) == Fetch("a", SequenceSet(((1, 1),)), (FetchAttr.PREVIEW,))


def test_preview_before_fetch_modifiers() -> None:
    parsed = _parse(b"a FETCH 1 PREVIEW (CHANGEDSINCE 5)")
    assert isinstance(parsed, Fetch)
    assert parsed.items == (FetchAttr.PREVIEW,) and parsed.changed_since == 5
    parsed = _parse(b"a FETCH 1 (UID PREVIEW (LAZY) FLAGS) (CHANGEDSINCE 5)")
    assert isinstance(parsed, Fetch)
    assert parsed.items == (FetchAttr.UID, FetchAttr.PREVIEW, FetchAttr.FLAGS)


@pytest.mark.parametrize("line", [b"a FETCH 1 (PREVIEW (LAZY FOO))", b"a FETCH 1 (PREVIEW (LAZY)"])
def test_bad_preview_modifier(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        _parse(line)


def _source(preview: str | None) -> FetchSource:
    when = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    return FetchSource(1, frozenset(), when, 3, parse_message(b"\r\n"), preview=preview)


def test_preview_rendering() -> None:
    assert render_items([FetchAttr.PREVIEW], _source('say "hi"')) == [
        (b"PREVIEW", b'"say \\"hi\\""')
    ]
    assert render_items([FetchAttr.PREVIEW], _source("")) == [(b"PREVIEW", b'""')]
    assert render_items([FetchAttr.PREVIEW], _source(None)) == [(b"PREVIEW", b"NIL")]
    assert render_items([FetchAttr.PREVIEW], _source("café")) == [
        (b"PREVIEW", b"{5}\r\ncaf\xc3\xa9")
    ]
