"""Relaying all outbound mail through one smarthost instead of the recipients' MX hosts.

For machines that cannot send on port 25 themselves (residential addresses, blocked
ports): every destination domain routes to the same host, reached on the submission
port with TLS and, optionally, AUTH PLAIN.

Spec: RFC 6409 §3 (submission to a relay), RFC 8314 §3.3 (implicit TLS), RFC 3207
(STARTTLS), RFC 4954 and RFC 4616 (AUTH PLAIN).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from postel.resolver import DnsPermError, DnsTempError, Resolver

from .mx import NoRoute, Route, Target, addresses_of

SMARTHOST_PORT = 587
"""Port used when the smarthost setting names none. Spec: RFC 6409 §3.1."""


class SmarthostTls(enum.StrEnum):
    """How the connection to the smarthost is protected: ``starttls`` (required,
    certificate verified), ``implicit`` (TLS from the first octet, verified) or
    ``none`` (plaintext: only for a relay on the same host or a private network).
    Spec: RFC 3207; RFC 8314 §3.3."""

    STARTTLS = "starttls"
    IMPLICIT = "implicit"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Smarthost:
    """The relay: ``host`` (a name or an IP literal), ``port``, ``tls``, and the AUTH
    credentials (both or neither). Spec: RFC 6409 §3; RFC 4954 §4."""

    host: str
    port: int = SMARTHOST_PORT
    tls: SmarthostTls = SmarthostTls.STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("smarthost: empty host")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"smarthost port out of range: {self.port}")
        if (self.username is None) != (self.password is None):
            raise ValueError("smarthost: username and password go together")


def parse_smarthost_address(text: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[v6]:port"`` or a bare IPv6 literal as
    (host, port); the port defaults to 587. Raises ValueError for an empty host or a
    bad port. Spec: RFC 6409 §3.1."""
    text = text.strip()
    host, port = text, SMARTHOST_PORT
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"smarthost: bad address {text!r}")
            port = _port(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text)
    if not host:
        raise ValueError(f"smarthost: bad address {text!r}")
    return host, port


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"smarthost: bad port {text!r}")
    return int(text)


async def smarthost_route(
    smarthost: Smarthost,
    domain: str,
    resolver: Resolver,
    *,
    max_addresses: int,
    ipv4: bool = True,
    ipv6: bool = True,
) -> Route | NoRoute:
    """The route for mail to ``domain``: the smarthost's addresses (an IP literal as
    it is). DNS trouble defers (``451 4.4.3``); a host without addresses defers too
    (``451 4.4.4``): the relay is our own configuration, not the recipient's fault.
    Spec: RFC 5321 §5.1 (addresses of one host); RFC 3463."""
    try:
        literal = ipaddress.ip_address(smarthost.host)
    except ValueError:
        literal = None
    if literal is not None:
        return Route(domain, (Target(smarthost.host, literal, 0),))
    try:
        found = await addresses_of(resolver, smarthost.host, ipv4=ipv4, ipv6=ipv6)
    except DnsTempError as exc:
        return NoRoute(domain, False, f"451 4.4.3 Smarthost lookup failed: {exc}")
    except DnsPermError:
        found = []
    if not found:
        return NoRoute(domain, False, f"451 4.4.4 Smarthost {smarthost.host} has no address")
    targets = tuple(Target(smarthost.host, a, 0) for a in found[:max_addresses])
    return Route(domain, targets)
