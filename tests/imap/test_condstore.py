"""CONDSTORE/QRESYNC values: the QRESYNC parameter, VANISHED rendering, known-uids,
MODSEQ in FETCH and SEARCH. Spec: RFC 7162 §3.1.4, §3.1.5, §3.2.5, §3.2.10, §7."""

from __future__ import annotations

import datetime as dt

import pytest

from postel.imap import condstore as cs
from postel.imap import fetch
from postel.imap.commands import Fetch, Search, parse_command
from postel.imap.fetch_items import FetchAttr
from postel.imap.grammar import ImapSyntaxError
from postel.imap.responses import esearch, search
from postel.imap.search import SearchContext, SearchSource, evaluate
from postel.imap.search_keys import AndKey, ModseqKey
from postel.imap.sequence import SequenceSet
from postel.mail import parse_message


def test_parse_qresync_forms() -> None:
    assert cs.parse_qresync("(67890007 20050715194045000)") == cs.QresyncParams(
        67890007, 20050715194045000
    )
    full = cs.parse_qresync("(67890007 90060115194045000 41:211,214:541 (1:5 41:45))")
    assert full.known_uids == SequenceSet(((41, 211), (214, 541)))
    assert full.seq_match == (SequenceSet(((1, 5),)), SequenceSet(((41, 45),)))
    only_match = cs.parse_qresync("(1 0 (1,3 5,9))")
    assert only_match.known_uids is None and only_match.seq_match is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "()",
        "(0 5)",
        "(1)",
        "(1 x)",
        "(1 5 1:*)",
        "(1 5 $)",
        "(1 5 1:10 (1:3 1:2))",
        "(1 5 1:10 (1:3 1:3)",
        "(1 5) extra",
        "(1 99999999999999999999)",
    ],
)
def test_parse_qresync_errors(value: str | None) -> None:
    with pytest.raises(ImapSyntaxError):
        cs.parse_qresync(value, "a")


def test_vanished_compact_and_split() -> None:
    assert cs.vanished([], earlier=True) == b""
    assert cs.vanished([5, 1, 2, 3, 9], earlier=False) == b"* VANISHED 1:3,5,9\r\n"
    assert cs.vanished(range(1, 1_000_001), earlier=True) == b"* VANISHED (EARLIER) 1:1000000\r\n"
    many = cs.vanished(range(1, 200_000, 2), earlier=True)
    lines = many.split(b"\r\n")[:-1]
    assert len(lines) > 1
    assert all(len(line) <= cs.VANISHED_LINE_MAX + 30 for line in lines)
    got = set()
    for line in lines:
        for part in line.rsplit(b" ", 1)[1].split(b","):
            got.add(int(part))
    assert got == set(range(1, 200_000, 2))


def test_known_vanished_respects_known_uids_and_uidnext() -> None:
    params = cs.parse_qresync("(1 5 2:4,10:20)")
    assert cs.known_vanished(params, 30, [1, 3, 11, 25, 40]) == [3, 11]
    assert cs.known_vanished(cs.parse_qresync("(1 5)"), 30, [1, 3, 40]) == [1, 3]


def test_fetch_modifiers_and_modseq_item() -> None:
    command = parse_command([b"a UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)"])
    assert isinstance(command, Fetch)
    assert command.items == (FetchAttr.FLAGS, FetchAttr.MODSEQ)
    assert command.changed_since == 12345 and command.vanished and command.uid
    source = fetch.FetchSource(
        7, frozenset(), dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 3, parse_message(b"\r\n"), modseq=42
    )
    assert fetch.render_items([FetchAttr.MODSEQ], source) == [(b"MODSEQ", b"(42)")]


def test_search_modseq_key_parse_and_evaluate() -> None:
    command = parse_command([b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338'])
    assert isinstance(command, Search)
    assert command.key == AndKey((ModseqKey(620162338, "/flags/\\draft", "ALL"),))
    plain = parse_command([b"a SEARCH OR NOT MODSEQ 5 SEEN"])
    assert isinstance(plain, Search)
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ctx = SearchContext(largest_msn=1, largest_uid=1)
    key = AndKey((ModseqKey(10),))
    assert evaluate(key, SearchSource(1, 1, frozenset(), when, 1, modseq=10), ctx)
    assert not evaluate(key, SearchSource(1, 1, frozenset(), when, 1, modseq=9), ctx)
    with pytest.raises(ImapSyntaxError):
        parse_command([b'a SEARCH MODSEQ "/x" all 5'])
    with pytest.raises(ImapSyntaxError):
        parse_command([b'a SEARCH MODSEQ "/flags/\\\\seen" mine 5'])


def test_search_and_esearch_carry_modseq() -> None:
    assert search([2, 5], 917) == b"* SEARCH 2 5 (MODSEQ 917)\r\n"
    assert search([2, 5]) == b"* SEARCH 2 5\r\n"
    line = esearch("a", all_numbers=[1, 2, 3], modseq=7)
    assert line == b'* ESEARCH (TAG "a") ALL 1:3 MODSEQ 7\r\n'
