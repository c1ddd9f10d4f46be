"""Temporary failures: SERVFAIL from a real server, a closed port, a silent server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, free_port
from postel.clock import SystemClock
from postel.errors import TemporaryFailure
from postel.resolver import DnsPythonResolver, DnsTempError

from .zones import ZONES

DNS_ZONES = ZONES
DNS_SERVFAIL_ZONES = ("broken.test",)

SHORT_TIMEOUT_S = 0.2
SHORT_LIFETIME_S = 0.5
ELAPSED_MAX_S = SHORT_LIFETIME_S + 1.0


def _resolver(nameserver: tuple[str, int]) -> DnsPythonResolver:
    return DnsPythonResolver(
        [nameserver], clock=SystemClock(), timeout=SHORT_TIMEOUT_S, lifetime=SHORT_LIFETIME_S
    )


@pytest.fixture
def silent_nameserver() -> Iterator[tuple[str, int]]:
    """A UDP socket that receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield ("127.0.0.1", int(sock.getsockname()[1]))


async def test_servfail_is_temporary(dns_server: DnsServer) -> None:
    resolver = _resolver(dns_server.nameserver)
    started = time.monotonic()
    with pytest.raises(DnsTempError, match="SERVFAIL"):
        await resolver.mx("broken.test")
    assert time.monotonic() - started < ELAPSED_MAX_S
    # The same resolver still answers for healthy zones afterwards.
    assert (await resolver.mx("nullmx.example.test")).null_mx


async def test_closed_port_is_temporary() -> None:
    resolver = _resolver(("127.0.0.1", free_port("127.0.0.1")))
    started = time.monotonic()
    with pytest.raises(DnsTempError) as info:
        await resolver.txt("example.test")
    assert isinstance(info.value, TemporaryFailure)
    assert time.monotonic() - started < ELAPSED_MAX_S


async def test_silent_server_times_out_within_lifetime(
    silent_nameserver: tuple[str, int],
) -> None:
    resolver = _resolver(silent_nameserver)
    started = time.monotonic()
    with pytest.raises(DnsTempError):
        await resolver.a("example.test")
    elapsed = time.monotonic() - started
    assert SHORT_TIMEOUT_S <= elapsed < ELAPSED_MAX_S


async def test_temporary_failures_are_not_cached(silent_nameserver: tuple[str, int]) -> None:
    resolver = _resolver(silent_nameserver)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(DnsTempError):
            await resolver.a("example.test")
        assert time.monotonic() - started >= SHORT_TIMEOUT_S
