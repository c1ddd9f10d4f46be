"""Choosing where mail for a domain goes: MX hosts by preference, then their addresses.

``find_route`` turns a destination domain into an ordered list of ``Target`` (host and
IP address) or a ``NoRoute`` saying why there is none and whether that is final:

* MX records sorted by preference, hosts of equal preference in random order (the
  injected ``random.Random``), at most ``max_hosts`` hosts;
* no MX record (NODATA): the implicit MX, the domain itself with preference 0;
* null MX (``0 .``): permanent failure at once, ``556 5.1.10``;
* NXDOMAIN: permanent (``550 5.1.2``); a temporary DNS failure: defer (``451 4.4.3``);
* each host's A (then AAAA) addresses; a host whose lookup fails is skipped; when no
  host has an address the failure is temporary if any lookup failed temporarily,
  permanent otherwise (``550 5.4.4``). At most ``max_addresses`` targets.

Spec: RFC 5321 §5.1; RFC 7505 §3-§4; RFC 3463 (status codes 5.1.2, 5.1.10, 4.4.3, 5.4.4).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from itertools import groupby

from postel.resolver import DnsError, DnsPermError, DnsTempError, MxRecord, Resolver

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """One address to try: ``host`` is the MX name (or the domain, for the implicit
    MX), ``preference`` its MX preference. Spec: RFC 5321 §5.1."""

    host: str
    address: IpAddress
    preference: int


@dataclass(frozen=True, slots=True)
class Route:
    """The targets for ``domain``, in the order to try them. Spec: RFC 5321 §5.1."""

    domain: str
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No target for ``domain``: ``reply`` (``"556 5.1.10 ..."``) is what the
    recipients' outcome records; ``permanent`` says fail (True) or defer (False).
    Spec: RFC 5321 §5.1; RFC 7505 §4."""

    domain: str
    permanent: bool
    reply: str


def order_hosts(records: tuple[MxRecord, ...], rng: random.Random) -> list[MxRecord]:
    """``records`` by ascending preference, shuffled among equal preferences.
    Spec: RFC 5321 §5.1 (the client SHOULD randomise equal preferences)."""
    ordered: list[MxRecord] = []
    by_preference = sorted(records, key=lambda r: r.preference)
    for _, group in groupby(by_preference, key=lambda r: r.preference):
        same = list(group)
        rng.shuffle(same)
        ordered.extend(same)
    return ordered


async def find_route(
    domain: str,
    resolver: Resolver,
    rng: random.Random,
    *,
    max_hosts: int,
    max_addresses: int,
    ipv4: bool = True,
    ipv6: bool = True,
) -> Route | NoRoute:
    """Where mail for ``domain`` (an A-label) goes now (see the module docstring).
    ``ipv4`` / ``ipv6`` choose the address families looked up. Never raises for DNS
    trouble: that is a NoRoute. Spec: RFC 5321 §5.1; RFC 7505 §4."""
    try:
        answer = await resolver.mx(domain)
    except DnsTempError as exc:
        return NoRoute(domain, False, f"451 4.4.3 MX lookup for {domain} failed: {exc}")
    except DnsPermError as exc:
        return NoRoute(domain, True, f"550 5.1.2 Domain {domain} not found: {exc}")
    if answer.null_mx:
        return NoRoute(domain, True, f"556 5.1.10 Domain {domain} does not accept mail")
    implicit = [MxRecord(0, domain)]  # RFC 5321 §5.1: no MX, the domain itself
    hosts = implicit if answer.nodata else order_hosts(answer.records, rng)[:max_hosts]
    targets: list[Target] = []
    temporary: list[str] = []
    for host in hosts:
        if len(targets) >= max_addresses:
            break
        try:
            addresses = await addresses_of(resolver, host.exchange, ipv4=ipv4, ipv6=ipv6)
        except DnsTempError as exc:
            temporary.append(f"{host.exchange}: {exc}")
            continue
        targets.extend(Target(host.exchange, a, host.preference) for a in addresses)
    if targets:
        return Route(domain, tuple(targets[:max_addresses]))
    if temporary:
        why = "; ".join(temporary)
        return NoRoute(domain, False, f"451 4.4.3 Address lookup failed: {why}")
    return NoRoute(domain, True, f"550 5.4.4 No address for any mail host of {domain}")


async def addresses_of(resolver: Resolver, host: str, *, ipv4: bool, ipv6: bool) -> list[IpAddress]:
    """A then AAAA addresses of ``host``; a permanent failure of one family (NXDOMAIN,
    NODATA) counts as no address, a temporary one (DnsTempError) is raised when no
    address was found. Spec: RFC 5321 §5.1."""
    found: list[IpAddress] = []
    trouble: DnsTempError | None = None
    if ipv4:
        try:
            found.extend(await resolver.a(host))
        except DnsTempError as exc:
            trouble = exc
        except DnsError:
            pass
    if ipv6:
        try:
            found.extend(await resolver.aaaa(host))
        except DnsTempError as exc:
            trouble = exc
        except DnsError:
            pass
    if not found and trouble is not None:
        raise trouble
    return found
