"""SAVEDATE: the FETCH item and the SAVED* search keys. Spec: RFC 8514 §2.1, §2.2."""

from __future__ import annotations

import datetime as dt

from postel.imap.commands import Fetch, Search, parse_command
from postel.imap.fetch import FetchSource, render_items
from postel.imap.fetch_items import FetchAttr
from postel.imap.search import SearchContext, SearchSource, evaluate
from postel.mail import parse_message

INTERNAL = dt.datetime(2024, 1, 2, 10, 0, tzinfo=dt.UTC)
SAVED = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def test_fetch_savedate() -> None:
    parsed = parse_command([b"a FETCH 1 (SAVEDATE)"])
    assert isinstance(parsed, Fetch) and parsed.items == (FetchAttr.SAVEDATE,)
    summary = parse_message(b"\r\n")
    saved = FetchSource(1, frozenset(), INTERNAL, 3, summary, save_date=SAVED)
    assert render_items([FetchAttr.SAVEDATE], saved) == [
        (b"SAVEDATE", b'" 4-Mar-2024 05:06:07 +0000"')
    ]
    unknown = FetchSource(1, frozenset(), INTERNAL, 3, summary)
    assert render_items([FetchAttr.SAVEDATE], unknown) == [(b"SAVEDATE", b"NIL")]


def _hits(criteria: bytes, save_date: dt.datetime | None) -> bool:
    parsed = parse_command([b"a SEARCH " + criteria])
    assert isinstance(parsed, Search)
    msg = SearchSource(1, 1, frozenset(), INTERNAL, 10, save_date=save_date)
    return evaluate(parsed.key, msg, SearchContext(largest_msn=1, largest_uid=1))


def test_saved_keys() -> None:
    assert _hits(b"SAVEDON 4-Mar-2024", SAVED)
    assert not _hits(b"ON 4-Mar-2024", SAVED)
    assert _hits(b"SAVEDSINCE 4-Mar-2024", SAVED)
    assert not _hits(b"SAVEDSINCE 5-Mar-2024", SAVED)
    assert _hits(b"SAVEDBEFORE 5-Mar-2024", SAVED)
    assert not _hits(b"SAVEDBEFORE 4-Mar-2024", SAVED)
    assert _hits(b"SAVEDON 2-Jan-2024", None)  # no save date: the internal date
    assert _hits(b"SAVEDATESUPPORTED", SAVED)
