"""The DNS resolver protocol, its typed answers, its errors and its bounds.

Every lookup ends in exactly one of four outcomes, and callers branch on them:

=================  ==========================================  ===========================
DNS outcome        what the resolver does                       typical caller reaction
=================  ==========================================  ===========================
answer (RCODE 0)   returns the records                          use them
NODATA (RCODE 0,   returns an empty tuple (``MxAnswer`` with    SPF: void lookup; MX: use
no RR of the type) ``records == ()`` and ``null_mx`` False)     the implicit MX (A/AAAA)
NXDOMAIN (RCODE 3) raises ``DnsNxDomain`` (a ``DnsPermError``)  SPF: void lookup / none;
                                                                MX delivery: bounce (5.1.2)
SERVFAIL, REFUSED, raises ``DnsTempError``                      SPF: temperror; MX
timeout, network                                                delivery: defer (4.4.3)
=================  ==========================================  ===========================

Other permanent problems (a name that is not a valid domain name, an answer larger
than the bounds below, YXDOMAIN) raise ``DnsPermError``.

Names are returned in A-label form, lower case, without the trailing dot.

Spec: RFC 1035 §4.1.1, RFC 2308 §1-§2, RFC 7208 §2.6 §4.4 §4.6.4, RFC 5321 §5.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol, runtime_checkable

from postel.errors import PermanentFailure, PostelError, TemporaryFailure

# --- Bounds (owned by the resolver package) ----------------------------------------
DNS_TIMEOUT_S = 5.0
"""Seconds to wait for one nameserver's reply to one query attempt.
Spec: RFC 1035 §7.2 (retransmission), RFC 7208 §4.6.4 (at least 20 s for a whole SPF check)."""
DNS_LIFETIME_S = 10.0
"""Seconds one lookup may take in total, across retries and nameservers.
Spec: RFC 1123 §6.1.3.3 (resolvers must bound the total time), RFC 7208 §4.6.4."""
DNS_RRSET_RECORDS_MAX = 100
"""Records accepted in one RRset; a larger answer is a ``DnsPermError``.
Postel policy; the message itself is bounded to 65535 octets. Spec: RFC 1035 §4.2.2."""
DNS_CACHE_ENTRIES_MAX = 4096
"""Entries held by the answer cache (least recently used dropped first). Postel policy."""
DNS_CACHE_TTL_MAX_S = 86400
"""Positive answers are cached at most this long, whatever their TTL.
Spec: RFC 2181 §8, RFC 8767 §4 (cap TTLs; that RFC suggests 7 days, postel uses 1 day)."""
DNS_NEGATIVE_TTL_MAX_S = 3600
"""NXDOMAIN and NODATA answers are cached at most this long.
Spec: RFC 2308 §5 (negative TTL = min(SOA TTL, SOA MINIMUM); one to three hours advised)."""
DNS_TEMPERROR_TTL_S = 5.0
"""Seconds a temporary failure (SERVFAIL, REFUSED, timeout) is remembered, so a broken
zone costs one query per name every few seconds rather than one per message.
Spec: RFC 2308 §7.1 (a server failure MAY be cached), §7.2 (dead servers)."""
DNS_TEMPERROR_TTL_MAX_S = 300
"""Longest a temporary failure may be remembered. Spec: RFC 2308 §7.1 (MUST NOT be
cached for longer than five minutes)."""
DNS_EDNS_PAYLOAD = 1232
"""EDNS(0) UDP payload size advertised; larger answers come over TCP.
Spec: RFC 6891 §6.2.5 (value from the DNS Flag Day 2020 recommendation)."""


# --- Errors --------------------------------------------------------------------------
class DnsError(PostelError):
    """A DNS lookup did not produce records. Spec: RFC 1035 §4.1.1."""


class DnsTempError(DnsError, TemporaryFailure):
    """SERVFAIL, REFUSED, timeout or network failure: the same lookup may work later.

    Spec: RFC 7208 §2.6.6 (temperror), RFC 5321 §4.5.4.1 (defer), RFC 2308 §7.
    """


class DnsPermError(DnsError, PermanentFailure):
    """The lookup cannot succeed unchanged: bad name, oversized answer, YXDOMAIN.

    Spec: RFC 1035 §2.3.4, RFC 6672 §2.2.
    """


class DnsNxDomain(DnsPermError):
    """The name does not exist (RCODE 3, NXDOMAIN). ``name`` is the queried name.

    Spec: RFC 1035 §4.1.1, RFC 2308 §2.1, RFC 8020 §2.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"NXDOMAIN: {name}")


