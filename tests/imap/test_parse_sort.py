"""SORT, THREAD, CANCELUPDATE and the RETURN options of CONTEXT=SEARCH parsed from real
command bytes, and the responses they are answered with.

Spec: RFC 5256 §5, RFC 5267 §3, §4, RFC 9394 §3.1, RFC 5957 §4.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import ProtocolError
from postel.imap import responses as r
from postel.imap.commands import (
    CancelUpdate,
    PartialRange,
    SearchReturn,
    Sort,
    Thread,
    parse_command,
)
from postel.imap.grammar import BadCharset, ImapSyntaxError
from postel.imap.search_keys import AllKey, AndKey, FlagKey
from postel.imap.sort import SortCriterion, SortKey
from postel.imap.thread import ThreadAlgorithm


def parse(line: bytes) -> object:
    return parse_command([line])


def test_sort_with_criteria_charset_and_keys() -> None:
    command = parse(b"a1 SORT (REVERSE DATE subject) UTF-8 SEEN ALL")
    assert command == Sort(
        "a1",
        (SortCriterion(SortKey.DATE, True), SortCriterion(SortKey.SUBJECT)),
        AndKey((FlagKey("\\Seen", True), AllKey())),
        "UTF-8",
    )


def test_uid_sort_with_esort_return_and_partial() -> None:
    command = parse(b"a UID SORT RETURN (COUNT PARTIAL 4:2) (DISPLAYTO) us-ascii ALL")
    assert isinstance(command, Sort)
    assert command.uid and command.charset == "US-ASCII"
    assert command.returns == (SearchReturn.COUNT, SearchReturn.PARTIAL)
    assert command.partial == PartialRange(2, 4)


def test_thread_and_uid_thread() -> None:
    command = parse(b"t THREAD references UTF-8 ALL")
    assert command == Thread("t", ThreadAlgorithm.REFERENCES, AndKey((AllKey(),)), "UTF-8")
    command = parse(b"t UID THREAD ORDEREDSUBJECT US-ASCII ALL")
    assert isinstance(command, Thread) and command.uid


def test_search_update_and_context_options() -> None:
    command = parse(b"s SEARCH RETURN (UPDATE CONTEXT ALL) UNSEEN")
    assert getattr(command, "returns", None) == (
        SearchReturn.UPDATE,
        SearchReturn.CONTEXT,
        SearchReturn.ALL,
    )


def test_cancelupdate_takes_quoted_and_literal_tags() -> None:
    assert parse(b'c CANCELUPDATE "a1" "b2"') == CancelUpdate("c", ("a1", "b2"))
    assert parse_command([b"c CANCELUPDATE {2}", b""], [b"x1"]) == CancelUpdate("c", ("x1",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1:1", PartialRange(1, 1)),
        (b"9:3", PartialRange(3, 9)),
        (b"-1:-100", PartialRange(-1, -100)),
        (b"-5:-2", PartialRange(-2, -5)),
    ],
)
def test_partial_ranges(text: bytes, expected: PartialRange) -> None:
    command = parse(b"s SEARCH RETURN (PARTIAL " + text + b") ALL")
    assert getattr(command, "partial", None) == expected


def test_partial_range_slices() -> None:
    assert PartialRange(2, 4).pick(5) == (1, 4)
    assert PartialRange(6, 6).pick(5) == (5, 5)
    assert PartialRange(-1, -2).pick(5) == (3, 5)
    assert PartialRange(-3, -9).pick(5) == (0, 3)
    assert PartialRange(-7, -9).pick(5) == (0, 0)


@pytest.mark.parametrize(
    "line",
    [
        b"a SORT (DATE) UTF-8",
        b"a SORT () UTF-8 ALL",
        b"a SORT DATE UTF-8 ALL",
        b"a SORT (REVERSE) UTF-8 ALL",
        b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
        b"a SORT (SPAM) UTF-8 ALL",
        b"a SORT (" + b"DATE " * 64 + b"DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL 1) (DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL *:1) (DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL 0:3) (DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL -1:3) (DATE) UTF-8 ALL",
        b"a SORT RETURN (PARTIAL 1:2 PARTIAL 3:4) (DATE) UTF-8 ALL",
        b"a SEARCH RETURN (ALL PARTIAL 1:2) ALL",
        b"a SEARCH RETURN (BOGUS) ALL",
        b"a THREAD SPAGHETTI UTF-8 ALL",
        b"a THREAD REFERENCES",
        b"a CANCELUPDATE",
        b"a CANCELUPDATE tag",
        b"a CANCELUPDATE " + b'"x" ' * 100 + b'"x"',
    ],
)
def test_malformed_commands_are_syntax_errors(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        parse(line)


def test_unknown_charset_is_badcharset() -> None:
    with pytest.raises(BadCharset):
        parse(b"a SORT (DATE) ISO-8859-1 ALL")
    with pytest.raises(BadCharset):
        parse(b"a THREAD REFERENCES KOI8-R ALL")


@given(st.binary(max_size=120))
def test_sort_and_thread_arguments_never_raise_anything_else(tail: bytes) -> None:
    for head in (b"a SORT ", b"a UID THREAD ", b"a SORT RETURN (", b"a CANCELUPDATE "):
        with contextlib.suppress(ProtocolError):
            parse(head + tail)


def test_sort_and_thread_responses() -> None:
    assert r.sort([3, 1, 2]) == b"* SORT 3 1 2\r\n"
    assert r.sort([]) == b"* SORT\r\n"
    assert r.thread(b"(1 2)(3)") == b"* THREAD (1 2)(3)\r\n"
    assert r.thread(b"") == b"* THREAD\r\n"


def test_esearch_keeps_sort_order_and_partial() -> None:
    line = r.esearch("t", all_numbers=[5, 3, 4, 2, 1], ordered=True, partial=("1:6", [5, 3, 4]))
    assert line == b'* ESEARCH (TAG "t") ALL 5,3:4,2,1 PARTIAL (1:6 5,3:4)\r\n'
    assert r.esearch("t", partial=("6:6", [])) == b'* ESEARCH (TAG "t") PARTIAL (6:6 NIL)\r\n'


def test_esearch_updates() -> None:
    line = r.esearch_update("t", uid=True, removefrom=[(4, [9]), (1, [2, 3])], addto=[(0, [7])])
    assert line == b'* ESEARCH (TAG "t") UID REMOVEFROM (4 9) REMOVEFROM (1 2:3) ADDTO (0 7)\r\n'
    assert r.esearch_update("t", uid=False) == b""
    assert r.noupdate("a1").render() == b'[NOUPDATE "a1"]'
