"""Sender Rewriting Scheme (pure logic). Spec: RFC 7208 Appendix D; the SRS paper."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from postel.mail.srs import SRS_MAX_AGE_DAYS, Srs, SrsError

SECRET = b"0123456789abcdef-secret"
DAY = 20_000


def test_forward_and_reverse_round_trip() -> None:
    srs = Srs(SECRET, "fwd.example")
    rewritten = srs.forward("alice@origin.example", DAY)
    local, _, domain = rewritten.partition("@")
    assert domain == "fwd.example" and local.startswith("SRS0=")
    assert local.endswith("=origin.example=alice")
    assert srs.is_srs(rewritten)
    assert srs.reverse(rewritten, DAY + SRS_MAX_AGE_DAYS) == "alice@origin.example"
    assert srs.reverse(rewritten.upper().replace("FWD.EXAMPLE", "fwd.example"), DAY) == (
        "ALICE@ORIGIN.EXAMPLE"
    )  # a relay that folded the case still gets its bounce through


def test_null_sender_and_own_domain_are_not_rewritten() -> None:
    srs = Srs(SECRET, "fwd.example")
    assert srs.forward("", DAY) == ""
    assert srs.forward("bob@fwd.example", DAY) == "bob@fwd.example"


def test_forged_or_expired_addresses_are_refused() -> None:
    srs = Srs(SECRET, "fwd.example")
    good = srs.forward("alice@origin.example", DAY)
    local = good.partition("@")[0]
    forged = local[:5] + ("A" if local[5] != "A" else "B") + local[6:] + "@fwd.example"
    for bad in (
        forged,
        good.replace("alice", "mallory"),
        "SRS0=xxxx=AA=origin.example=alice@fwd.example",
        "SRS0=@fwd.example",
        "alice@fwd.example",
        good.replace("fwd.example", "other.example"),
    ):
        with pytest.raises(SrsError):
            Srs(SECRET, "fwd.example").reverse(bad, DAY)
    with pytest.raises(SrsError):
        srs.reverse(good, DAY + SRS_MAX_AGE_DAYS + 1)
    with pytest.raises(SrsError):
        Srs(b"another-secret-of-16", "fwd.example").reverse(good, DAY)


def test_a_second_forwarder_makes_srs1_that_returns_to_the_first() -> None:
    first = Srs(SECRET, "first.example")
    second = Srs(b"second-forwarder-secret", "second.example")
    hop1 = first.forward("alice@origin.example", DAY)
    hop2 = second.forward(hop1, DAY)
    assert hop2.startswith("SRS1=") and hop2.endswith("@second.example")
    back = second.reverse(hop2, DAY)
    assert back == hop1  # to the first forwarder, which reverses it once more
    assert first.reverse(back, DAY) == "alice@origin.example"
    hop3 = Srs(b"third-forwarder-secret!!", "third.example").forward(hop2, DAY)
    assert hop3.startswith("SRS1=") and "=first.example==" in hop3


def test_too_long_results_are_refused_not_truncated() -> None:
    with pytest.raises(SrsError):
        Srs(SECRET, "fwd.example").forward("a" * 60 + "@origin.example", DAY)


@given(
    local=st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,20}", fullmatch=True),
    domain=st.from_regex(r"[a-z0-9]{1,10}\.[a-z]{2,5}", fullmatch=True),
    day=st.integers(min_value=0, max_value=100_000),
    age=st.integers(min_value=0, max_value=SRS_MAX_AGE_DAYS),
)
def test_round_trip_property(local: str, domain: str, day: int, age: int) -> None:
    assume(not local.startswith(("srs0", "srs1")))  # those are forwarded as SRS1
    srs = Srs(SECRET, "fwd.example")
    rewritten = srs.forward(f"{local}@{domain}", day)
    assert srs.reverse(rewritten, day + age) == f"{local}@{domain}"


@given(st.text(max_size=80))
def test_reverse_of_anything_is_an_address_or_srs_error(text: str) -> None:
    with contextlib.suppress(SrsError):
        assert "@" in Srs(SECRET, "fwd.example").reverse(text, DAY)
