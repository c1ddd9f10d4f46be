"""``check_host()``: SPF evaluation over the injected ``Resolver``.

The record grammar and macros are pure (``record``, ``macro``); this module adds the
DNS queries, the processing limits of §4.6.4 (counted across nested include and
redirect evaluations), the time budget, and the explanation of a ``fail``.

DNS outcomes map as RFC 7208 §2.6, §4.4, §5 say: ``DnsTempError`` is temperror (except
in ``ptr`` and ``%{p}`` validation, which skip the name), NXDOMAIN and NODATA are void
lookups (no match), and any other ``DnsPermError`` is treated like NXDOMAIN.

Spec: RFC 7208 §4, §5, §6, §7.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from postel.clock import Clock
from postel.resolver.api import DnsError, DnsNxDomain, DnsPermError, DnsTempError, Resolver
from postel.resolver.derived import DerivedCache
from postel.spf.errors import SpfError, SpfPermError, SpfSyntaxError, SpfTempError
from postel.spf.macro import (
    MacroContext,
    MacroString,
    expand_domain,
    expand_explanation,
    parse_macro_string,
    valid_query_name,
)
from postel.spf.record import (
    Mechanism,
    MechanismKind,
    Qualifier,
    Record,
    is_spf_record,
    parse_record,
)
from postel.spf.result import Result, SpfLimits, SpfResult

_T = TypeVar("_T")

SPF_PARSED_RECORDS_MAX = 1024
"""Parsed SPF records remembered by their text (the TXT answers themselves are cached
by the resolver for their TTL); least recently used dropped first. Postel policy."""
_parse_record = functools.lru_cache(maxsize=SPF_PARSED_RECORDS_MAX)(parse_record)
"""``parse_record`` of a record text seen before costs a dictionary lookup (Record is
immutable; a syntax error is raised afresh every time)."""
IpAddress = IPv4Address | IPv6Address

_QUALIFIER_RESULT = {
    Qualifier.PASS: Result.PASS,
    Qualifier.FAIL: Result.FAIL,
    Qualifier.SOFTFAIL: Result.SOFTFAIL,
    Qualifier.NEUTRAL: Result.NEUTRAL,
}


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The result of evaluating one domain's record, with the pending explanation."""

    result: Result
    reason: str
    mechanism: str | None = None
    exp: tuple[MacroContext, MacroString] | None = None


async def check_host(
    ip: IpAddress,
    domain: str,
    sender: str,
    *,
    helo: str,
    resolver: Resolver,
    clock: Clock,
    limits: SpfLimits | None = None,
    receiver: str = "unknown",
) -> SpfResult:
    """Evaluate the SPF policy of ``domain`` for a message from ``ip``.

    ``sender`` is the <sender> (MAIL FROM, or ``postmaster@<helo>``; an empty
    local-part reads as "postmaster"), ``helo`` the HELO/EHLO name (``%{h}``),
    ``receiver`` the receiving host (``%{r}``), ``clock`` gives ``%{t}``. An
    IPv4-mapped IPv6 ``ip`` is checked as IPv4. Never raises for bad DNS data or
    records: every problem is a result. The check ends with temperror after
    ``limits.timeout_s`` seconds.

    Spec: RFC 7208 §4 (check_host), §4.6.4 (limits), §5, §6.2, §7.
    """
    result, _ = await _check_host(
        ip,
        domain,
        sender,
        helo=helo,
        resolver=resolver,
        clock=clock,
        limits=limits,
        receiver=receiver,
    )
    return result


