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
``NoNameservers`` (SERVFAIL, REFUSED, network   ``DnsTempError`` (cached for
                                                ``temperror_ttl``, 5 s by default)
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

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
from postel.resolver.addresses import canonical_ip, parse_ip
from postel.resolver.api import (
    DNS_CACHE_ENTRIES_MAX,
    DNS_CACHE_TTL_MAX_S,
    DNS_EDNS_PAYLOAD,
    DNS_LIFETIME_S,
    DNS_NEGATIVE_TTL_MAX_S,
    DNS_RRSET_RECORDS_MAX,
    DNS_TEMPERROR_TTL_MAX_S,
    DNS_TEMPERROR_TTL_S,
    DNS_TIMEOUT_S,
    DnsError,
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

T = TypeVar("T")
_Key = tuple[str, str]
"""(record type, the name as given, lower-cased, without a trailing dot): a cache hit
needs no IDNA or dnspython name conversion."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One lookup result: records (empty for NODATA), NXDOMAIN or a temporary failure
    (``temperror``: its message)."""

    rdatas: tuple[dns.rdata.Rdata, ...]
    nxdomain: bool
    ttl: float
    temperror: str | None = None


@dataclass(frozen=True, slots=True)
class _Cached:
    """What a cache entry holds: the caller's typed answer, or the error to raise."""

    value: object
    error: tuple[type[DnsError], str] | None


class DnsPythonResolver:
    """``Resolver`` backed by ``dns.asyncresolver``; see the module table for outcomes.

    ``nameservers``: ``(address, port)`` pairs asked in order, or None for the system
    resolver (/etc/resolv.conf; ``ConfigError`` when it cannot be read). ``timeout`` is
    seconds per attempt, ``lifetime`` seconds per lookup, ``cache_size`` the cache's
    entry bound (0 disables it), ``temperror_ttl`` seconds a temporary failure is
    remembered (0: never). ``clock`` drives cache expiry only. The cache holds each
    method's typed answer under the name as given, so a hit costs one dictionary
    lookup; concurrent lookups of one uncached name share one query.

    Spec: RFC 1035 §7, RFC 2308 §5 §7.1, RFC 5321 §5.1, RFC 7208 §2.6.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        clock: Clock,
        timeout: float = DNS_TIMEOUT_S,
        lifetime: float = DNS_LIFETIME_S,
        cache_size: int = DNS_CACHE_ENTRIES_MAX,
        temperror_ttl: float = DNS_TEMPERROR_TTL_S,
    ) -> None:
        if timeout <= 0 or lifetime <= 0:
            raise ConfigError("DNS timeout and lifetime must be positive")
        if temperror_ttl < 0:
            raise ConfigError("DNS temperror_ttl must not be negative")
        self._resolver = _build_resolver(nameservers, timeout, lifetime)
        self._lifetime = lifetime
        self._temperror_ttl = min(temperror_ttl, DNS_TEMPERROR_TTL_MAX_S)
        self._cache: TtlCache[_Key, _Cached] = TtlCache(clock=clock, max_entries=cache_size)
        self._pending: dict[_Key, asyncio.Future[_Cached]] = {}
        """Lookups in flight, shared by every caller asking the same while they run."""

    async def mx(self, domain: str) -> MxAnswer:
        """MX records sorted by preference, null MX detected. Spec: RFC 5321 §5.1, RFC 7505 §3."""

        def typed(qname: dns.name.Name, outcome: _Outcome) -> MxAnswer:
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
            return MxAnswer(to_text(qname), records, null_mx, int(outcome.ttl))

        return await self._typed(domain, dns.rdatatype.MX, typed, MxAnswer)

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        """IPv4 addresses of ``name``. Spec: RFC 1035 §3.4.1."""

        def typed(_: dns.name.Name, outcome: _Outcome) -> tuple[IPv4Address, ...]:
            return tuple(
                IPv4Address(rd.address)
                for rd in outcome.rdatas
                if isinstance(rd, dns.rdtypes.IN.A.A)
            )

        return await self._typed(name, dns.rdatatype.A, typed, tuple)

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        """IPv6 addresses of ``name``. Spec: RFC 3596 §2.2."""

        def typed(_: dns.name.Name, outcome: _Outcome) -> tuple[IPv6Address, ...]:
            return tuple(
                IPv6Address(rd.address)
                for rd in outcome.rdatas
                if isinstance(rd, dns.rdtypes.IN.AAAA.AAAA)
            )

        return await self._typed(name, dns.rdatatype.AAAA, typed, tuple)

    async def txt(self, name: str) -> tuple[bytes, ...]:
        """TXT records, each record's strings joined. Spec: RFC 1035 §3.3.14, RFC 7208 §3.3."""

        def typed(_: dns.name.Name, outcome: _Outcome) -> tuple[bytes, ...]:
            return tuple(
                b"".join(rd.strings)
                for rd in outcome.rdatas
                if isinstance(rd, dns.rdtypes.ANY.TXT.TXT)
            )

        return await self._typed(name, dns.rdatatype.TXT, typed, tuple)

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        """PTR targets of ``ip``'s reverse name. Spec: RFC 1035 §3.5, RFC 3596 §2.5."""

        def typed(_: dns.name.Name, outcome: _Outcome) -> tuple[str, ...]:
            return tuple(
                to_text(rd.target)
                for rd in outcome.rdatas
                if isinstance(rd, dns.rdtypes.ANY.PTR.PTR)
            )

        return await self._typed(str(ip), dns.rdatatype.PTR, typed, tuple)

    async def srv(self, name: str) -> tuple[SrvRecord, ...]:
        """SRV records of ``name`` (e.g. ``_imaps._tcp.example.org``), in the order
        served. Spec: RFC 2782; RFC 6186 §3."""

        def typed(_: dns.name.Name, outcome: _Outcome) -> tuple[SrvRecord, ...]:
            return tuple(
                SrvRecord(rd.priority, rd.weight, rd.port, to_text(rd.target) or ".")
                for rd in outcome.rdatas
                if isinstance(rd, dns.rdtypes.IN.SRV.SRV)
            )

        return await self._typed(name, dns.rdatatype.SRV, typed, tuple)

    def prefetch(self, rdtype: str, name: str) -> None:
        """Start the lookup of (``rdtype``, ``name``) in the background unless its answer
        is cached or in flight, so that a later call finds it (``rdtype``: "TXT", "A",
        "AAAA", "MX", or "PTR" with the address as ``name``). Never raises; a failure
        is cached like any other answer."""
        lookup: Awaitable[object]
        if rdtype == "PTR":
            try:
                address = parse_ip(name)
            except ValueError:
                return
            name = canonical_ip(name)
        key: _Key = (rdtype, (name[:-1] if name.endswith(".") else name).lower())
        if key in self._pending or self._cache.get(key) is not None:
            return
        if rdtype == "PTR":
            lookup = self.ptr(address)
        elif rdtype in ("TXT", "A", "AAAA", "MX"):
            method = {"TXT": self.txt, "A": self.a, "AAAA": self.aaaa, "MX": self.mx}[rdtype]
            lookup = method(name)
        else:
            return
        asyncio.ensure_future(lookup).add_done_callback(_retrieve)

    def clear_cache(self) -> None:
        """Forget every cached answer (e.g. after a configuration reload)."""
        self._cache.clear()

    def expires_at(self, rdtype: str, name: str) -> float | None:
        """When (the clock's monotonic time) the cached answer, or cached failure, to
        (``rdtype``, ``name``) goes; None when none is cached ("PTR" takes the address
        as ``name``). The same time on two looks means the same answer (``Expiring``).
        Spec: RFC 1035 §7.4 (TTL), RFC 2308 §5."""
        if rdtype == "PTR":
            try:
                name = canonical_ip(name)
            except ValueError:
                return None
        return self._cache.expires_at((rdtype, (name[:-1] if name.endswith(".") else name).lower()))

    async def _typed(
        self,
        name: str,
        rdtype: dns.rdatatype.RdataType,
        typed: Callable[[dns.name.Name, _Outcome], T],
        kind: type,
    ) -> T:
        """The answer to (``name``, ``rdtype``) made by ``typed``, from the cache or
        one shared query; raises what the module table says."""
        key: _Key = (rdtype.name, (name[:-1] if name.endswith(".") else name).lower())
        cached = self._cache.get(key)
        if cached is None:
            task = self._pending.get(key)
            if task is None:
                task = asyncio.ensure_future(self._fill(key, name, rdtype, typed))
                task.add_done_callback(_retrieve)
                self._pending[key] = task
            cached = await asyncio.shield(task)
        if cached.error is not None:
            error, message = cached.error
            raise error(message)
        assert isinstance(cached.value, kind)
        return cached.value  # type: ignore[return-value]

    async def _fill(
        self,
        key: _Key,
        name: str,
        rdtype: dns.rdatatype.RdataType,
        typed: Callable[[dns.name.Name, _Outcome], T],
    ) -> _Cached:
        """One query whose answer every concurrent asker of ``key`` shares."""
        try:
            cached, ttl = await self._resolve(name, rdtype, typed)
            self._cache.put(key, cached, ttl)
            return cached
        finally:
            self._pending.pop(key, None)

    async def _resolve(
        self,
        name: str,
        rdtype: dns.rdatatype.RdataType,
        typed: Callable[[dns.name.Name, _Outcome], T],
    ) -> tuple[_Cached, float]:
        if rdtype == dns.rdatatype.PTR:
            qname = dns.reversename.from_address(name)
        else:
            qname = to_dns_name(name)
        outcome = await self._query(qname, rdtype)
        if outcome.temperror is not None:
            return _Cached(None, (DnsTempError, outcome.temperror)), self._temperror_ttl
        if outcome.nxdomain:
            return _Cached(None, (DnsNxDomain, to_text(qname))), outcome.ttl
        return _Cached(typed(qname, outcome), None), outcome.ttl

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
        except dns.resolver.NoNameservers:
            return _temperror(f"no nameserver answered {where} (SERVFAIL/REFUSED)")
        except (TimeoutError, dns.exception.Timeout):
            return _temperror(f"DNS timeout for {where}")
        except (dns.exception.DNSException, OSError) as exc:
            return _temperror(f"DNS failure for {where}: {exc}")
        return _answer_outcome(answer, where)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a shared lookup's exception retrieved (its askers may all be gone)."""
    if not task.cancelled():
        task.exception()


def _temperror(message: str) -> _Outcome:
    return _Outcome((), False, 0, message)


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
