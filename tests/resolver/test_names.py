"""Name conversion: A-labels, U-labels, trailing dots, invalid names."""

from __future__ import annotations

import pytest

from postel.resolver import DnsPermError, to_alabels
from postel.resolver.names import to_dns_name, to_text


@pytest.mark.parametrize(
    ("given", "alabels"),
    [
        ("Example.TEST.", "example.test"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("_dmarc.example.test", "_dmarc.example.test"),
    ],
)
def test_to_alabels(given: str, alabels: str) -> None:
    assert to_alabels(given) == alabels
    assert to_text(to_dns_name(given)) == alabels


@pytest.mark.parametrize("bad", ["", ".", "a..b", "x" * 64 + ".test", "a." * 128 + "test"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(DnsPermError):
        to_dns_name(bad)
