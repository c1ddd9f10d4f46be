"""Domain and address forms: A-labels, case, and what is refused."""

from __future__ import annotations

import pytest

from postel.directory import (
    Address,
    InvalidAddress,
    normalize_domain,
    parse_address,
    split_recipient,
    to_a_label,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Example.ORG", "example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
    ],
)
def test_normalize_domain(given: str, expected: str) -> None:
    assert normalize_domain(given) == expected


@pytest.mark.parametrize(
    "given", ["", "a..b", "-a.example", "a_b.example", "[127.0.0.1]", "x" * 64 + ".example"]
)
def test_normalize_domain_rejects(given: str) -> None:
    with pytest.raises(InvalidAddress):
        normalize_domain(given)


def test_to_a_label_rejects_bad_idna() -> None:
    with pytest.raises(InvalidAddress):
        to_a_label("ü" * 70 + ".example")


def test_parse_address() -> None:
    assert parse_address("Bob.Smith@Bücher.Example") == Address(
        "Bob.Smith", "xn--bcher-kva.example"
    )
    assert parse_address("Bob@example.org").key == "bob@example.org"
    assert str(parse_address("a+b@example.org")) == "a+b@example.org"


@pytest.mark.parametrize(
    "given",
    [
        "bob",
        "@example.org",
        "a..b@example.org",
        ".a@example.org",
        '"a b"@example.org',
        "a b@example.org",
        "x" * 65 + "@example.org",
        "a@b@example.org",
        "bob@",
    ],
)
def test_parse_address_rejects(given: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(given)


def test_split_recipient_never_interprets_the_local_part() -> None:
    assert split_recipient("user%other.example@Example.org") == (
        "user%other.example",
        "example.org",
    )
    assert split_recipient("other.example!user@example.org") == (
        "other.example!user",
        "example.org",
    )
    assert split_recipient('"user@other.example"@example.org') == (
        '"user@other.example"',
        "example.org",
    )
    assert split_recipient("postmaster") is None