async def _check_host(
    ip: IpAddress,
    domain: str,
    sender: str,
    *,
    helo: str,
    resolver: Resolver,
    clock: Clock,
    limits: SpfLimits | None,
    receiver: str,
) -> tuple[SpfResult, bool]:
    """``check_host``, and whether the result read the current time (``%{t}``)."""
    limits = limits or SpfLimits()
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    local_part, _, sender_domain = sender.rpartition("@") if "@" in sender else ("", "", sender)
    local_part = local_part or "postmaster"
    ctx = MacroContext(
        sender=f"{local_part}@{sender_domain}",
        local_part=local_part,
        sender_domain=sender_domain,
        domain=_normalise(domain),
        ip=ip,
        helo=helo,
        receiver=receiver,
        timestamp=int(clock.now().timestamp()),
    )
    evaluation = _Evaluation(resolver, limits, ctx)
    try:
        async with asyncio.timeout(limits.timeout_s):
            outcome = await evaluation.check(ctx.domain, ())
            explanation = None
            if outcome.result is Result.FAIL and outcome.exp is not None:
                explanation = await evaluation.explain(*outcome.exp)
    except TimeoutError:
        reason = f"time budget of {limits.timeout_s:g} s exceeded"
        return SpfResult(Result.TEMPERROR, ctx.domain, reason), True
    result = SpfResult(outcome.result, ctx.domain, outcome.reason, explanation, outcome.mechanism)
    return result, evaluation.timed


async def check_mail_from(
    ip: IpAddress,
    mail_from: str,
    *,
    helo: str,
    resolver: Resolver,
    clock: Clock,
    limits: SpfLimits | None = None,
    receiver: str = "unknown",
) -> SpfResult:
    """Check the MAIL FROM identity: ``mail_from`` is the reverse-path without angle
    brackets, "" for the null reverse-path (then ``postmaster@<helo>`` is checked).

    Spec: RFC 7208 §2.4, §4.1.
    """
    if not mail_from:
        return await check_helo(
            ip, helo, resolver=resolver, clock=clock, limits=limits, receiver=receiver
        )
    domain = mail_from.rpartition("@")[2]
    return await check_host(
        ip,
        domain,
        mail_from,
        helo=helo,
        resolver=resolver,
        clock=clock,
        limits=limits,
        receiver=receiver,
    )


async def check_helo(
    ip: IpAddress,
    helo: str,
    *,
    resolver: Resolver,
    clock: Clock,
    limits: SpfLimits | None = None,
    receiver: str = "unknown",
) -> SpfResult:
    """Check the HELO/EHLO identity: <domain> is ``helo``, <sender> is
    ``postmaster@<helo>``. A HELO that is not a domain name (an address literal, a
    single label) gives ``none``. Spec: RFC 7208 §2.3, §4.3.
    """
    return await check_host(
        ip,
        helo,
        f"postmaster@{helo}",
        helo=helo,
        resolver=resolver,
        clock=clock,
        limits=limits,
        receiver=receiver,
    )


def _normalise(domain: str) -> str:
    return (domain[:-1] if domain.endswith(".") else domain).lower()


_QUERY_NAME_CHARS = re.compile(r"[\x21-\x5a\x5c-\x7e\u0080-\U0010ffff]+")
"""Visible ASCII but "[" (a domain literal), or any non-ASCII character."""


def _valid_domain(domain: str) -> bool:
    """A multi-label domain name usable in a query. Spec: RFC 7208 §4.3."""
    if not valid_query_name(domain) or "." not in domain:
        return False
    return _QUERY_NAME_CHARS.fullmatch(domain) is not None


def _is_within(name: str, domain: str) -> bool:
    name, domain = _normalise(name), _normalise(domain)
    return name == domain or name.endswith("." + domain)


def _in_prefix(ip: IpAddress, address: IpAddress, cidr4: int, cidr6: int) -> bool:
    if ip.version != address.version:
        return False
    shift = address.max_prefixlen - (cidr4 if address.version == 4 else cidr6)
    return int(ip) >> shift == int(address) >> shift


