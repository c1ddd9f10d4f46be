"""Temporary failures: SERVFAIL from a real server, a closed port, a silent server."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import Iterator

import pytest

from dnsserver import DnsServer, free_port
from postel.clock import FixedClock, SystemClock
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


async def test_temporary_failures_are_remembered_briefly(
    silent_nameserver: tuple[str, int],
) -> None:
    """A temporary failure is answered from the cache for ``temperror_ttl`` seconds
    (RFC 2308 §7.1), then the server is asked again; 0 turns that off. Concurrent
    askers share one query."""
    clock = FixedClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    resolver = DnsPythonResolver(
        [silent_nameserver],
        clock=clock,
        timeout=SHORT_TIMEOUT_S,
        lifetime=SHORT_LIFETIME_S,
        temperror_ttl=5,
    )
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(resolver.a("example.test") for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, DnsTempError) for o in outcomes)
    assert time.monotonic() - started < ELAPSED_MAX_S
    started = time.monotonic()
    with pytest.raises(DnsTempError):
        await resolver.a("Example.Test.")
    assert time.monotonic() - started < SHORT_TIMEOUT_S
    clock.advance(5)
    started = time.monotonic()
    with pytest.raises(DnsTempError):
        await resolver.a("example.test")
    assert time.monotonic() - started >= SHORT_TIMEOUT_S

    uncached = DnsPythonResolver(
        [silent_nameserver],
        clock=clock,
        timeout=SHORT_TIMEOUT_S,
        lifetime=SHORT_LIFETIME_S,
        temperror_ttl=0,
    )
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(DnsTempError):
            await uncached.a("example.test")
        assert time.monotonic() - started >= SHORT_TIMEOUT_S
