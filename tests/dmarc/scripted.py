"""A scripted in-memory ``Resolver`` for DMARC unit tests: TXT answers per name,
NXDOMAIN for names absent from the script, errors on request, every query recorded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address

from postel.resolver import DnsNxDomain, DnsPermError, DnsTempError, MxAnswer

Answer = tuple[bytes, ...] | DnsTempError | DnsPermError


class ScriptedResolver:
    """``txt`` answers from ``records`` (name -> TXT strings or an error to raise);
    ``existing`` names answer NODATA for A queries, other names NXDOMAIN unless they
    hold a TXT record or are a parent of one. ``queries`` lists ``(type, name)``."""

    def __init__(
        self, records: Mapping[str, Iterable[str] | Exception], existing: Iterable[str] = ()
    ) -> None:
        self.records: dict[str, Answer] = {}
        for name, value in records.items():
            if isinstance(value, DnsTempError | DnsPermError):
                self.records[name] = value
            else:
                assert not isinstance(value, Exception)
                self.records[name] = tuple(v.encode() for v in value)
        self.existing = set(existing)
        self.queries: list[tuple[str, str]] = []

    def _exists(self, name: str) -> bool:
        names = set(self.records) | self.existing
        return any(n == name or n.endswith("." + name) for n in names)

    async def txt(self, name: str) -> tuple[bytes, ...]:
        self.queries.append(("TXT", name))
        answer = self.records.get(name)
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            if self._exists(name):
                return ()
            raise DnsNxDomain(name)
        return answer

    async def a(self, name: str) -> tuple[IPv4Address, ...]:
        self.queries.append(("A", name))
        answer = self.records.get(name)
        if isinstance(answer, Exception):
            raise answer
        if self._exists(name):
            return ()
        raise DnsNxDomain(name)

    async def aaaa(self, name: str) -> tuple[IPv6Address, ...]:
        raise AssertionError("DMARC does not ask for AAAA")

    async def mx(self, domain: str) -> MxAnswer:
        raise AssertionError("DMARC does not ask for MX")

    async def ptr(self, ip: IPv4Address | IPv6Address) -> tuple[str, ...]:
        raise AssertionError("DMARC does not ask for PTR")

    @property
    def txt_names(self) -> list[str]:
        """The TXT names queried, in order."""
        return [name for kind, name in self.queries if kind == "TXT"]
