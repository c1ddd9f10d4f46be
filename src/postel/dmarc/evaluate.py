"""DMARC evaluation of one message: Author Domain, policy discovery, Identifier
Alignment, result and disposition.

``evaluate`` takes what the SPF and DKIM stages produced (results and domains, no
message bytes beyond the From: field) and the injected ``Resolver``; it never raises
for bad input or DNS trouble, answering ``temperror``/``permerror`` instead.

The From: field (DMARCbis §5.3.1, §11.5): no From: field, or From: fields without a
usable domain give ``none`` with a reason (DMARC does not apply, §4.4, §4.2), except a
domain that is not a domain name, which gives ``permerror``. Several domains, named by
one From: field or by several (not valid, RFC 5322 §3.6, and a forger's way to put a
protected domain beside his own), are by default evaluated once per domain (at most
``DMARC_AUTHOR_DOMAINS_MAX``, more is ``permerror``) and the strictest failing policy
wins (§11.5); ``MultipleAuthors.NO_DMARC`` instead stops with ``none`` (§5.3.1).

Local overrides (DMARCbis §5.3.6, §B.3.1): the caller passes ``override`` when it
knows, before evaluation, that the message came through a trusted forwarder, carries
an ARC chain sealed by a trusted sealer (RFC 8617), or is otherwise exempt by local
policy. It only affects a ``fail``: the result stays ``fail`` (for reports), the
disposition becomes ``none`` and ``DmarcResult.override`` names the reason.

Spec: RFC 9989 (draft-ietf-dmarc-dmarcbis-41 §4.4, §4.7, §4.10, §5.3, §11.5, §A.6);
RFC 9990 (override reasons).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from postel.dmarc.author import AuthorDomains, AuthorProblem, author_domains, normalise_domain
from postel.dmarc.discovery import (
    DmarcPermError,
    PolicyDiscovery,
    PolicyTag,
    TreeWalker,
)
from postel.dmarc.record import AlignmentMode, DmarcError, DmarcRecord, Policy, PsdFlag
from postel.dmarc.result import (
    Disposition,
    DmarcResult,
    IdentifierCheck,
    Method,
    Override,
    PolicyOverride,
    Reason,
    Result,
)
from postel.resolver import DnsPermError, Resolver, to_alabels

DMARC_AUTHOR_DOMAINS_MAX = 5
"""Author Domains evaluated for one message; a From: field naming more is permerror
(the evaluation would be incomplete). Postel policy for DMARCbis §11.5 ("Limiting the
number of Author Domains processed will avoid this risk")."""
DMARC_ALIGNMENT_WALKS_MAX = 10
"""Authenticated Identifiers per message whose Organizational Domain may be looked up
(each a Tree Walk of up to 8 queries); others can still align by equality. Postel
policy against DNS amplification, in the spirit of DMARCbis §4.10 and §11.5."""
DMARC_EVALUATION_TIMEOUT_S = 20.0
"""Seconds one message's DMARC evaluation may take in all; more is temperror.
Postel policy, the budget RFC 7208 §4.6.4 gives one SPF check."""

_SEVERITY = {Disposition.REJECT: 3, Disposition.QUARANTINE: 2, Disposition.NONE: 1}
_RANK = {Result.TEMPERROR: 4, Result.PERMERROR: 3, Result.PASS: 2, Result.NONE: 1}
_LOWER = {
    Disposition.REJECT: Disposition.QUARANTINE,
    Disposition.QUARANTINE: Disposition.NONE,
    Disposition.NONE: Disposition.NONE,
}


class MultipleAuthors(StrEnum):
    """What to do with a From: field naming several domains. Spec: DMARCbis §5.3.1, §11.5."""

    EVALUATE_EACH = "evaluate_each"
    """Evaluate every Author Domain and apply the strictest failing policy (§11.5)."""
    NO_DMARC = "no_dmarc"
    """DMARC validation is not possible: result ``none`` (§5.3.1)."""


@dataclass(frozen=True, slots=True)
class _Identity:
    method: Method
    domain: str


async def evaluate(
    author: bytes | Sequence[bytes] | AuthorDomains,
    spf: tuple[str, str] | None,
    dkim: Sequence[tuple[str, str]],
    resolver: Resolver,
    *,
    override: Override | None = None,
    multiple_authors: MultipleAuthors = MultipleAuthors.EVALUATE_EACH,
    timeout: float = DMARC_EVALUATION_TIMEOUT_S,
) -> DmarcResult:
    """Evaluate DMARC for one message.

    ``author``: the raw value of the From: header field (``bytes``), the values of all
    From: fields in order (a sequence, so that a repeated From: is seen), or Author
    Domains already extracted (``AuthorDomains.of("example.com")``).
    ``spf``: ``(result, domain)`` of the SPF check of the MAIL FROM identity (None when
    MAIL FROM was null or SPF was not checked; the HELO identity never counts).
    ``dkim``: ``(result, d=)`` per DKIM-Signature verified. Results are RFC 8601 names
    (``"pass"``, ``"fail"`` ...; ``postel.spf.Result`` values work); only ``pass`` yields
    an Authenticated Identifier. ``override``: a local override for a failing message.
    ``timeout``: seconds for the whole evaluation.

    Returns a ``DmarcResult``; never raises for bad input or DNS failures.

    Spec: DMARCbis §4.3, §4.4, §4.10, §5.3.1-§5.3.6, §11.5; RFC 8601 §2.7.
    """
    found = _author_domains(author)
    if found.problem is not None:
        return _no_author(found.problem)
    domains: list[str] = []
    for domain in found.domains:
        alabel = _alabel(domain)
        if alabel is None:
            return DmarcResult(Result.PERMERROR, reasons=(Reason.INVALID_AUTHOR_DOMAIN,))
        if alabel not in domains:
            domains.append(alabel)
    names = tuple(domains)
    if len(names) > 1 and multiple_authors is MultipleAuthors.NO_DMARC:
        return DmarcResult(
            Result.NONE, author_domains=names, reasons=(Reason.TOO_MANY_AUTHOR_DOMAINS,)
        )
    if len(names) > DMARC_AUTHOR_DOMAINS_MAX:
        return DmarcResult(
            Result.PERMERROR, author_domains=names, reasons=(Reason.TOO_MANY_AUTHOR_DOMAINS,)
        )
    identities = _identities(spf, dkim)
    walker = TreeWalker(resolver)
    try:
        async with asyncio.timeout(timeout):
            outcomes = [
                await _evaluate_one(walker, name, names, identities, override) for name in names
            ]
    except TimeoutError:
        return DmarcResult(
            Result.TEMPERROR,
            author_domain=names[0],
            author_domains=names,
            reasons=(Reason.TIMEOUT,),
            detail=f"DMARC evaluation took over {timeout} s",
        )
    return _most_severe(outcomes)


def _author_domains(author: bytes | Sequence[bytes] | AuthorDomains) -> AuthorDomains:
    if isinstance(author, AuthorDomains):
        return author
    if isinstance(author, bytes):
        return author_domains([author])
    return author_domains(list(author))


_PROBLEM_RESULTS = {
    AuthorProblem.NO_FROM: (Result.NONE, Reason.NO_FROM),
    AuthorProblem.NO_DOMAIN: (Result.NONE, Reason.NO_AUTHOR_DOMAIN),
    AuthorProblem.INVALID_DOMAIN: (Result.PERMERROR, Reason.INVALID_AUTHOR_DOMAIN),
}


def _no_author(problem: AuthorProblem) -> DmarcResult:
    """Spec: DMARCbis §4.2, §4.4 (no single valid From: means no alignment), §5.3.1."""
    result, reason = _PROBLEM_RESULTS[problem]
    return DmarcResult(result, reasons=(reason,), detail=f"Author Domain: {problem.value}")


def _alabel(domain: str) -> str | None:
    """``domain`` as lower-case A-labels, or None. Spec: DMARCbis §5.3.1; RFC 5890 §2.3.2.1."""
    try:
        return normalise_domain(to_alabels(domain))
    except DnsPermError:
        return None


def _identities(
    spf: tuple[str, str] | None, dkim: Sequence[tuple[str, str]]
) -> tuple[_Identity, ...]:
    """Authenticated Identifiers: the SPF domain and every DKIM d= whose result is
    pass, as A-labels, without repeats. Spec: DMARCbis §4.3, §4.4.1, §4.4.2."""
    pairs = ([(Method.SPF, spf)] if spf is not None else []) + [(Method.DKIM, d) for d in dkim]
    out: list[_Identity] = []
    for method, (result, domain) in pairs:
        if str(result).strip().lower() != "pass":
            continue
        alabel = _alabel(domain)
        identity = _Identity(method, alabel) if alabel is not None else None
        if identity is not None and identity not in out:
            out.append(identity)
    return tuple(out)


async def _evaluate_one(
    walker: TreeWalker,
    author: str,
    names: tuple[str, ...],
    identities: tuple[_Identity, ...],
    override: Override | None,
) -> DmarcResult:
    """DMARC for one Author Domain (``names``: all of them, for the result).
    Spec: DMARCbis §5.3.2-§5.3.6."""
    try:
        discovery = await walker.discover_policy(author)
    except DmarcError as exc:
        return _dns_error(DmarcResult(Result.NONE, author_domain=author, author_domains=names), exc)
    record = discovery.record
    if record is None or record.p is None:
        return DmarcResult(
            Result.NONE,
            author_domain=author,
            author_domains=names,
            policy_domain=None if record is None else discovery.policy_domain,
            record=record,
            reasons=(Reason.NO_POLICY_RECORD if record is None else Reason.POLICY_INVALID,),
        )
    checks, errors = await _alignment(walker, author, record, identities)
    spf_aligned = any(c.aligned for c in checks if c.method is Method.SPF)
    dkim_aligned = any(c.aligned for c in checks if c.method is Method.DKIM)
    fallback = (Reason.POLICY_FALLBACK_NONE,) if record.policy_fallback else ()
    passed = spf_aligned or dkim_aligned
    base = DmarcResult(  # built once: the pass of almost every message returns it
        Result.PASS if passed else Result.NONE,
        author_domain=author,
        author_domains=names,
        policy_domain=discovery.policy_domain,
        organizational_domain=await _known_org(walker, author, record),
        record=record,
        testing=record.testing,
        spf_aligned=spf_aligned,
        dkim_aligned=dkim_aligned,
        checks=checks,
        reasons=(Reason.SPF_ALIGNED,) * spf_aligned
        + (Reason.DKIM_ALIGNED,) * dkim_aligned
        + fallback
        if passed
        else (),
    )
    if passed:
        return base
    if errors:
        temporary = [e for e in errors if not isinstance(e, DmarcPermError)]
        return _dns_error(base, temporary[0] if temporary else errors[0])
    try:
        tag, policy = await _applicable_policy(walker, discovery, record)
    except DmarcError as exc:
        return _dns_error(base, exc)
    return _fail(base, tag, policy, override, fallback)


def _dns_error(base: DmarcResult, exc: DmarcError) -> DmarcResult:
    """A DNS query needed for the verdict failed: neither pass nor fail.
    Spec: DMARCbis §5.3.6."""
    if isinstance(exc, DmarcPermError):
        return replace(
            base, result=Result.PERMERROR, reasons=(Reason.DNS_PERMERROR,), detail=exc.reason
        )
    return replace(
        base, result=Result.TEMPERROR, reasons=(Reason.DNS_TEMPERROR,), detail=exc.reason
    )


async def _alignment(
    walker: TreeWalker, author: str, record: DmarcRecord, identities: tuple[_Identity, ...]
) -> tuple[tuple[IdentifierCheck, ...], tuple[DmarcError, ...]]:
    """Check every identifier: equal names align in both modes (no DNS); strict mode
    needs equality; relaxed mode compares Organizational Domains, found by Tree Walks,
    for at most ``DMARC_ALIGNMENT_WALKS_MAX`` identifiers sharing the author's
    top-level label. DKIM checking stops at the first aligned signature. Returns the
    checks and the DNS errors that left some undecided (``aligned`` None).

    Spec: DMARCbis §4.4, §4.4.1, §4.4.2, §4.10.2, §5.3.4.
    """
    checks: list[IdentifierCheck] = []
    errors: list[DmarcError] = []
    walks = 0
    dkim_done = False
    for identity in identities:
        if identity.method is Method.DKIM and dkim_done:
            continue
        mode = record.aspf if identity.method is Method.SPF else record.adkim
        aligned: bool | None = identity.domain == author
        relaxed = mode is AlignmentMode.RELAXED and _same_top(identity.domain, author)
        if not aligned and relaxed and walks < DMARC_ALIGNMENT_WALKS_MAX:
            walks += 1
            try:
                aligned = await _relaxed(walker, author, identity.domain)
            except DmarcError as exc:
                aligned = None
                errors.append(exc)
        checks.append(IdentifierCheck(identity.method, identity.domain, mode, aligned))
        dkim_done = dkim_done or (identity.method is Method.DKIM and aligned is True)
    return tuple(checks), tuple(errors)


def _same_top(a: str, b: str) -> bool:
    """Names in different top-level domains cannot share an Organizational Domain,
    which is always a suffix of the name. Spec: DMARCbis §4.10.2."""
    return a.rsplit(".", 1)[-1] == b.rsplit(".", 1)[-1]


async def _relaxed(walker: TreeWalker, author: str, identifier: str) -> bool:
    """True when both names have the same Organizational Domain. Raises
    ``DmarcTempError``/``DmarcPermError``. Spec: DMARCbis §4.4 (relaxed), §4.10.2.
    """
    author_org = await walker.organizational_domain(author)
    return author_org == await walker.organizational_domain(identifier)


async def _known_org(walker: TreeWalker, author: str, record: DmarcRecord) -> str | None:
    """The Author Domain's Organizational Domain when already known without more DNS:
    from a finished walk, or the author's own record with ``psd=n``."""
    try:
        if walker.has_walked(author):
            return await walker.organizational_domain(author)
    except DmarcError:
        return None
    if record.psd is PsdFlag.NO and await walker.record_at(author) is record:
        return author
    return None


async def _applicable_policy(
    walker: TreeWalker, discovery: PolicyDiscovery, record: DmarcRecord
) -> tuple[PolicyTag, Policy]:
    """``p`` for the Author Domain itself; for a subdomain ``np`` when it does not exist
    (an existence query, only when ``np`` would change the answer), else ``sp``, else
    ``p``. Raises ``DmarcTempError``/``DmarcPermError``. Spec: DMARCbis §4.7, §4.10.1, §A.4.
    """
    p = record.p if record.p is not None else Policy.NONE
    if not discovery.subdomain:
        return PolicyTag.P, p
    tag, policy = (PolicyTag.SP, record.sp) if record.sp is not None else (PolicyTag.P, p)
    np = record.np
    if np is not None and np is not policy and not await walker.exists(discovery.author_domain):
        return PolicyTag.NP, np
    return tag, policy


def _fail(
    base: DmarcResult,
    tag: PolicyTag,
    policy: Policy,
    override: Override | None,
    fallback: tuple[Reason, ...],
) -> DmarcResult:
    """A DMARC fail: the disposition is the policy, one step lower under ``t=y``, and
    ``none`` under a local override. Spec: DMARCbis §4.7 (t), §5.3.5, §5.3.6, §B.3.1."""
    reasons = [Reason.NOT_ALIGNED, *fallback]
    if tag is PolicyTag.NP:
        reasons.append(Reason.NONEXISTENT_SUBDOMAIN)
    disposition = Disposition(policy.value)
    applied: PolicyOverride | None = None
    detail = ""
    if base.testing and disposition is not Disposition.NONE:
        disposition = _LOWER[disposition]
        applied = PolicyOverride.POLICY_TEST_MODE
        reasons.append(Reason.TESTING)
    if override is not None and disposition is not Disposition.NONE:
        disposition = Disposition.NONE
        applied = override.reason
        reasons.append(Reason.OVERRIDDEN)
        detail = override.comment
    return replace(
        base,
        result=Result.FAIL,
        disposition=disposition,
        requested=policy,
        policy_tag=tag,
        override=applied,
        reasons=tuple(reasons),
        detail=detail,
    )


def _most_severe(outcomes: Sequence[DmarcResult]) -> DmarcResult:
    """With several Author Domains: the failure with the strictest disposition (then
    the strictest requested policy); else temperror, permerror, pass, none in that
    order. Spec: DMARCbis §11.5 ("apply the most strict policy ... among the checks
    that fail")."""
    failures = [o for o in outcomes if o.result is Result.FAIL]
    if failures:
        return max(
            failures,
            key=lambda o: (
                _SEVERITY[o.disposition],
                _SEVERITY[Disposition(o.requested.value if o.requested else "none")],
            ),
        )
    return max(outcomes, key=lambda o: _RANK[o.result])
