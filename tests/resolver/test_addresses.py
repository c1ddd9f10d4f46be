"""The kept address parses answer what ``ipaddress`` answers, every time."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.resolver.addresses import IP_TEXTS_KEPT, canonical_ip, parse_ip


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses())
def test_parse_and_canonical_text_agree_with_ipaddress(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    texts = [str(ip)]
    if ip.version == 6:
        texts.append(ip.exploded)
    for text in texts:
        for _ in range(2):  # the kept answer is the same as the first
            assert parse_ip(text) == ipaddress.ip_address(text)
            assert canonical_ip(text) == str(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", ["", "300.1.1.1", "1.2.3", "::g", "example.org", "1.2.3.4 "])
def test_text_that_is_no_address_raises_every_time(text: str) -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            parse_ip(text)
        with pytest.raises(ValueError):
            canonical_ip(text)


def test_what_is_kept_is_bounded() -> None:
    for n in range(IP_TEXTS_KEPT + 10):
        parse_ip(str(ipaddress.IPv4Address(n)))
    assert parse_ip.cache_info().currsize <= IP_TEXTS_KEPT
