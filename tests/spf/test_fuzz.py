"""Hypothesis: no record text or DNS data makes SPF raise anything but its typed errors
(parsers) or anything at all (``check_host``, which always returns a result).

Spec: RFC 7208 §4.6, §12; RELIABILITY.md test 13.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from ipaddress import ip_address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.clock import FixedClock
from postel.spf import (
    Result,
    SpfSyntaxError,
    check_mail_from,
    parse_domain_spec,
    parse_macro_string,
    parse_record,
)

from .suite_resolver import SuiteResolver

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLOCK = FixedClock(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))

_PIECES = [
    "v=spf1",
    " ",
    "  ",
    "+",
    "-",
    "~",
    "?",
    "all",
    "a",
    "mx",
    "ptr",
    "ip4",
    "ip6",
    "exists",
    "include",
    "redirect",
    "exp",
    "=",
    ":",
    "/",
    "//",
    ".",
    "%",
    "%{",
    "}",
    "%%",
    "%_",
    "%-",
    "d",
    "i",
    "l",
    "p",
    "r",
    "2",
    "0",
    "32",
    "129",
    "1.2.3.4",
    "::1",
    "example.com",
    "x.test",
    "\x00",
    "é",
    "\t",
    "{",
    "%{ir}",
    "%{d2r-}",
    "%{p}",
    "%{c}",
]
spf_text = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
records = st.builds(lambda body: "v=spf1 " + body, spf_text)


def _parses_or_syntax_error(text: str | bytes) -> None:
    with contextlib.suppress(SpfSyntaxError):
        parse_record(text)


@FUZZ
@given(st.one_of(st.text(max_size=300), spf_text, records))
def test_parse_record_raises_only_syntax_errors(text: str) -> None:
    _parses_or_syntax_error(text)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_record_bytes(data: bytes) -> None:
    _parses_or_syntax_error(b"v=spf1 " + data)


@FUZZ
@given(st.one_of(st.text(max_size=100), spf_text), st.booleans())
def test_macro_parsers_raise_only_syntax_errors(text: str, explain: bool) -> None:
    for parse in (lambda t: parse_macro_string(t, explain=explain), parse_domain_spec):
        with contextlib.suppress(SpfSyntaxError):
            parse(text)


@FUZZ
@given(records, records, st.sampled_from(["192.0.2.1", "1.2.3.4", "2001:db8::1", "::ffff:1.2.3.4"]))
async def test_check_host_always_returns_a_result(top: str, other: str, ip: str) -> None:
    zone: dict[str, list[object]] = {
        "example.com": [{"TXT": top}, {"A": "1.2.3.4"}, {"MX": [10, "x.test"]}],
        "x.test": [{"TXT": other}, {"A": "192.0.2.1"}, {"AAAA": "2001:db8::1"}],
        "4.3.2.1.in-addr.arpa": [{"PTR": "x.test"}],
    }
    outcome = await check_mail_from(
        ip_address(ip), "user@example.com", helo="x.test", resolver=SuiteResolver(zone), clock=CLOCK
    )
    assert outcome.result in Result
    if outcome.result is not Result.PERMERROR:
        parse_record(top)
