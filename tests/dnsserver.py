"""A real authoritative DNS server for tests: Knot DNS (``knotd``) on a loopback port.

``DnsServer(zones)`` writes a knot.conf and one master-format zone file per zone into a
fresh temp dir, runs ``knotd`` in the foreground as a child process on a free UDP+TCP
port, waits until every zone's SOA is served, and stops it on exit::

    with DnsServer({"example.test": ZONE_TEXT}) as server:
        resolver = DnsPythonResolver([server.nameserver], clock=SystemClock())

Zone text is standard master-file format (RFC 1035 §5); it must contain the SOA.
``servfail_zones`` names zones that are configured without a zone file: Knot answers
every query in them with SERVFAIL, which tests temporary DNS failure.

Knot is Debian's ``knot`` package; without it ``DnsServerMissing`` is raised.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

import ports

KNOTD = "knotd"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.02


class DnsServerMissing(RuntimeError):
    """knotd is not installed."""


class DnsServerFailed(RuntimeError):
    """knotd did not start, or did not serve the zones in time (its log is attached)."""


def free_port(address: str) -> int:
    """A port free for both UDP and TCP on ``address`` (racy, like any such probe;
    below the ephemeral range, tests/ports.py)."""
    return ports.free_port(address, udp=True)


def _config(base: Path, address: str, port: int, zones: Iterable[str]) -> str:
    zone_lines = "".join(f"  - domain: {zone}\n" for zone in zones)
    return (
        "server:\n"
        f'    rundir: "{base}"\n'
        f"    listen: {address}@{port}\n"
        "    background-workers: 1\n"
        "    udp-workers: 1\n"
        "    tcp-workers: 1\n"
        "database:\n"
        f'    storage: "{base}"\n'
        "log:\n"
        "  - target: stderr\n"
        "    any: info\n"
        "template:\n"
        "  - id: default\n"
        f'    storage: "{base}/zones"\n'
        '    file: "%s.zone"\n'
        "    journal-content: none\n"
        "    zonefile-sync: -1\n"
        "    semantic-checks: off\n"
        "zone:\n" + zone_lines
    )


class DnsServer:
    """One knotd serving ``zones`` (origin -> master-file text) on ``address``:``port``.

    ``port`` None picks a free one. Use as a context manager, or call ``start``/``stop``.
    """

    def __init__(
        self,
        zones: Mapping[str, str],
        address: str = "127.0.0.1",
        port: int | None = None,
        *,
        servfail_zones: Iterable[str] = (),
    ) -> None:
        self.zones = {zone.rstrip(".").lower(): text for zone, text in zones.items()}
        self.servfail_zones = tuple(zone.rstrip(".").lower() for zone in servfail_zones)
        self.address = address
        self.port = port if port is not None else free_port(address)
        self._base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> tuple[str, int]:
        """``(address, port)`` to give a resolver."""
        return (self.address, self.port)

    def start(self) -> DnsServer:
        knotd = shutil.which(KNOTD) or shutil.which(KNOTD, path="/usr/sbin:/sbin")
        if knotd is None:
            raise DnsServerMissing(
                "knotd not found: install Debian's 'knot' package (apt-get install knot)"
            )
        self._base = Path(tempfile.mkdtemp(prefix="postel-dns-"))
        (self._base / "zones").mkdir()
        for zone, text in self.zones.items():
            (self._base / "zones" / f"{zone}.zone").write_text(text, encoding="utf-8")
        names = [*self.zones, *self.servfail_zones]
        conf = self._base / "knot.conf"
        conf.write_text(_config(self._base, self.address, self.port, names), encoding="utf-8")
        log = (self._base / "knotd.log").open("wb")
        self._proc = subprocess.Popen(
            [knotd, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = list(self.zones)
        while pending:
            if self._proc is not None and self._proc.poll() is not None:
                raise DnsServerFailed(f"knotd exited with {self._proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise DnsServerFailed(f"zones {pending} not served in time:\n{self.log()}")
            if self._soa_served(pending[0]):
                pending.pop(0)
            else:
                time.sleep(POLL_INTERVAL_S)

    def _soa_served(self, zone: str) -> bool:
        query = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, self.address, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def log(self) -> str:
        """knotd's log so far (for failure messages)."""
        if self._base is None:
            return ""
        path = self._base / "knotd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        base, self._base = self._base, None
        if base is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(base)

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serving(zones: Mapping[str, str], servfail_zones: Iterable[str] = ()) -> Iterator[DnsServer]:
    """A pytest fixture body: a running server for ``zones``, stopped afterwards; a
    missing Knot fails the test with the install hint instead of erroring."""
    import pytest  # here, not at the top: bench/ uses this module without pytest

    try:
        server = DnsServer(zones, servfail_zones=servfail_zones).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