# --- Answers -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MxRecord:
    """One MX record: ``preference`` (0-65535, lower first) and ``exchange`` (A-label host).

    Spec: RFC 1035 §3.3.9, RFC 5321 §5.1.
    """

    preference: int
    exchange: str


@dataclass(frozen=True, slots=True)
class MxAnswer:
    """The MX RRset of ``domain``, ``records`` sorted by preference (ties keep DNS order).

    ``null_mx`` is True when the RRset is the single record ``0 .``: the domain accepts
    no mail. Records whose exchange is the root are never in ``records``. Both empty
    and not ``null_mx`` means NODATA: deliver to the implicit MX (the domain's A/AAAA).
    ``ttl`` is the seconds the answer may be reused (the smallest TTL along the chain).

    Spec: RFC 5321 §5.1, RFC 7505 §3-§4.
    """

    domain: str
    records: tuple[MxRecord, ...]
    null_mx: bool
    ttl: int

    @property
    def nodata(self) -> bool:
        """True when the domain exists but has no MX record. Spec: RFC 2308 §2.2."""
        return not self.records and not self.null_mx


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV record: ``target`` without the trailing dot, ``"."`` meaning "service not
    offered here". Spec: RFC 2782; RFC 6186 §4."""

    priority: int
    weight: int
    port: int
    target: str

    def __str__(self) -> str:
        target = "." if self.target == "." else self.target + "."
        return f"{self.priority} {self.weight} {self.port} {target}"


# --- Protocol ------------------------------------------------------------------------
class Resolver(Protocol):
    """The one DNS interface postel uses; implementations are injected.

    Names are ``str`` in U-label or A-label form, with or without the trailing dot.
    Every method raises ``DnsNxDomain``, ``DnsTempError`` or ``DnsPermError`` as in the
    module table and returns an empty tuple for NODATA.

    Spec: RFC 1034 §5, RFC 1035 §3.3, RFC 5890 §2.3.2.1.
    """

    async def mx(self, domain: str) -> MxAnswer:
        """MX records of ``domain``. Spec: RFC 5321 §5.1, RFC 7505 §3."""
        ...

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        """IPv4 addresses of ``name`` (CNAMEs followed). Spec: RFC 1035 §3.4.1."""
        ...

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        """IPv6 addresses of ``name`` (CNAMEs followed). Spec: RFC 3596 §2.2."""
        ...

    async def txt(self, name: str) -> tuple[bytes, ...]:
        """TXT records of ``name``, each record's character-strings concatenated.

        Spec: RFC 1035 §3.3.14, RFC 7208 §3.3.
        """
        ...

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        """Names in the PTR records of ``ip``'s in-addr.arpa / ip6.arpa name.

        Spec: RFC 1035 §3.5, RFC 3596 §2.5.
        """
        ...


@runtime_checkable
class Expiring(Protocol):
    """A caching resolver that says which answer it holds until when: a result computed
    from its answers (an SPF evaluation) may be reused while every one of them is
    still the one held."""

    def expires_at(self, rdtype: str, name: str) -> float | None:
        """When the cached answer to (``rdtype``, ``name``) goes (the resolver clock's
        monotonic time), None when none is cached ("PTR" takes the address as
        ``name``); the same time on two looks means the same answer."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """A resolver that can start a lookup without waiting for it (the caching one)."""

    def prefetch(self, rdtype: str, name: str) -> None:
        """Start looking up ``name`` (``rdtype``: "TXT", "A", "AAAA", "MX" or "PTR",
        whose name is the address) unless the answer is cached or already being
        looked up; returns at once and never raises."""
        ...
