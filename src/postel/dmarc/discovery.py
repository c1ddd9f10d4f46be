"""DMARC Policy Discovery and the Organizational Domain, by the DNS Tree Walk.

DMARCbis replaces RFC 7489's public suffix list with a walk up the DNS: query
``_dmarc.<name>`` for a name and its parents, at most eight queries per walk (a name of
more than eight labels jumps from itself to its last seven labels), stopping at a
record with ``psd=y`` or ``psd=n``. No public suffix list is used anywhere (§4.10, §C.3).

``TreeWalker`` holds the answers of one evaluation (so walks that share parents ask
the DNS once per name) and offers:

* ``record_at(domain)``: the single valid DMARC Policy Record at ``_dmarc.<domain>``;
* ``walk(domain)``: the Tree Walk from ``domain``;
* ``organizational_domain(domain)``: the selection of §4.10.2 over that walk;
* ``discover_policy(author_domain)``: the record that applies, per §4.10.1.

DNS outcomes: NXDOMAIN and NODATA mean "no record"; a temporary DNS failure raises
``DmarcTempError``; another permanent failure (bad name, oversized answer) or a
DMARC record beyond the parser's bounds raises ``DmarcPermError``. TXT records that do
not start with ``v=DMARC1`` are discarded, and when more than one DMARC record is
published at a name all of them are (§4.10 step 2).

Spec: RFC 9989 (draft-ietf-dmarc-dmarcbis-41 §3.2.13, §4.10, §4.10.1, §4.10.2, §A.4,
§B.4); RFC 8020 §2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from postel.dmarc.record import (
    DmarcError,
    DmarcRecord,
    DmarcRecordError,
    PsdFlag,
    is_dmarc_record,
    parse_record,
)
from postel.resolver import DnsNxDomain, DnsPermError, DnsTempError, Resolver

DMARC_PARSED_RECORDS_MAX = 1024
"""Parsed DMARC records remembered by their text (the TXT answers are cached by the
resolver for their TTL); least recently used dropped first. Postel policy."""
_parse_record = functools.lru_cache(maxsize=DMARC_PARSED_RECORDS_MAX)(parse_record)
"""``parse_record`` of a record text seen before costs a dictionary lookup
(DmarcRecord is immutable; an error is raised afresh every time)."""

DMARC_TREE_WALK_QUERIES_MAX = 8
"""DNS queries in one Tree Walk; names longer than eight labels are shortened to seven
after the first query. Spec: DMARCbis §4.10 (steps 3-4, the eight-query example)."""
DMARC_NODE = "_dmarc"
"""The label prepended to a domain to find its DMARC Policy Record. Spec: DMARCbis §4.5."""


class DmarcTempError(DmarcError):
    """A transient DNS failure during discovery: temperror. Spec: DMARCbis §5.3.6."""


class DmarcPermError(DmarcError):
    """A permanent DNS failure (other than NXDOMAIN) or an unusable DMARC record during
    discovery: permerror. Spec: DMARCbis §5.3.6."""


class PolicyTag(StrEnum):
    """Which tag of the record gives the Domain Owner Assessment Policy: ``p`` for the
    Author Domain itself, ``sp`` for an existing subdomain, ``np`` for a non-existent
    one. Spec: DMARCbis §4.7, §4.10.1."""

    P = "p"
    SP = "sp"
    NP = "np"


@dataclass(frozen=True, slots=True)
class FoundRecord:
    """A valid DMARC Policy Record found at ``_dmarc.<domain>``. Spec: DMARCbis §4.10."""

    domain: str
    record: DmarcRecord


@dataclass(frozen=True, slots=True)
class TreeWalk:
    """One DNS Tree Walk: ``start``, the names ``queried`` in order (without the
    ``_dmarc`` label) and the records ``found`` (longest name first).

    Spec: DMARCbis §4.10.
    """

    start: str
    queried: tuple[str, ...]
    found: tuple[FoundRecord, ...]

    @property
    def organizational_domain(self) -> str:
        """The Organizational Domain of ``start``: the first record (longest first)
        with ``psd=n``; else one label below the first record other than the start's
        with ``psd=y``; else the record with the fewest labels; else ``start``.

        Spec: DMARCbis §4.10.2.
        """
        for found in self.found:
            if found.record.psd is PsdFlag.NO:
                return found.domain
            if found.record.psd is PsdFlag.YES and found.domain != self.start:
                return _one_label_below(self.start, found.domain)
        if self.found:
            return self.found[-1].domain
        return self.start

    def record_of(self, domain: str) -> DmarcRecord | None:
        """The record found at ``domain`` in this walk, if any."""
        for found in self.found:
            if found.domain == domain:
                return found.record
        return None


@dataclass(frozen=True, slots=True)
class PolicyDiscovery:
    """The DMARC Policy Record that applies to ``author_domain`` (DMARC applies when
    ``record`` is not None): ``policy_domain`` is where it was found (the Author Domain,
    its Organizational Domain or its Public Suffix Domain); ``subdomain`` is True when
    the Author Domain is below the policy domain (``sp``/``np`` apply); ``walk`` is the
    Tree Walk when one was needed.

    Spec: DMARCbis §4.10.1.
    """

    author_domain: str
    record: DmarcRecord | None
    policy_domain: str | None
    subdomain: bool
    walk: TreeWalk | None = None


def tree_walk_targets(domain: str) -> tuple[str, ...]:
    """The names a Tree Walk from ``domain`` queries, in order: ``domain``; then, for a
    name of eight labels or more, its last seven labels, else its parent; then each
    parent up to the single-label name. At most ``DMARC_TREE_WALK_QUERIES_MAX``.

    Spec: DMARCbis §4.10 steps 1-7 and the example after them.
    """
    labels = domain.split(".")
    targets = [domain]
    keep = min(len(labels) - 1, DMARC_TREE_WALK_QUERIES_MAX - 1)
    while keep >= 1:
        targets.append(".".join(labels[-keep:]))
        keep -= 1
    return tuple(targets)


def _one_label_below(start: str, ancestor: str) -> str:
    """The name one label below ``ancestor`` on the way to ``start``. Spec: §4.10.2."""
    keep = ancestor.count(".") + 2
    return ".".join(start.split(".")[-keep:])


def is_subdomain(child: str, parent: str) -> bool:
    """True when ``child`` is strictly below ``parent`` (both lower-case A-labels)."""
    return child.endswith("." + parent)


class TreeWalker:
    """DMARC record lookups for one evaluation over an injected ``Resolver``.

    Answers (records, absences and DNS errors) are remembered per name for the
    lifetime of the object, so build one per message. ``queries`` counts the DNS
    queries made.

    Spec: DMARCbis §4.10, §4.10.1, §4.10.2.
    """

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        self._answers: dict[str, DmarcRecord | DmarcError | None] = {}
        self._walks: dict[str, TreeWalk] = {}
        self.queries = 0

    async def record_at(self, domain: str) -> DmarcRecord | None:
        """The one valid DMARC Policy Record at ``_dmarc.<domain>``, or None (no TXT
        record starts with ``v=DMARC1``, or several do, or the name does not exist).

        Raises ``DmarcTempError`` or ``DmarcPermError``. Spec: DMARCbis §4.10 steps 1-2.
        """
        if domain not in self._answers:
            try:
                self._answers[domain] = await self._fetch(domain)
            except DmarcError as exc:
                self._answers[domain] = exc
        answer = self._answers[domain]
        if isinstance(answer, DmarcError):
            raise answer
        return answer

    async def _fetch(self, domain: str) -> DmarcRecord | None:
        self.queries += 1
        name = f"{DMARC_NODE}.{domain}"
        try:
            texts = await self._resolver.txt(name)
        except DnsNxDomain:
            return None
        except DnsTempError as exc:
            raise DmarcTempError(f"DNS temporary failure for {name}: {exc}") from exc
        except DnsPermError as exc:
            raise DmarcPermError(f"DNS permanent failure for {name}: {exc}") from exc
        candidates = [text for text in texts if is_dmarc_record(text)]
        if len(candidates) != 1:
            return None
        try:
            return _parse_record(candidates[0])
        except DmarcRecordError as exc:
            raise DmarcPermError(f"unusable DMARC record at {name}: {exc.reason}") from exc

    async def walk(self, start: str) -> TreeWalk:
        """The DNS Tree Walk from ``start`` (a lower-case A-label name), stopping after
        a record with ``psd=y`` or ``psd=n``. Raises ``DmarcTempError`` or
        ``DmarcPermError`` when a query along the way fails.

        Spec: DMARCbis §4.10.
        """
        if start in self._walks:
            return self._walks[start]
        queried: list[str] = []
        found: list[FoundRecord] = []
        for target in tree_walk_targets(start):
            queried.append(target)
            record = await self.record_at(target)
            if record is None:
                continue
            found.append(FoundRecord(target, record))
            if record.psd in (PsdFlag.YES, PsdFlag.NO):
                break
        walk = TreeWalk(start, tuple(queried), tuple(found))
        self._walks[start] = walk
        return walk

    def has_walked(self, start: str) -> bool:
        """True when a complete Tree Walk from ``start`` is already known."""
        return start in self._walks

    async def organizational_domain(self, domain: str) -> str:
        """The Organizational Domain of ``domain``. Spec: DMARCbis §4.10.2."""
        return (await self.walk(domain)).organizational_domain

    async def discover_policy(self, author_domain: str) -> PolicyDiscovery:
        """The DMARC Policy Record for ``author_domain``: its own record if it has one;
        else, after a Tree Walk, the record of its Organizational Domain, else that of
        its Public Suffix Domain (a ``psd=y`` record); else none (DMARC does not apply).

        Raises ``DmarcTempError`` or ``DmarcPermError``. Spec: DMARCbis §4.10.1.
        """
        own = await self.record_at(author_domain)
        if own is not None:
            return PolicyDiscovery(author_domain, own, author_domain, subdomain=False)
        walk = await self.walk(author_domain)
        if not walk.found:
            return PolicyDiscovery(author_domain, None, None, subdomain=False, walk=walk)
        org = walk.organizational_domain
        record = walk.record_of(org)
        policy_domain = org
        if record is None:
            psd = next((f for f in walk.found if f.record.psd is PsdFlag.YES), None)
            if psd is None:
                return PolicyDiscovery(author_domain, None, None, subdomain=False, walk=walk)
            record, policy_domain = psd.record, psd.domain
        return PolicyDiscovery(
            author_domain,
            record,
            policy_domain,
            subdomain=is_subdomain(author_domain, policy_domain),
            walk=walk,
        )

    async def exists(self, domain: str) -> bool:
        """False when ``domain`` does not exist (NXDOMAIN); any other answer, NODATA
        included, means it exists. Raises ``DmarcTempError`` or ``DmarcPermError``.

        Spec: DMARCbis §3.2.13, §A.4; RFC 8020 §2; RFC 2308 §2.1-§2.2.
        """
        self.queries += 1
        try:
            await self._resolver.a(domain)
        except DnsNxDomain:
            return False
        except DnsTempError as exc:
            raise DmarcTempError(f"DNS temporary failure for {domain}: {exc}") from exc
        except DnsPermError as exc:
            raise DmarcPermError(f"DNS permanent failure for {domain}: {exc}") from exc
        return True
