"""The ``Resolver`` over dnspython's asyncio stub resolver, with a bounded TTL cache.

Queries go to the configured nameservers (recursive resolvers; in tests an authoritative
server), or to those in /etc/resolv.conf when none are configured. Each attempt waits at
most ``timeout`` seconds and a lookup at most ``lifetime`` seconds (also enforced with
``asyncio.timeout``). SERVFAIL is not retried on the same server.

dnspython outcome to postel outcome:

==============================================  ==================================
dnspython                                       postel
==============================================  ==================================
``Answer`` with an RRset                        records (cached for min TTL, capped)
``Answer`` without one (``raise_on_no_answer``  NODATA: empty tuple (cached for the
False)                                          RFC 2308 negative TTL, capped)
``NXDOMAIN``                                    ``DnsNxDomain`` (cached likewise)
``NoNameservers`` (SERVFAIL, REFUSED, network   ``DnsTempError`` (not cached)
errors from every server), ``LifetimeTimeout``,
any other ``DNSException``, ``OSError``
``YXDOMAIN``, bad name, RRset over the bound    ``DnsPermError`` (not cached)
==============================================  ==================================

CNAME chains are followed as dnspython does: within the one response only, so the
nameserver must be recursive (or authoritative for every name in the chain); a chain
whose target is missing from the response reads as NODATA.

Spec: RFC 1034 §3.6.2 §5.3.3, RFC 1035 §7, RFC 2308 §5, RFC 7208 §2.6, RFC 5321 §5.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.resolver
import dns.reversename

from postel.clock import Clock
from postel.errors import ConfigError
from postel.resolver.api import (
    DNS_CACHE_ENTRIES_MAX,
    DNS_CACHE_TTL_MAX_S,
    DNS_EDNS_PAYLOAD,
    DNS_LIFETIME_S,
    DNS_NEGATIVE_TTL_MAX_S,
    DNS_RRSET_RECORDS_MAX,
    DNS_TIMEOUT_S,
    DnsNxDomain,
    DnsPermError,
    DnsTempError,
    MxAnswer,
    MxRecord,
    SrvRecord,
)
from postel.resolver.cache import TtlCache
from postel.resolver.names import to_dns_name, to_text

LIFETIME_GRACE_S = 1.0
"""Seconds ``asyncio.timeout`` allows beyond ``lifetime`` before cancelling the lookup."""

_Key = tuple[dns.name.Name, dns.rdatatype.RdataType]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One cached lookup result: records (empty for NODATA) or NXDOMAIN."""

    rdatas: tuple[dns.rdata.Rdata, ...]
    nxdomain: bool
    ttl: int


