"""The ``[listen]`` table: which service listens on which addresses.

Each key is a service name (``postel.config.model.Service``) and its value a list of
``"host:port"`` strings, IPv6 in brackets: ``smtp = ["0.0.0.0:25", "[::]:25"]``. An empty
list turns the service off; a service not mentioned listens on ``0.0.0.0`` at its
standard port (``PRODUCTION_PORTS``).

Spec: RFC 3986 §3.2.2 (bracketed IPv6 literals in host:port).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from postel.config.fields import Reader
from postel.config.model import PRODUCTION_PORTS, Listen, Service

DEFAULT_LISTEN_HOST = "0.0.0.0"
"""Where a service not named in ``[listen]`` listens in production."""

PORT_MAX = 65535
"""Largest TCP port. Spec: RFC 793 §3.1 (16-bit port)."""


def parse_endpoint(text: str) -> tuple[str, int]:
    """``"0.0.0.0:25"`` → ``("0.0.0.0", 25)``; ``"[::]:25"`` → ``("::", 25)``.

    The host must be an IP address literal (binding to a name would depend on DNS at
    start). Raises ValueError with a readable message.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f'"{text}" is not host:port (e.g. "0.0.0.0:25" or "[::]:25")')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f'"{text}": host must be an IP address literal') from None
    if address.version != version:
        raise ValueError(f'"{text}": write IPv6 addresses in brackets, e.g. "[::]:25"')
    if not port_text.isdigit() or not 0 < int(port_text) <= PORT_MAX:
        raise ValueError(f'"{text}": port must be a number from 1 to {PORT_MAX}')
    return str(address), int(port_text)


def read_listen(reader: Reader, table: Mapping[str, object]) -> tuple[Listen, ...]:
    """Every ``Listen`` of the ``[listen]`` table, with defaults for services it omits.
    Unknown services, malformed endpoints and an endpoint used twice are errors."""
    reader.check_keys(table, ("listen",), {s.value for s in Service})
    result: list[Listen] = []
    seen: dict[tuple[str, int], Service] = {}
    for service in Service:
        key = ("listen", service.value)
        if service.value not in table:
            default = Listen(service, DEFAULT_LISTEN_HOST, PRODUCTION_PORTS[service])
            seen.setdefault((default.host, default.port), service)
            result.append(default)
            continue
        endpoints = reader.string_list(table, key)
        for text in endpoints or ():
            try:
                host, port = parse_endpoint(text)
            except ValueError as exc:
                reader.error(key, str(exc))
                continue
            other = seen.setdefault((host, port), service)
            if other is not service:
                reader.error(key, f'"{text}" is already used by {other.value}')
                continue
            result.append(Listen(service, host, port))
    return tuple(result)
