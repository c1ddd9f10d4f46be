"""``check_host`` behaviour beyond the suite: time budget, configurable limits, when the
explanation is fetched, DNS error mapping, the HELO identity.

Spec: RFC 7208 §2.3, §4.6.4, §5, §6.2.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from postel.clock import FixedClock
from postel.resolver import DnsPermError
from postel.spf import Result, SpfChecker, SpfLimits, check_helo, check_host, check_mail_from

from .suite_resolver import SuiteResolver

CLOCK = FixedClock(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
IP = ip_address("192.0.2.10")


def _resolver(zonedata: dict[str, Any]) -> SuiteResolver:
    return SuiteResolver(zonedata)


class _HangingResolver(SuiteResolver):
    async def txt(self, name: str) -> tuple[bytes, ...]:
        await asyncio.sleep(3600)
        return ()


class _BadNameResolver(SuiteResolver):
    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        raise DnsPermError(f"not a valid domain name: {name!r}")


async def test_time_budget_gives_temperror() -> None:
    outcome = await check_host(
        IP,
        "example.com",
        "a@example.com",
        helo="h.example",
        resolver=_HangingResolver({}),
        clock=CLOCK,
        limits=SpfLimits(timeout_s=0.05),
    )
    assert outcome.result is Result.TEMPERROR
    assert "time budget" in outcome.reason


async def test_lookup_limit_is_configurable() -> None:
    zone = {"example.com": [{"TXT": "v=spf1 a mx ip4:192.0.2.10 -all"}]}
    limits = SpfLimits(dns_lookups=1)
    outcome = await check_mail_from(
        IP, "a@example.com", helo="h", resolver=_resolver(zone), clock=CLOCK, limits=limits
    )
    assert outcome.result is Result.PERMERROR
    assert "DNS-querying terms" in outcome.reason


async def test_explanation_fetched_only_for_a_final_fail() -> None:
    zone = {
        "example.com": [
            {"TXT": "v=spf1 include:inner.example.com ip4:192.0.2.10 exp=e.example.com"}
        ],
        "inner.example.com": [{"TXT": "v=spf1 -all exp=inner-exp.example.com"}],
        "e.example.com": [{"TXT": "why"}],
        "inner-exp.example.com": [{"TXT": "inner why"}],
    }
    resolver = _resolver(zone)
    outcome = await check_mail_from(IP, "a@example.com", helo="h", resolver=resolver, clock=CLOCK)
    assert outcome.result is Result.PASS
    assert outcome.explanation is None
    asked = {name for name, _ in resolver.queries}
    assert "e.example.com" not in asked and "inner-exp.example.com" not in asked


async def test_fail_reason_and_mechanism() -> None:
    zone = {"example.com": [{"TXT": "v=spf1 ip4:198.51.100.0/24 -all exp=e.example.com"}]}
    zone["e.example.com"] = [{"TXT": "%{i} may not send for %{o} (%{r})"}]
    checker = SpfChecker(resolver=_resolver(zone), clock=CLOCK, receiver="mx.example.net")
    outcome = await checker.check_host(IP, "example.com", "a@example.com", helo="h")
    assert outcome.result is Result.FAIL
    assert outcome.mechanism == "-all"
    assert outcome.reason == "example.com: -all"
    assert outcome.explanation == "192.0.2.10 may not send for example.com (mx.example.net)"


async def test_ipv4_mapped_client_is_ipv4() -> None:
    zone = {"example.com": [{"TXT": "v=spf1 ip4:192.0.2.10 -all"}]}
    outcome = await check_mail_from(
        IPv6Address("::ffff:192.0.2.10"),
        "a@example.com",
        helo="h",
        resolver=_resolver(zone),
        clock=CLOCK,
    )
    assert outcome.result is Result.PASS


async def test_null_reverse_path_checks_the_helo() -> None:
    zone = {"mail.example.com": [{"TXT": "v=spf1 a -all"}, {"A": "192.0.2.10"}]}
    outcome = await check_mail_from(
        IP, "", helo="mail.example.com", resolver=_resolver(zone), clock=CLOCK
    )
    assert (outcome.result, outcome.domain) == (Result.PASS, "mail.example.com")


async def test_helo_literal_or_single_label_is_none() -> None:
    for helo in ("[192.0.2.10]", "localhost", ""):
        outcome = await check_helo(IP, helo, resolver=_resolver({}), clock=CLOCK)
        assert outcome.result is Result.NONE


async def test_permanent_dns_error_in_a_mechanism_is_no_match() -> None:
    zone = {"example.com": [{"TXT": "v=spf1 a:bad.example.com ?all"}]}
    outcome = await check_mail_from(
        IP, "a@example.com", helo="h", resolver=_BadNameResolver(zone), clock=CLOCK
    )
    assert outcome.result is Result.NEUTRAL


async def test_include_loop_is_permerror_without_exhausting_lookups() -> None:
    zone = {"example.com": [{"TXT": "v=spf1 include:EXAMPLE.com. -all"}]}
    resolver = _resolver(zone)
    outcome = await check_mail_from(IP, "a@example.com", helo="h", resolver=resolver, clock=CLOCK)
    assert outcome.result is Result.PERMERROR
    assert "loop" in outcome.reason
    assert len(resolver.queries) == 1
