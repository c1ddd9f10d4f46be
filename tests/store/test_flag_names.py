"""Flag names as the store accepts them, and how a refused one is quoted back.
Spec: RFC 9051 §9 (flag, flag-keyword)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.store.flags import InvalidFlag, canonical


def test_system_flags_are_spelled_canonically() -> None:
    assert canonical("\\seen") == "\\Seen"
    assert canonical("\\RECENT") is None
    assert canonical("$Label1") == "$Label1"


@pytest.mark.parametrize(
    ("flag", "text"),
    [("\\Bogus", "unknown system flag \\Bogus"), ("a(b", "bad keyword a(b")],
)
def test_refused_flag_is_quoted_as_sent(flag: str, text: str) -> None:
    with pytest.raises(InvalidFlag) as info:
        canonical(flag)
    assert str(info.value) == text


@given(st.text(min_size=1, max_size=20))
def test_error_text_is_printable_ascii(flag: str) -> None:
    """Whatever a client sent, the error text that goes back is printable ASCII."""
    try:
        canonical(flag)
    except InvalidFlag as exc:
        assert str(exc).isascii() and str(exc).isprintable()
