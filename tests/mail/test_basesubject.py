"""Base subject extraction and i;unicode-casemap (RFC 5256 §2.1, RFC 5051)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.mail.basesubject import (
    base_subject,
    casemap,
    extract_base_subject,
    is_reply_or_forward,
)


@pytest.mark.parametrize(
    ("subject", "expected", "reply"),
    [
        ("", "", False),
        ("foo", "foo", False),
        ("  foo  ", "foo", False),
        ("foo\t \r\n bar", "foo bar", False),
        ("Re: foo", "foo", True),
        ("RE: foo", "foo", True),
        ("re:foo", "foo", True),
        ("Re : foo", "foo", True),
        ("Fw: foo", "foo", True),
        ("FWD: foo", "foo", True),
        ("Re[2]: foo", "foo", True),
        ("Re [2] : foo", "foo", True),
        ("Re: Re: Fwd: foo", "foo", True),
        ("[list] Re: foo", "foo", True),
        ("[list] foo", "foo", False),
        ("[a][b] foo", "foo", False),
        ("[a] [b] Re: [c] foo", "foo", True),
        ("Re: [list] Re: foo", "foo", True),
        ("[only]", "[only]", False),
        ("[a] [b]", "[b]", False),
        ("Re: [b]", "[b]", True),
        ("foo (fwd)", "foo", True),
        ("foo (FWD) (fwd)  ", "foo", True),
        ("[fwd: foo]", "foo", True),
        ("[Fwd: Re: foo (fwd)]", "foo", True),
        ("[fwd: [fwd: foo]]", "foo", True),
        ("Re: [fwd: foo]", "foo", True),
        ("[fwd: foo", "[fwd: foo", False),
        ("Ref: foo", "Ref: foo", False),
        ("Reply: foo", "Reply: foo", False),
        ("Fwdx: foo", "Fwdx: foo", False),
        ("foo Re: bar", "foo Re: bar", False),
        ("Re:", "", True),
        ("(fwd)", "", True),
        ("Hello [world]", "Hello [world]", False),
        ("Re: Ünïcödé", "Ünïcödé", True),
    ],
)
def test_base_subject(subject: str, expected: str, reply: bool) -> None:
    result = extract_base_subject(subject)
    assert result.text == expected
    assert result.is_reply_or_forward is reply
    assert base_subject(subject) == expected
    assert is_reply_or_forward(subject) is reply


def test_non_ascii_letters_do_not_match_abnf_literals() -> None:
    # "ＲＥ:" (fullwidth) is not the ABNF literal "re".
    assert base_subject("ＲＥ: foo") == "ＲＥ: foo"


def test_casemap_folds_case_and_compatibility_forms() -> None:
    assert casemap("Hello") == casemap("hELLO") == "HELLO"
    assert casemap("ß") == "ß"  # no one-character titlecase mapping
    assert casemap("ﬁ") == casemap("fi") == "FI"
    assert casemap("ǆ") == casemap("Ǆ") == "DZ\u030c"
    assert casemap("é") == casemap("É") == "E\u0301"
    assert casemap("") == ""


def test_casemap_orders_empty_first_and_ignores_ascii_case() -> None:
    words = ["b", "A", "", "a", "B"]
    assert sorted(words, key=casemap) == ["", "A", "a", "b", "B"]


@given(st.text(max_size=200))
def test_extraction_is_idempotent_and_total(subject: str) -> None:
    once = base_subject(subject)
    assert base_subject(once) == once
    assert len(once) <= len(subject)


@given(st.text(alphabet="[]ReFwd:() \t", max_size=60))
def test_extraction_on_marker_soup_never_raises(subject: str) -> None:
    result = extract_base_subject(subject)
    assert result.text == result.text.strip(" ")


@pytest.mark.parametrize(
    "hostile",
    [
        "[]" * 300_000 + "x",
        "[a]" * 200_000,
        "Re: " * 200_000 + "x",
        "[fwd: " * 100_000 + "x" + "]" * 100_000,
        "x" + " (fwd)" * 100_000,
        "[" * 500_000 + "x",
    ],
)
def test_hostile_subjects_take_linear_time(hostile: str) -> None:
    started = time.process_time()
    base_subject(hostile)
    assert time.process_time() - started < 2.0
