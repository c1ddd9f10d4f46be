"""Fixtures for DNS tests: a real authoritative server per test module.

- ``dns_server`` (module): a running ``tests.dnsserver.DnsServer`` serving the test
  module's ``DNS_ZONES`` (origin -> master-file text), plus ``DNS_SERVFAIL_ZONES``
  (origins answered with SERVFAIL) when the module defines it.
- ``dns_resolver`` (function): a ``DnsPythonResolver`` pointed at ``dns_server`` with a
  fresh cache, the system clock and short timeouts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, serving
from postel.clock import SystemClock
from postel.resolver import DnsPythonResolver

TEST_DNS_TIMEOUT_S = 1.0
TEST_DNS_LIFETIME_S = 2.0


@pytest.fixture(scope="module")
def dns_server(request: pytest.FixtureRequest) -> Iterator[DnsServer]:
    zones = getattr(request.module, "DNS_ZONES", None)
    if not zones:
        pytest.fail("a module using dns_server must define DNS_ZONES", pytrace=False)
    servfail = getattr(request.module, "DNS_SERVFAIL_ZONES", ())
    yield from serving(zones, servfail)


@pytest.fixture
def dns_resolver(dns_server: DnsServer) -> DnsPythonResolver:
    return DnsPythonResolver(
        [dns_server.nameserver],
        clock=SystemClock(),
        timeout=TEST_DNS_TIMEOUT_S,
        lifetime=TEST_DNS_LIFETIME_S,
    )
