"""The a/mx prefix test is the CIDR definition: ``ip`` lies in the network of
``address``/prefix. Spec: RFC 7208 §5.6 (dual-cidr-length)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

from hypothesis import given
from hypothesis import strategies as st

from postel.spf.check import _in_prefix

_V4 = st.integers(0, 2**32 - 1).map(IPv4Address)
_V6 = st.integers(0, 2**128 - 1).map(IPv6Address)


@given(st.one_of(_V4, _V6), st.one_of(_V4, _V6), st.integers(0, 32), st.integers(0, 128))
def test_prefix_match_is_network_membership(
    ip: IPv4Address | IPv6Address, address: IPv4Address | IPv6Address, cidr4: int, cidr6: int
) -> None:
    prefix = cidr4 if address.version == 4 else cidr6
    expected = ip.version == address.version and ip in ip_network((address, prefix), strict=False)
    assert _in_prefix(ip, address, cidr4, cidr6) == expected


@given(_V4, st.integers(0, 32))
def test_an_address_shares_its_own_prefix_with_its_neighbours(ip: IPv4Address, cidr4: int) -> None:
    network = ip_network((ip, cidr4), strict=False)
    assert _in_prefix(network[0], ip, cidr4, 128)
    assert _in_prefix(network[-1], ip, cidr4, 128)


@given(
    st.text(
        alphabet=st.characters(max_codepoint=0x2FF) | st.sampled_from(["[", ".", "é"]), max_size=30
    )
)
def test_query_name_characters_are_visible_ascii_but_bracket_or_non_ascii(name: str) -> None:
    """Spec: RFC 7208 §4.3 (a domain that is not a valid query name is not checked)."""
    from postel.spf.check import _QUERY_NAME_CHARS

    expected = (
        bool(name) and all(ord(c) > 0x7F or "!" <= c <= "~" for c in name) and "[" not in name
    )
    assert (_QUERY_NAME_CHARS.fullmatch(name) is not None) == expected