@dataclass(slots=True)
class _Evaluation:
    """The state of one check: counters shared by nested evaluations, cached %{p}."""

    resolver: Resolver
    limits: SpfLimits
    ctx: MacroContext
    lookups: int = 0
    voids: int = 0
    validated: dict[str, str] = field(default_factory=dict)
    timed: bool = False
    """A macro read the current time (``%{t}``): the result holds for this moment only."""

    async def check(self, domain: str, chain: tuple[str, ...]) -> _Outcome:
        """Evaluate ``domain``'s record; ``chain`` the domains whose evaluation led here."""
        if not _valid_domain(domain):
            return _Outcome(Result.NONE, f"{domain!r} is not a valid domain name")
        try:
            record = await self._record(domain)
            if record is None:
                return _Outcome(Result.NONE, f"{domain}: no SPF record")
            return await self._evaluate(record, domain, chain)
        except SpfTempError as exc:
            return _Outcome(Result.TEMPERROR, exc.reason)
        except (SpfPermError, SpfSyntaxError) as exc:
            return _Outcome(Result.PERMERROR, f"{domain}: {exc.reason}")

    async def _record(self, domain: str) -> Record | None:
        """The one SPF record of ``domain``. Spec: RFC 7208 §4.4, §4.5."""
        txts = await self._dns(self.resolver.txt(domain), f"{domain}/TXT")
        records = [txt for txt in txts or () if is_spf_record(txt)]
        if not records:
            return None
        if len(records) > 1:
            raise SpfPermError(f"{len(records)} SPF records")
        return _parse_record(records[0])

    async def _evaluate(self, record: Record, domain: str, chain: tuple[str, ...]) -> _Outcome:
        """Spec: RFC 7208 §4.6.2, §4.7, §6.1."""
        ctx = (
            self.ctx if domain == self.ctx.domain else dataclasses.replace(self.ctx, domain=domain)
        )
        for mechanism in record.mechanisms:
            if await self._matches(mechanism, ctx, chain):
                result = _QUALIFIER_RESULT[mechanism.qualifier]
                exp = (ctx, record.exp) if record.exp is not None else None
                return _Outcome(result, f"{domain}: {mechanism.text}", mechanism.text, exp)
        if record.redirect is None:
            return _Outcome(Result.NEUTRAL, f"{domain}: no mechanism matched")
        self._count_lookup()
        target = await self._target(record.redirect, ctx) or ""
        if _normalise(target) in (*chain, domain):
            raise SpfPermError(f"redirect loop to {target}")
        outcome = await self.check(_normalise(target), (*chain, domain))
        if outcome.result is Result.NONE:
            raise SpfPermError(f"redirect={target}: {outcome.reason}")
        return outcome

    async def _matches(
        self, mechanism: Mechanism, ctx: MacroContext, chain: tuple[str, ...]
    ) -> bool:
        """Spec: RFC 7208 §5.1-§5.7."""
        kind = mechanism.kind
        if kind is MechanismKind.ALL:
            return True
        if kind in (MechanismKind.IP4, MechanismKind.IP6):
            return mechanism.network is not None and ctx.ip in mechanism.network
        self._count_lookup()
        name = ctx.domain
        if mechanism.target is not None:
            target = await self._target(mechanism.target, ctx)
            if target is None and kind is not MechanismKind.INCLUDE:
                return False
            name = target or ""
        if kind is MechanismKind.INCLUDE:
            return await self._include(_normalise(name), ctx.domain, chain)
        if kind is MechanismKind.A:
            return await self._a(name, mechanism)
        if kind is MechanismKind.MX:
            return await self._mx(name, mechanism)
        if kind is MechanismKind.PTR:
            return await self._ptr(name)
        answer = await self._dns(self.resolver.a(name), f"{name}/A")
        self._void_unless(answer)
        return bool(answer)

    async def _include(self, name: str, domain: str, chain: tuple[str, ...]) -> bool:
        """Spec: RFC 7208 §5.2 (the result table)."""
        if name in (*chain, domain):
            raise SpfPermError(f"include loop to {name}")
        outcome = await self.check(name, (*chain, domain))
        if outcome.result is Result.TEMPERROR:
            raise SpfTempError(outcome.reason)
        if outcome.result is Result.PERMERROR:
            raise SpfPermError(outcome.reason)
        if outcome.result is Result.NONE:
            raise SpfPermError(f"include:{name}: {outcome.reason}")
        return outcome.result is Result.PASS

    async def _a(self, name: str, mechanism: Mechanism) -> bool:
        """Spec: RFC 7208 §5.3."""
        addresses = await self._addresses(name)
        self._void_unless(addresses)
        return any(
            _in_prefix(self.ctx.ip, a, mechanism.cidr4, mechanism.cidr6) for a in addresses or ()
        )

    async def _mx(self, name: str, mechanism: Mechanism) -> bool:
        """Spec: RFC 7208 §5.4, §4.6.4."""
        answer = await self._dns(self.resolver.mx(name), f"{name}/MX")
        if answer is None or answer.nodata:
            self._void()
            return False
        if len(answer.records) > self.limits.mx_names:
            raise SpfPermError(f"{name} has more than {self.limits.mx_names} MX records")
        for record in answer.records:
            addresses = await self._addresses(record.exchange)
            if any(
                _in_prefix(self.ctx.ip, a, mechanism.cidr4, mechanism.cidr6)
                for a in addresses or ()
            ):
                return True
        return False

    async def _ptr(self, target: str) -> bool:
        """Spec: RFC 7208 §5.5."""
        try:
            names = await self.resolver.ptr(self.ctx.ip)
        except DnsNxDomain:
            names = ()
        except DnsError:
            return False
        self._void_unless(names)
        for name in names[: self.limits.ptr_names]:
            if _is_within(name, target) and await self._validates(name):
                return True
        return False

    async def _validates(self, name: str) -> bool:
        """True when ``name``'s addresses include the client's. Spec: RFC 7208 §5.5."""
        try:
            if isinstance(self.ctx.ip, IPv4Address):
                return self.ctx.ip in await self.resolver.a(name)
            return self.ctx.ip in await self.resolver.aaaa(name)
        except DnsError:
            return False

    async def _validated_domain(self, domain: str) -> str:
        """The ``%{p}`` value for ``domain``. Spec: RFC 7208 §7.3."""
        if domain in self.validated:
            return self.validated[domain]
        try:
            names = (await self.resolver.ptr(self.ctx.ip))[: self.limits.ptr_names]
        except DnsError:
            names = ()
        ranked = sorted(names, key=lambda n: (_normalise(n) != domain, not _is_within(n, domain)))
        value = "unknown"
        for name in ranked:
            if await self._validates(name):
                value = _normalise(name)
                break
        self.validated[domain] = value
        return value

    async def _target(self, spec: MacroString, ctx: MacroContext) -> str | None:
        """``spec`` expanded to a query name, or None when it is not a valid name.

        Spec: RFC 7208 §4.8, §7.3.
        """
        self.timed = self.timed or spec.uses_t
        if spec.uses_p:
            ctx = dataclasses.replace(
                ctx, validated_domain=await self._validated_domain(ctx.domain)
            )
        name = expand_domain(spec, ctx)
        return name if valid_query_name(name) else None

    async def _addresses(self, name: str) -> tuple[IpAddress, ...] | None:
        if isinstance(self.ctx.ip, IPv4Address):
            return await self._dns(self.resolver.a(name), f"{name}/A")
        return await self._dns(self.resolver.aaaa(name), f"{name}/AAAA")

    async def _dns(self, query: Awaitable[_T], what: str) -> _T | None:
        """The answer, None for NXDOMAIN (and other permanent DNS errors); raises
        ``SpfTempError`` for a temporary one. Spec: RFC 7208 §2.6.6, §5."""
        try:
            return await query
        except DnsTempError as exc:
            raise SpfTempError(f"DNS error for {what}: {exc}") from exc
        except DnsPermError:
            return None

    def _count_lookup(self) -> None:
        self.lookups += 1
        if self.lookups > self.limits.dns_lookups:
            raise SpfPermError(f"more than {self.limits.dns_lookups} DNS-querying terms")

    def _void_unless(self, answer: object) -> None:
        if not answer:
            self._void()

    def _void(self) -> None:
        self.voids += 1
        if self.voids > self.limits.void_lookups:
            raise SpfPermError(f"more than {self.limits.void_lookups} void lookups")

    async def explain(self, ctx: MacroContext, spec: MacroString) -> str | None:
        """The explanation of a ``fail``, or None when it cannot be had.

        Spec: RFC 7208 §6.2.
        """
        try:
            name = await self._target(spec, ctx)
            txts = await self.resolver.txt(name) if name is not None else ()
        except (DnsError, SpfError):
            return None
        if len(txts) != 1:
            return None
        try:
            text = parse_macro_string(txts[0].decode("ascii"), explain=True)
        except (UnicodeDecodeError, SpfSyntaxError):
            return None
        self.timed = self.timed or text.uses_t
        if text.uses_p:
            ctx = dataclasses.replace(
                ctx, validated_domain=await self._validated_domain(ctx.domain)
            )
        return expand_explanation(text, ctx)


