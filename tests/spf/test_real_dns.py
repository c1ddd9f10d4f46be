"""SPF over real DNS: a Knot DNS server publishing SPF records, queried through
``DnsPythonResolver`` (pass, fail, include, mx, none, temperror).

Spec: RFC 7208 §4, §5.2, §5.4, §2.6.6.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from dnsserver import DnsServer, serving
from postel.clock import FixedClock, SystemClock
from postel.resolver import DnsPythonResolver
from postel.spf import Result, SpfChecker

ZONE = """$TTL 300
@        IN SOA ns.spf.test. hostmaster.spf.test. 1 3600 600 86400 60
@        IN NS  ns.spf.test.
ns       IN A   127.0.0.1
@        IN TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.spf.test -all exp=why.spf.test"
@        IN TXT "google-site-verification=unrelated"
@        IN MX  10 mx.spf.test.
_spf     IN TXT "v=spf1 a:mail.spf.test " "mx:spf.test ~all"
mail     IN A   198.51.100.7
mx       IN A   203.0.113.9
why      IN TXT "%{i} is not a mail server of %{d}"
soft     IN TXT "v=spf1 redirect=_spf.spf.test"
broken   IN TXT "v=spf1 include:down.test -all"
"""


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    yield from serving({"spf.test": ZONE}, ["down.test"])


@pytest.fixture
def checker(dns_server: DnsServer) -> SpfChecker:
    resolver = DnsPythonResolver(
        [dns_server.nameserver], clock=SystemClock(), timeout=1.0, lifetime=2.0
    )
    return SpfChecker(resolver=resolver, clock=SystemClock(), receiver="mx.postel.test")


@pytest.mark.parametrize(
    ("ip", "mail_from", "expected", "mechanism"),
    [
        ("192.0.2.77", "alice@spf.test", Result.PASS, "ip4:192.0.2.0/24"),
        ("198.51.100.7", "alice@spf.test", Result.PASS, "include:_spf.spf.test"),
        ("203.0.113.9", "alice@spf.test", Result.PASS, "include:_spf.spf.test"),
        ("203.0.113.10", "alice@spf.test", Result.FAIL, "-all"),
        ("203.0.113.10", "bob@soft.spf.test", Result.SOFTFAIL, "~all"),
        ("203.0.113.10", "bob@nowhere.spf.test", Result.NONE, None),
        ("203.0.113.10", "bob@broken.spf.test", Result.TEMPERROR, None),
    ],
)
async def test_check_over_knot(
    checker: SpfChecker, ip: str, mail_from: str, expected: Result, mechanism: str | None
) -> None:
    outcome = await checker.check_mail_from(ip_address(ip), mail_from, helo="client.example")
    assert outcome.result is expected, outcome
    assert outcome.mechanism == mechanism


async def test_fail_carries_the_explanation(checker: SpfChecker) -> None:
    outcome = await checker.check_mail_from(
        ip_address("203.0.113.10"), "alice@spf.test", helo="client.example"
    )
    assert outcome.result is Result.FAIL
    assert outcome.explanation == "203.0.113.10 is not a mail server of spf.test"


# -- results kept for reuse (SpfChecker over the caching resolver) -------------------------

KEPT_ZONE = """$TTL 300
@        IN SOA ns.kept.test. hostmaster.kept.test. 1 3600 600 86400 60
@        IN NS  ns.kept.test.
ns       IN A   127.0.0.1
@        IN TXT "v=spf1 include:_inc.kept.test -all exp=why.kept.test"
_inc  30 IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
why      IN TXT "%{i} at %{t} is not a mail server of %{d}"
"""
KEPT_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def kept_server() -> Iterator[DnsServer]:
    yield from serving({"kept.test": KEPT_ZONE})


def _kept_checker(server: DnsServer, clock: FixedClock) -> SpfChecker:
    resolver = DnsPythonResolver([server.nameserver], clock=clock, timeout=0.2, lifetime=0.4)
    return SpfChecker(resolver=resolver, clock=clock, receiver="mx.postel.test")


async def test_a_kept_result_lasts_no_longer_than_the_shortest_lived_answer(
    kept_server: DnsServer,
) -> None:
    """The result read the record (300 s) and the include (30 s): after 30 s it must
    be evaluated again, which now needs the server (stopped): temperror."""
    clock = FixedClock(KEPT_T0)
    checker = _kept_checker(kept_server, clock)
    ip, sender = ip_address("192.0.2.7"), "alice@kept.test"
    first = await checker.check_mail_from(ip, sender, helo="client.example")
    assert first.result is Result.PASS
    kept_server.stop()
    clock.advance(29)
    assert await checker.check_mail_from(ip, sender, helo="client.example") == first
    clock.advance(1)
    again = await checker.check_mail_from(ip, sender, helo="client.example")
    assert again.result is Result.TEMPERROR


async def test_a_result_that_read_the_time_is_never_reused(kept_server: DnsServer) -> None:
    """%{t} in the explanation: every check expands it afresh (from cached answers)."""
    clock = FixedClock(KEPT_T0)
    checker = _kept_checker(kept_server, clock)
    ip, sender = ip_address("203.0.113.1"), "alice@kept.test"
    first = await checker.check_mail_from(ip, sender, helo="client.example")
    kept_server.stop()
    clock.advance(10)
    second = await checker.check_mail_from(ip, sender, helo="client.example")
    start = int(KEPT_T0.timestamp())
    assert first.result is second.result is Result.FAIL
    assert first.explanation == f"203.0.113.1 at {start} is not a mail server of kept.test"
    assert second.explanation == f"203.0.113.1 at {start + 10} is not a mail server of kept.test"
