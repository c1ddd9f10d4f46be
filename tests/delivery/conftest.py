"""Fixtures for delivery tests: a Knot DNS server with the test zones, Postfix's
smtp-sink as the receiving MTA, a fresh SQLite store, and a worker factory.

- ``dns_server`` (module): knotd serving ``ZONES``; ``resolver`` (function) points at it.
- ``sink_factory`` (function): ``start(*options)`` runs ``smtp-sink OPTIONS`` on a free
  loopback port and returns a ``Sink`` (its port and dump file); stopped at the end.
- ``store`` (function): an open SQLite store in the test's temp dir.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnsserver import DnsServer, serving
from postel.clock import SystemClock
from postel.delivery import DeliveryConfig, DeliveryWorker, SmtpTimeouts
from postel.resolver import DnsPythonResolver
from postel.store import Store, open_store

SMTP_SINK = "/usr/sbin/smtp-sink"

_SOA = """$TTL 300
@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
"""
ZONES = {
    "example.test": _SOA
    + """
ns        IN A   127.0.0.1
@         IN MX  10 mx.example.test.
mx        IN A   127.0.0.1
nullmx    IN MX  0 .
implicit  IN A   127.0.0.1
peer      IN MX  10 mx.example.test.
"""
}
"""``example.test`` and ``peer.example.test``: MX mx.example.test (127.0.0.1);
``nullmx.example.test``: null MX; ``implicit.example.test``: A only (implicit MX)."""

FAST_TIMEOUTS = SmtpTimeouts(
    connect=2,
    greeting=15,
    hello=15,
    tls_handshake=10,
    mail=10,
    rcpt=10,
    data_init=10,
    data_block=10,
    data_end=15,
    quit=2,
)
"""Shorter than production, with room for a loaded 2-core test machine."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    yield from serving(ZONES)


@pytest.fixture
def resolver(dns_server: DnsServer) -> DnsPythonResolver:
    return DnsPythonResolver([dns_server.nameserver], clock=SystemClock(), timeout=1, lifetime=2)


@dataclass
class Sink:
    port: int
    dump: Path

    def dumped(self, expect: bytes, timeout: float = 5.0) -> bytes:
        """The dump file once it contains ``expect`` (smtp-sink writes it shortly
        after answering)."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.dump.read_bytes() if self.dump.exists() else b""
            if expect in data or time.monotonic() > deadline:
                return data
            time.sleep(0.05)


@pytest.fixture
def sink_factory() -> Iterator[Callable[..., Sink]]:
    if not os.access(SMTP_SINK, os.X_OK):
        pytest.fail("Postfix smtp-sink not installed", pytrace=False)
    procs: list[subprocess.Popen[bytes]] = []
    dirs: list[tempfile.TemporaryDirectory[str]] = []

    def start(*options: str) -> Sink:
        # smtp-sink runs as "nobody" when started as root: the dump must be writable by it.
        tmp = tempfile.TemporaryDirectory(prefix="postel-sink-")
        dirs.append(tmp)
        Path(tmp.name).chmod(0o777)
        port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        dump = Path(tmp.name) / "all"
        args = [SMTP_SINK, *user, "-h", "sink.example", "-D", str(dump), *options]
        proc = subprocess.Popen(
            [*args, f"127.0.0.1:{port}", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        procs.append(proc)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return Sink(port, dump)
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("smtp-sink did not start", pytrace=False)
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(5)
    for tmp in dirs:
        tmp.cleanup()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'queue.db'}", tmp_path / "blobs", clock=SystemClock())
    await s.open()
    try:
        yield s
    finally:
        await s.close()


WorkerFactory = Callable[..., DeliveryWorker]


@pytest.fixture
def make_worker(store: Store, resolver: DnsPythonResolver) -> WorkerFactory:
    def make(port: int, **options: object) -> DeliveryWorker:
        settings: dict[str, object] = {
            "hostname": "client.example.net",
            "port": port,
            "timeouts": FAST_TIMEOUTS,
            "poll_interval": 0.2,
            "ipv6": False,
        }
        config = DeliveryConfig(**(settings | options))  # type: ignore[arg-type]
        return DeliveryWorker(store, resolver, config, clock=SystemClock(), rng=random.Random(5))

    return make
