"""Free ports for the servers tests start, chosen outside the kernel's ephemeral range.

A port found free by binding port 0 comes from the ephemeral range
(``net.ipv4.ip_local_port_range``, 32768-60999 by default), which is also where every
outgoing connection takes its source port: between the probe and the server's own bind,
any client connection of the suite can take it, and the server fails with "address
already in use". These helpers probe random ports below that range instead.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORT_LOW = 20000
"""The lowest port handed out (above the registered services tests might meet)."""
_PROBES = 200
_HANDED_OUT: set[int] = set()
"""Ports this test process has handed out. A test may build two servers before it
starts either (two nodes on one database): their ports were all free when probed, so
without this record both could get the same one."""


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bindable(host: str, port: int, *, udp: bool) -> bool:
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for kind in kinds:
        with socket.socket(_family(host), kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1", *, udp: bool = False, taken: set[int] | None = None) -> int:
    """A port on ``host`` free a moment ago for TCP (and UDP when ``udp``), below the
    ephemeral range, not in ``taken``."""
    high = max(PORT_LOW + 1000, _ephemeral_low())
    if len(_HANDED_OUT) > (high - PORT_LOW) // 2:
        _HANDED_OUT.clear()  # the servers of long-finished tests are gone
    for _ in range(_PROBES):
        port = random.randrange(PORT_LOW, high)
        if port in _HANDED_OUT or (taken is not None and port in taken):
            continue
        if _bindable(host, port, udp=udp):
            _HANDED_OUT.add(port)
            return port
    with socket.socket(_family(host)) as s:  # every probe busy: let the kernel choose
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct TCP ports on ``host`` (see ``free_port``)."""
    chosen: set[int] = set()
    ports = []
    for _ in range(count):
        port = free_port(host, taken=chosen)
        chosen.add(port)
        ports.append(port)
    return ports
