"""A scripted ``Resolver`` answering from one scenario's ``zonedata`` of the openspf.org
SPF test suite (format: tests/spf/suite/README.md).

Semantics follow the suite's reference driver:

- names are case-insensitive; a name absent from the zone is NXDOMAIN, except names
  starting with ``error.``, which are a DNS error (``DnsTempError``);
- ``SPF:`` entries are copied as TXT records unless the name has a ``TXT:`` entry or an
  ``SPF: NONE``; TXT/SPF values given as lists are one record of several strings;
- a bare ``TIMEOUT`` entry makes a query time out unless a record of the queried type
  came before it in the list; ``<TYPE>: TIMEOUT`` makes queries of that type time out;
  ``NONE`` values are no record;
- CNAMEs are followed (bounded; a loop is a DNS error); an MX of ``""`` is the null MX.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from postel.resolver import DnsNxDomain, DnsTempError, MxAnswer, MxRecord

CNAME_CHAIN_MAX = 8
TIMEOUT = "TIMEOUT"
NONE = "NONE"

Entry = tuple[str, object] | str


def _name(name: str) -> str:
    return name.lower().rstrip(".")


def _entries(raw: Sequence[object]) -> list[Entry]:
    entries: list[Entry] = []
    spf_copies: list[Entry] = []
    generate = True
    for item in raw:
        if isinstance(item, str):
            entries.append(item)
            continue
        assert isinstance(item, Mapping)
        for rtype, value in item.items():
            if rtype == "TXT":
                generate = False
            if rtype == "SPF" and value == NONE:
                generate = False
            if rtype == "SPF" and value not in (NONE, TIMEOUT):
                spf_copies.append(("TXT", value))
            entries.append((rtype, value))
    if generate:
        entries.extend(spf_copies)
    return entries


def _txt_bytes(value: object) -> bytes:
    if isinstance(value, list):
        return "".join(str(v) for v in value).encode("utf-8")
    return str(value).encode("utf-8")


@dataclass
class SuiteResolver:
    """``postel.resolver.Resolver`` over ``zonedata`` (name -> list of entries)."""

    zonedata: Mapping[str, Sequence[object]]
    zones: dict[str, list[Entry]] = field(init=False)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.zones = {_name(n): _entries(v or []) for n, v in self.zonedata.items()}

    def _records(self, name: str, rtype: str, depth: int = 0) -> list[object]:
        name = _name(name)
        self.queries.append((name, rtype))
        entries = self.zones.get(name)
        if entries is None:
            if name.startswith("error."):
                raise DnsTempError(f"scripted DNS error for {name}")
            raise DnsNxDomain(name)
        answered = False
        found: list[object] = []
        cnames: list[str] = []
        for entry in entries:
            if entry == TIMEOUT:
                if not answered:
                    raise DnsTempError(f"scripted timeout for {name}/{rtype}")
                break
            assert isinstance(entry, tuple)
            etype, value = entry
            if value == NONE:
                continue
            if value == TIMEOUT:
                if etype == rtype:
                    raise DnsTempError(f"scripted timeout for {name}/{rtype}")
                continue
            if etype == rtype:
                answered = True
                found.append(value)
            elif etype == "CNAME":
                cnames.append(str(value))
        if found or not cnames:
            return found
        if depth >= CNAME_CHAIN_MAX:
            raise DnsTempError(f"CNAME chain too long at {name}")
        if not _name(cnames[0]):
            return []
        return self._records(cnames[0], rtype, depth + 1)

    async def mx(self, domain: str) -> MxAnswer:
        pairs = []
        for value in self._records(domain, "MX"):
            assert isinstance(value, list)
            pairs.append((int(value[0]), _name(str(value[1]))))
        null_mx = len(pairs) == 1 and pairs[0][1] == ""
        records = tuple(MxRecord(p, h) for p, h in sorted(pairs, key=lambda p: p[0]) if h)
        return MxAnswer(_name(domain), records, null_mx, 300)

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        return tuple(IPv4Address(str(v)) for v in self._records(name, "A"))

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        return tuple(IPv6Address(str(v)) for v in self._records(name, "AAAA"))

    async def txt(self, name: str) -> tuple[bytes, ...]:
        return tuple(_txt_bytes(v) for v in self._records(name, "TXT"))

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        reverse = ipaddress.ip_address(ip).reverse_pointer
        return tuple(_name(str(v)) for v in self._records(reverse, "PTR"))
