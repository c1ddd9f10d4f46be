"""SPF over real DNS: a Knot DNS server publishing SPF records, queried through
``DnsPythonResolver`` (pass, fail, include, mx, none, temperror).

Spec: RFC 7208 §4, §5.2, §5.4, §2.6.6.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from dnsserver import DnsServer, DnsServerMissing
from postel.clock import SystemClock
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
    try:
        server = DnsServer({"spf.test": ZONE}, servfail_zones=["down.test"]).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


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