class DnsPythonResolver:
    """``Resolver`` backed by ``dns.asyncresolver``; see the module table for outcomes.

    ``nameservers``: ``(address, port)`` pairs asked in order, or None for the system
    resolver (/etc/resolv.conf; ``ConfigError`` when it cannot be read). ``timeout`` is
    seconds per attempt, ``lifetime`` seconds per lookup, ``cache_size`` the cache's
    entry bound (0 disables it). ``clock`` drives cache expiry only.

    Spec: RFC 1035 §7, RFC 2308 §5, RFC 5321 §5.1, RFC 7208 §2.6.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        clock: Clock,
        timeout: float = DNS_TIMEOUT_S,
        lifetime: float = DNS_LIFETIME_S,
        cache_size: int = DNS_CACHE_ENTRIES_MAX,
    ) -> None:
        if timeout <= 0 or lifetime <= 0:
            raise ConfigError("DNS timeout and lifetime must be positive")
        self._resolver = _build_resolver(nameservers, timeout, lifetime)
        self._lifetime = lifetime
        self._cache: TtlCache[_Key, _Outcome] = TtlCache(clock=clock, max_entries=cache_size)

    async def mx(self, domain: str) -> MxAnswer:
        """MX records sorted by preference, null MX detected. Spec: RFC 5321 §5.1, RFC 7505 §3."""
        qname = to_dns_name(domain)
        outcome = await self._lookup(qname, dns.rdatatype.MX)
        pairs = [
            (rd.preference, rd.exchange)
            for rd in outcome.rdatas
            if isinstance(rd, dns.rdtypes.ANY.MX.MX)
        ]
        null_mx = len(pairs) == 1 and pairs[0][1] == dns.name.root
        records = tuple(
            MxRecord(preference, to_text(exchange))
            for preference, exchange in sorted(pairs, key=lambda p: p[0])
            if exchange != dns.name.root
        )
        return MxAnswer(to_text(qname), records, null_mx, outcome.ttl)

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        """IPv4 addresses of ``name``. Spec: RFC 1035 §3.4.1."""
        outcome = await self._lookup(to_dns_name(name), dns.rdatatype.A)
        return tuple(
            IPv4Address(rd.address) for rd in outcome.rdatas if isinstance(rd, dns.rdtypes.IN.A.A)
        )

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        """IPv6 addresses of ``name``. Spec: RFC 3596 §2.2."""
        outcome = await self._lookup(to_dns_name(name), dns.rdatatype.AAAA)
        return tuple(
            IPv6Address(rd.address)
            for rd in outcome.rdatas
            if isinstance(rd, dns.rdtypes.IN.AAAA.AAAA)
        )

    async def txt(self, name: str) -> tuple[bytes, ...]:
        """TXT records, each record's strings joined. Spec: RFC 1035 §3.3.14, RFC 7208 §3.3."""
        outcome = await self._lookup(to_dns_name(name), dns.rdatatype.TXT)
        return tuple(
            b"".join(rd.strings) for rd in outcome.rdatas if isinstance(rd, dns.rdtypes.ANY.TXT.TXT)
        )

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        """PTR targets of ``ip``'s reverse name. Spec: RFC 1035 §3.5, RFC 3596 §2.5."""
        qname = dns.reversename.from_address(str(ip))
        outcome = await self._lookup(qname, dns.rdatatype.PTR)
        return tuple(
            to_text(rd.target) for rd in outcome.rdatas if isinstance(rd, dns.rdtypes.ANY.PTR.PTR)
        )

    async def srv(self, name: str) -> tuple[SrvRecord, ...]:
        """SRV records of ``name`` (e.g. ``_imaps._tcp.example.org``), in the order
        served. Spec: RFC 2782; RFC 6186 §3."""
        outcome = await self._lookup(to_dns_name(name), dns.rdatatype.SRV)
        return tuple(
            SrvRecord(rd.priority, rd.weight, rd.port, to_text(rd.target) or ".")
            for rd in outcome.rdatas
            if isinstance(rd, dns.rdtypes.IN.SRV.SRV)
        )

    def clear_cache(self) -> None:
        """Forget every cached answer (e.g. after a configuration reload)."""
        self._cache.clear()

    async def _lookup(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Outcome:
        key: _Key = (qname, rdtype)
        outcome = self._cache.get(key)
        if outcome is None:
            outcome = await self._query(qname, rdtype)
            self._cache.put(key, outcome, outcome.ttl)
        if outcome.nxdomain:
            raise DnsNxDomain(to_text(qname))
        return outcome

    async def _query(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Outcome:
        where = f"{to_text(qname)}/{rdtype.name}"
        try:
            async with asyncio.timeout(self._lifetime + LIFETIME_GRACE_S):
                answer = await self._resolver.resolve(
                    qname, rdtype, raise_on_no_answer=False, search=False
                )
        except dns.resolver.NXDOMAIN as exc:
            return _Outcome((), True, _nxdomain_ttl(exc))
        except dns.resolver.YXDOMAIN as exc:
            raise DnsPermError(f"YXDOMAIN for {where}") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsTempError(f"no nameserver answered {where} (SERVFAIL/REFUSED)") from exc
        except (TimeoutError, dns.exception.Timeout) as exc:
            raise DnsTempError(f"DNS timeout for {where}") from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsTempError(f"DNS failure for {where}: {exc}") from exc
        return _answer_outcome(answer, where)


def _answer_outcome(answer: dns.resolver.Answer, where: str) -> _Outcome:
    minimum_ttl = answer.chaining_result.minimum_ttl
    if answer.rrset is None:
        return _Outcome((), False, min(minimum_ttl, DNS_NEGATIVE_TTL_MAX_S))
    if len(answer.rrset) > DNS_RRSET_RECORDS_MAX:
        raise DnsPermError(f"{where}: {len(answer.rrset)} records exceed {DNS_RRSET_RECORDS_MAX}")
    return _Outcome(tuple(answer.rrset), False, min(minimum_ttl, DNS_CACHE_TTL_MAX_S))


def _nxdomain_ttl(exc: dns.resolver.NXDOMAIN) -> int:
    """Negative TTL of an NXDOMAIN, from the SOA in its response; 0 when unknown.

    Spec: RFC 2308 §5.
    """
    ttls: list[int] = []
    responses: object = exc.kwargs.get("responses")
    if not isinstance(responses, dict):
        return 0
    for response in responses.values():
        if isinstance(response, dns.message.QueryMessage):
            try:
                ttls.append(response.resolve_chaining().minimum_ttl)
            except dns.exception.DNSException:
                continue
    return min([*ttls, DNS_NEGATIVE_TTL_MAX_S]) if ttls else 0


def _build_resolver(
    nameservers: Sequence[tuple[str, int]] | None, timeout: float, lifetime: float
) -> dns.asyncresolver.Resolver:
    try:
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
    except dns.exception.DNSException as exc:
        raise ConfigError(f"cannot read the system resolver configuration: {exc}") from exc
    if nameservers is not None:
        if not nameservers:
            raise ConfigError("[dns] nameservers must not be empty")
        try:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers
            ]
        except ValueError as exc:
            raise ConfigError(f"[dns] nameservers: {exc}") from exc
    resolver.timeout = timeout
    resolver.lifetime = lifetime
    resolver.retry_servfail = False
    resolver.cache = None
    resolver.use_edns(0, 0, DNS_EDNS_PAYLOAD)
    return resolver