SPF_RESULTS_MAX = 4096
"""SPF results a checker keeps for reuse (postel policy); when full it starts afresh."""


@dataclass(frozen=True, slots=True)
class SpfChecker:
    """``check_host`` and its two identities with the resolver, clock, limits and
    receiving host name bound once (built in the composition root).

    With a caching resolver that says which answers it holds (``Expiring``), a result
    is kept and reused for the same client address, domain, sender and HELO name while
    every DNS answer it read is still the one cached, so it is exactly what evaluating
    again would give: never a temperror (the time budget may have run out) nor a
    result that read the time (``%{t}``). At most ``SPF_RESULTS_MAX`` are kept.

    Spec: RFC 7208 §2.3, §2.4, §4; RFC 1035 §7.4 (answers are good for their TTL).
    """

    resolver: Resolver
    clock: Clock
    limits: SpfLimits = field(default_factory=SpfLimits)
    receiver: str = "unknown"
    _kept: DerivedCache[tuple[str, str, str, str], SpfResult] | None = field(
        default=None, repr=False, compare=False
    )
    """Results by (address, domain, sender, HELO), kept while their answers are."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_kept", DerivedCache(self.resolver, SPF_RESULTS_MAX))

    async def check_host(self, ip: IpAddress, domain: str, sender: str, *, helo: str) -> SpfResult:
        """See ``check_host``. Spec: RFC 7208 §4."""
        kept = self._kept
        assert kept is not None
        key = (str(ip), domain, sender, helo)
        result = kept.get(key)
        if result is not None:
            return result
        recording = kept.recording()
        result, timed = await _check_host(
            ip,
            domain,
            sender,
            helo=helo,
            resolver=recording or self.resolver,
            clock=self.clock,
            limits=self.limits,
            receiver=self.receiver,
        )
        if recording is not None and result.result is not Result.TEMPERROR and not timed:
            kept.keep(key, result, recording)
        return result

    async def check_mail_from(self, ip: IpAddress, mail_from: str, *, helo: str) -> SpfResult:
        """See ``check_mail_from``. Spec: RFC 7208 §2.4."""
        if not mail_from:
            return await self.check_helo(ip, helo)
        return await self.check_host(ip, mail_from.rpartition("@")[2], mail_from, helo=helo)

    async def check_helo(self, ip: IpAddress, helo: str) -> SpfResult:
        """See ``check_helo``. Spec: RFC 7208 §2.3."""
        return await self.check_host(ip, helo, f"postmaster@{helo}", helo=helo)
