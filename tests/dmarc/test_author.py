"""Author Domains of a From field: a value seen before gives what parsing it gives.
Spec: DMARCbis §4.2, §5.3.1; RFC 5322 §3.6.2."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.dmarc.author import AUTHOR_CACHE_VALUE_MAX, _of_value, author_domains


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=80)
    | st.sampled_from([b" a@b.example", b' "x" <y@z.example>', b"g: a@b, c@d;", b" <@x>"])
)
def test_remembered_author_domains_are_the_parsed_ones(value: bytes) -> None:
    assert author_domains([value]) == _of_value(value)
    assert author_domains([value]) == _of_value(value)  # the second from the cache


def test_a_long_value_is_parsed_every_time() -> None:
    value = b" " + b"x" * AUTHOR_CACHE_VALUE_MAX + b"@long.example"
    assert author_domains([value]).domains == ("long.example",)
