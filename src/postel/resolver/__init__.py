"""DNS for postel: one injected ``Resolver`` (MX, A, AAAA, TXT, PTR) with typed answers.

Build ``DnsPythonResolver`` once in the composition root and pass it down; code that
needs DNS depends only on the ``Resolver`` protocol and the errors below.

Spec: RFC 1034 §5, RFC 1035 §7, RFC 2308 §5, RFC 5321 §5.1, RFC 7208 §2.6.
"""

from postel.resolver.api import (
    DNS_CACHE_ENTRIES_MAX,
    DNS_CACHE_TTL_MAX_S,
    DNS_EDNS_PAYLOAD,
    DNS_LIFETIME_S,
    DNS_NEGATIVE_TTL_MAX_S,
    DNS_RRSET_RECORDS_MAX,
    DNS_TIMEOUT_S,
    DnsError,
    DnsNxDomain,
    DnsPermError,
    DnsTempError,
    Expiring,
    MxAnswer,
    MxRecord,
    Prefetching,
    Resolver,
    SrvRecord,
)
from postel.resolver.dnspython_resolver import DnsPythonResolver
from postel.resolver.names import to_alabels

__all__ = [
    "DNS_CACHE_ENTRIES_MAX",
    "DNS_CACHE_TTL_MAX_S",
    "DNS_EDNS_PAYLOAD",
    "DNS_LIFETIME_S",
    "DNS_NEGATIVE_TTL_MAX_S",
    "DNS_RRSET_RECORDS_MAX",
    "DNS_TIMEOUT_S",
    "DnsError",
    "DnsNxDomain",
    "DnsPermError",
    "DnsPythonResolver",
    "DnsTempError",
    "Expiring",
    "MxAnswer",
    "MxRecord",
    "Prefetching",
    "Resolver",
    "SrvRecord",
    "to_alabels",
]
