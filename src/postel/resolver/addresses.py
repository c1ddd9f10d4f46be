"""IP address text parsed once: every message's client address is parsed by several
steps (the exemption from sender authentication, the checks' start, the resolver's
prefetch and cache lookups), each a few microseconds of ``ipaddress`` in Python.

``parse_ip`` and ``canonical_ip`` keep their recent answers (``IP_TEXTS_KEPT``);
text that is not an address raises ``ValueError`` every time and is not kept.

Spec: RFC 4291 §2.2 (IPv6 text forms), RFC 5952 §4 (canonical IPv6 text).
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Address, IPv6Address, ip_address

__all__ = ["IP_TEXTS_KEPT", "canonical_ip", "parse_ip"]

IP_TEXTS_KEPT = 4096
"""Address texts whose parse is kept, least recently used dropped first. Postel
policy: the clients of the last few thousand connections."""


@functools.lru_cache(maxsize=IP_TEXTS_KEPT)
def parse_ip(text: str) -> IPv4Address | IPv6Address:
    """``ipaddress.ip_address(text)`` for address text; raises ValueError when
    ``text`` is not an IPv4 or IPv6 address."""
    return ip_address(text)


@functools.lru_cache(maxsize=IP_TEXTS_KEPT)
def canonical_ip(text: str) -> str:
    """The canonical text of the address ``text`` (``str(ip_address(text))``: RFC 5952
    for IPv6); raises ValueError when ``text`` is not an address."""
    return str(parse_ip(text))
