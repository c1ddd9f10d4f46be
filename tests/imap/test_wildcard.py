"""LIST/LSUB patterns match as RFC 9051 §6.3.9 says, and in time linear in the name
whatever the pattern: patterns built to make a backtracking matcher explode finish."""

from __future__ import annotations

import functools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.imap.wildcard import ListPattern


def _reference(reference: str, pattern: str, name: str) -> bool:
    """The definition, by recursion over the pattern (exponential: small inputs only)."""
    full = reference + pattern
    inbox = full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%")

    @functools.cache
    def at(i: int, j: int) -> bool:
        if i == len(full):
            return j == len(name)
        p = full[i]
        if p in "*%":
            if at(i + 1, j):
                return True
            return j < len(name) and (p == "*" or name[j] != "/") and at(i, j + 1)
        if j == len(name):
            return False
        if inbox and i < 5:
            return name[j] in (p.upper(), p.lower()) and at(i + 1, j + 1)
        return name[j] == p and at(i + 1, j + 1)

    return at(0, 0)


@pytest.mark.parametrize(
    ("reference", "pattern", "name", "expected"),
    [
        ("", "*", "INBOX", True),
        ("", "*", "a/b/c", True),
        ("", "%", "a/b", False),
        ("", "%", "a", True),
        ("", "%/%", "a/b", True),
        ("", "a/*", "a/b/c", True),
        ("", "a/%", "a/b/c", False),
        ("a/", "%", "a/b", True),
        ("", "inbox", "INBOX", True),
        ("", "InBox/%", "INBOX/x", True),
        ("", "INBOXES", "inboxes", False),  # not INBOX: exact
        ("", "Sent", "sent", False),
        ("", "", "", True),
        ("", "*%*%", "a/b", True),
        ("", "%%", "a/b", False),
        ("", "a*b", "a/x/b", True),
        ("", "a%b", "a/x/b", False),
    ],
)
def test_named_cases(reference: str, pattern: str, name: str, expected: bool) -> None:
    assert ListPattern(reference, pattern).match(name) is expected
    assert _reference(reference, pattern, name) is expected


_CHARS = st.sampled_from("ab/*%iInNbBoOxX")


@given(
    st.text(_CHARS, max_size=4), st.text(_CHARS, max_size=10), st.text("ab/INBOXinbox", max_size=12)
)
def test_matches_the_definition(reference: str, pattern: str, name: str) -> None:
    assert ListPattern(reference, pattern).match(name) is _reference(reference, pattern, name)


@pytest.mark.parametrize(
    "pattern",
    [
        "*" * 10 + "x",
        "%" * 10 + "x",
        "*a" * 40 + "x",
        "%a" * 40 + "x",
        "*%" * 200 + "x",
        "*" * 8000,
    ],
)
def test_patterns_that_defeat_backtracking_finish(pattern: str) -> None:
    """Each of these takes a regular expression with one ``.*`` per wildcard longer than
    the suite runs (the name almost matches everywhere); here each is one pass."""
    name = "a" * 1024
    only_wildcards = re.fullmatch(r"[*%]+", pattern) is not None
    assert ListPattern("", pattern).match(name) is only_wildcards
    assert ListPattern("", pattern).match(name + "/b") is (only_wildcards and "*" in pattern)
