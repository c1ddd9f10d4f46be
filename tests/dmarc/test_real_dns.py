"""DMARC over real DNS: a Knot DNS server publishing DMARC records, queried through
``DnsPythonResolver``: the Tree Walk finds the Organizational Domain's policy for a
deep subdomain, psd=y stops the walk, np meets a real NXDOMAIN, SERVFAIL is temperror.

Spec: DMARCbis (draft-ietf-dmarc-dmarcbis-41) §4.10, §4.10.1, §4.10.2, §A.4, §5.3.6.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, serving
from postel.clock import SystemClock
from postel.dmarc import Disposition, PolicyTag, Result, TreeWalker, evaluate
from postel.resolver import DnsPythonResolver

ZONE = """$TTL 300
@                  IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
@                  IN NS  ns.test.
ns                 IN A   127.0.0.1
_dmarc.dmarc       IN TXT "v=DMARC1; p=reject; " "sp=quarantine; np=reject; rua=mailto:agg@dmarc.test"
_dmarc.dmarc       IN TXT "google-site-verification=unrelated"
mail.dmarc         IN A   192.0.2.25
_dmarc.team.dmarc  IN TXT "v=DMARC1; p=none; psd=n"
x.y.z.w.v.u.t.s.r.dmarc IN A 192.0.2.26
_dmarc.psd         IN TXT "v=DMARC1; p=quarantine; psd=y"
_dmarc.giant.psd   IN TXT "v=DMARC1; p=reject"
"""
"""One zone for the whole ``test`` TLD, so that the walk's last query (``_dmarc.test``)
gets a real NXDOMAIN."""


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    yield from serving({"test": ZONE}, ["down.test"])


@pytest.fixture
def resolver(dns_server: DnsServer) -> DnsPythonResolver:
    return DnsPythonResolver(
        [dns_server.nameserver], clock=SystemClock(), timeout=1.0, lifetime=2.0
    )


async def test_deep_subdomain_walks_to_the_organizational_domain(
    resolver: DnsPythonResolver,
) -> None:
    author = "x.y.z.w.v.u.t.s.r.dmarc.test"
    walker = TreeWalker(resolver)
    discovery = await walker.discover_policy(author)
    assert discovery.policy_domain == "dmarc.test" and discovery.subdomain
    assert discovery.walk is not None and len(discovery.walk.queried) == 8
    assert discovery.walk.queried[1] == "v.u.t.s.r.dmarc.test"  # shortened to seven labels
    result = await evaluate(f"a@{author}".encode(), ("fail", author), [], resolver)
    assert result.result is Result.FAIL
    assert result.policy_tag is PolicyTag.SP and result.disposition is Disposition.QUARANTINE


async def test_relaxed_alignment_and_np_over_knot(resolver: DnsPythonResolver) -> None:
    passed = await evaluate(b"a@dmarc.test", ("pass", "mail.dmarc.test"), [], resolver)
    assert passed.result is Result.PASS and passed.organizational_domain == "dmarc.test"
    ghost = await evaluate(b"a@ghost.dmarc.test", None, [], resolver)
    assert ghost.policy_tag is PolicyTag.NP and ghost.disposition is Disposition.REJECT


async def test_psd_n_makes_its_own_organizational_domain(resolver: DnsPythonResolver) -> None:
    result = await evaluate(b"a@team.dmarc.test", None, [("pass", "dmarc.test")], resolver)
    assert result.result is Result.FAIL and result.organizational_domain == "team.dmarc.test"
    assert result.disposition is Disposition.NONE


async def test_psd_record_over_knot(resolver: DnsPythonResolver) -> None:
    walker = TreeWalker(resolver)
    assert await walker.organizational_domain("mail.giant.psd.test") == "giant.psd.test"
    assert await walker.organizational_domain("mail.mega.psd.test") == "mega.psd.test"
    result = await evaluate(b"a@mega.psd.test", None, [], resolver)
    assert result.policy_domain == "psd.test" and result.disposition is Disposition.QUARANTINE


async def test_servfail_is_temperror(resolver: DnsPythonResolver) -> None:
    result = await evaluate(b"a@down.test", ("pass", "down.test"), [], resolver)
    assert result.result is Result.TEMPERROR
