"""Sender authentication reuses iprev and DMARC results only while the DNS answers
they read are cached: against a real DNS server that is stopped after the first
message, a later message gets the same verdict until the shortest TTL behind each
result runs out, then that check is evaluated again (and, with no server left, fails
temporarily).

Spec: RFC 8601 §3 (iprev); RFC 9989 (DMARC); RFC 1035 §7.4 (TTL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, serving
from postel.clock import FixedClock
from postel.pipeline.authentication import AuthAction, AuthSettings, InboundAuthenticator
from postel.resolver import DnsPythonResolver

ZONES = {
    "s.test": """$TTL 300
@        IN SOA ns.s.test. hostmaster.s.test. 1 3600 600 86400 60
@        IN NS  ns.s.test.
ns       IN A   127.0.0.1
@        IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc 30 IN TXT "v=DMARC1; p=reject"
mta   20 IN A   192.0.2.7
""",
    "2.0.192.in-addr.arpa": """$TTL 300
@        IN SOA ns.s.test. hostmaster.s.test. 1 3600 600 86400 60
@        IN NS  ns.s.test.
7        IN PTR mta.s.test.
""",
}
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MESSAGE = b"From: <a@s.test>\r\nTo: <b@mx.test>\r\nSubject: hello\r\n\r\nbody\r\n"


@pytest.fixture
def server() -> Iterator[DnsServer]:
    yield from serving(ZONES)


async def test_iprev_and_dmarc_are_reused_only_while_their_answers_last(
    server: DnsServer,
) -> None:
    clock = FixedClock(T0)
    resolver = DnsPythonResolver([server.nameserver], clock=clock, timeout=0.2, lifetime=0.4)
    auth = InboundAuthenticator(resolver, clock, AuthSettings("mx.test"))
    try:

        async def verdict() -> tuple[AuthAction, str]:
            checks = auth.start("192.0.2.7", "mta.s.test", "a@s.test")
            outcome = await auth.verdict(checks, MESSAGE)
            return outcome.action, outcome.summary

        first = await verdict()
        assert first == (AuthAction.ACCEPT, first[1])
        assert "dmarc=pass" in first[1] and "iprev=pass" in first[1], first
        server.stop()
        clock.advance(19)
        assert await verdict() == first
        clock.advance(1)  # the A record behind iprev (20 s) is gone
        action, summary = await verdict()
        assert action is AuthAction.ACCEPT
        assert "iprev=temperror" in summary and "dmarc=pass" in summary, summary
        clock.advance(10)  # the DMARC record (30 s) too: DMARC cannot be evaluated
        action, summary = await verdict()
        assert action is AuthAction.DEFER and "dmarc=temperror" in summary, summary
    finally:
        await auth.aclose()
