"""Sender authentication of inbound mail, between the end of DATA and the 250.

``InboundAuthenticator.start`` begins, when MAIL FROM arrives, the DNS lookups that the
envelope checks (SPF of MAIL FROM and of HELO, iprev of the client address) start with,
so that they overlap the rest of the dialogue (the answers land in the resolver's cache;
nothing is started for an answer already there); ``verdict`` runs every check (DKIM and
ARC on the content, the envelope checks, then DMARC) and returns what to do with the
message and the Authentication-Results field to prepend:

* DMARC ``reject`` → 550 5.7.1 in the dialogue; ``quarantine`` → delivered to Junk;
* DMARC ``temperror`` → 451 4.7.5 (when ``temperror_defers``; else accepted and noted);
* a failing message from a trusted forwarder (client network) or carrying an ARC chain
  that passes and whose oldest passing sealer is trusted gets the local override
  (delivered as if DMARC had asked for nothing).

Every DNS wait is bounded by the checks' own budgets (SPF 20 s, DKIM 12 s, DMARC 20 s,
``IPREV_TIMEOUT_S``); all DNS goes through the one caching resolver.

Bounds defined here: ``IPREV_NAMES_MAX`` (PTR names checked, RFC 8601 §3 leaves the
number to the receiver; SPF's ptr limit, RFC 7208 §4.6.4, is 10) and ``IPREV_TIMEOUT_S``.

Spec: RFC 7208 (SPF), RFC 6376 (DKIM), RFC 8617 (ARC), RFC 9989 (DMARC), RFC 8601
(Authentication-Results, iprev §3), RFC 3463 (X.7.1, X.7.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from postel.clock import Clock
from postel.dkim.arc import ArcResult, ChainValidation, carries_arc_fields, verify_arc
from postel.dkim.runner import VerifyRunner
from postel.dkim.verify import DkimResult, verify_message
from postel.dmarc import Disposition, DmarcResult, Override, PolicyOverride, evaluate
from postel.dmarc import Result as DmarcStatus
from postel.errors import PermanentFailure, TemporaryFailure
from postel.mail.authres import MethodResult, render
from postel.mail.header import split_header
from postel.resolver import Prefetching, Resolver
from postel.resolver.addresses import parse_ip
from postel.resolver.derived import DerivedCache
from postel.spf import SpfChecker, SpfResult

log = logging.getLogger(__name__)

IPREV_NAMES_MAX = 10
"""PTR names whose addresses are checked for iprev (RFC 7208 §4.6.4's ptr bound)."""
IPREV_TIMEOUT_S = 10.0
"""Seconds for the whole iprev check (local policy)."""

VERIFY_INLINE_MAX = 1024 * 1024
"""Messages up to this size are verified without waiting for a slot; larger ones take
one of ``VERIFY_CONCURRENCY_MAX`` (each is read whole into memory for DKIM)."""
VERIFY_CONCURRENCY_MAX = 2
"""Large messages verified at once (bounds memory, RELIABILITY.md D7)."""
KEPT_RESULTS_MAX = 4096
"""iprev and DMARC results kept for reuse while their DNS answers are cached
(``postel.resolver.derived``), each; postel policy."""
KEPT_FROM_OCTETS_MAX = 1024
"""A DMARC result is kept only when the From: values it is keyed by are this short
together, and there are at most ``KEPT_FROM_FIELDS_MAX`` of them (bounds the memory of
``KEPT_RESULTS_MAX`` keys)."""
KEPT_FROM_FIELDS_MAX = 4
"""See ``KEPT_FROM_OCTETS_MAX``: an empty From: field has no octets but costs a key
entry."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DmarcKey = tuple[
    tuple[bytes, ...], tuple[str, str] | None, tuple[tuple[str, str], ...], Override | None
]
"""From: values, SPF (result, domain), DKIM (result, d=) pairs, local override."""


class AuthAction(enum.StrEnum):
    """What the SMTP session does with the message."""

    ACCEPT = "accept"
    QUARANTINE = "quarantine"
    """Deliver into the recipients' Junk mailbox."""
    REJECT = "reject"
    """550 5.7.1."""
    DEFER = "defer"
    """451 4.7.5."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``authserv_id``: our name in Authentication-Results (RFC 8601 §2.5);
    ``temperror_defers``: answer 451 4.7.5 when DMARC cannot be evaluated for DNS
    trouble; ``trusted_forwarders``: client networks whose failing mail is not
    penalised (local override); ``trusted_sealers``: ARC sealer domains likewise.
    Spec: RFC 8601 §2.5; RFC 9989 (local policy overrides); RFC 8617 §7.2."""

    authserv_id: str
    temperror_defers: bool = True
    trusted_forwarders: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    trusted_sealers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class EarlyChecks:
    """What MAIL FROM gave the checks: the client address, the HELO name and the
    reverse-path (the DNS answers the checks will ask for are fetched meanwhile)."""

    ip: IpAddress
    helo: str
    mail_from: str


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """The outcome: ``action``, the ``field`` to prepend (Authentication-Results,
    CRLF-terminated), and the results for logs. Spec: RFC 8601 §2."""

    action: AuthAction
    field: bytes
    dmarc: DmarcResult
    spf: SpfResult | None
    dkim: tuple[DkimResult, ...]
    arc: ArcResult
    iprev: MethodResult

    @property
    def summary(self) -> str:
        """``spf=pass dkim=pass dmarc=pass arc=none iprev=pass`` for log lines."""
        dkim = ",".join(str(d.result) for d in self.dkim) or "none"
        spf = str(self.spf.result) if self.spf is not None else "none"
        return (
            f"spf={spf} dkim={dkim} dmarc={self.dmarc.result} arc={self.arc.cv} "
            f"iprev={self.iprev.result}"
        )


class InboundAuthenticator:
    """Runs the checks of one process with its resolver (see the module docstring)."""

    def __init__(self, resolver: Resolver, clock: Clock, settings: AuthSettings) -> None:
        self._resolver = resolver
        self._clock = clock
        self.settings = settings
        self._spf = SpfChecker(resolver, clock, receiver=settings.authserv_id)
        self._runner = VerifyRunner()
        """DKIM verification in a worker process (postel.dkim.runner)."""
        self._prefetch = resolver.prefetch if isinstance(resolver, Prefetching) else None
        self._iprev_kept: DerivedCache[IpAddress, MethodResult] = DerivedCache(
            resolver, KEPT_RESULTS_MAX
        )
        self._dmarc_kept: DerivedCache[_DmarcKey, DmarcResult] = DerivedCache(
            resolver, KEPT_RESULTS_MAX
        )
        self.large = asyncio.Semaphore(VERIFY_CONCURRENCY_MAX)
        """Held while a message over ``VERIFY_INLINE_MAX`` is read and verified."""

    async def aclose(self) -> None:
        """Stop the DKIM worker process (at shutdown)."""
        await self._runner.aclose()

    def start(self, client_ip: str, helo: str, mail_from: str) -> EarlyChecks:
        """Begin fetching what SPF (MAIL FROM, and HELO when it is a domain) and iprev
        will look up first, and start the DKIM worker, so that the lookups overlap the
        rest of the dialogue. ``mail_from`` is the reverse-path without brackets (""
        for the null sender: SPF then checks postmaster@HELO, RFC 7208 §2.4).
        Spec: RFC 7208 §2.3, §2.4, §4.4; RFC 8601 §3."""
        ip = parse_ip(client_ip)
        self._runner.prestart()  # the DKIM worker process, ready by the end of DATA
        if self._prefetch is not None:  # no task where the answers are cached
            domain = mail_from.rpartition("@")[2] if mail_from else helo
            for name in dict.fromkeys((domain, helo)):
                if name and not name.startswith("["):
                    self._prefetch("TXT", name)
            self._prefetch("PTR", client_ip)
        return EarlyChecks(ip, helo, mail_from)

    async def verdict(self, checks: EarlyChecks, message: bytes) -> AuthVerdict:
        """Run the checks on the whole ``message`` (as received, no trace fields of
        ours) and decide. Never raises for bad input or DNS trouble.
        Spec: RFC 9989 (policy), RFC 8601 §2."""
        header = split_header(message)
        arc_task = None  # most messages have no ARC Set: then no task is needed
        if carries_arc_fields(header):
            arc_task = asyncio.create_task(verify_arc(message, self._resolver, header))
        dkim = tuple(
            await verify_message(
                message, self._resolver, clock=self._clock, header=header, runner=self._runner
            )
        )
        arc = await (arc_task or verify_arc(message, self._resolver, header))
        ip, helo_name = checks.ip, checks.helo
        spf = await _guarded(self._spf.check_mail_from(ip, checks.mail_from, helo=helo_name))
        helo = None
        if helo_name and not helo_name.startswith("["):
            helo = await _guarded(self._spf.check_helo(ip, helo_name))
        iprev = await self._iprev(ip)
        from_fields = [f.value for f in header.get_all(b"from")]
        spf_identity = None
        if spf is not None and checks.mail_from:
            spf_identity = (str(spf.result), checks.mail_from.rpartition("@")[2].lower())
        dmarc = await self._dmarc(
            from_fields, spf_identity, [(str(d.result), d.domain) for d in dkim], ip, arc
        )
        action = self._action(dmarc)
        results = _method_results(spf, helo, checks.mail_from, dkim, dmarc, arc, iprev)
        field_bytes = render(self.settings.authserv_id, results)
        return AuthVerdict(action, field_bytes, dmarc, spf, dkim, arc, iprev)

    def _override(self, ip: IpAddress, arc: ArcResult) -> Override | None:
        """A local override for a failing message: a trusted forwarder's address, or a
        passing ARC chain whose oldest passing sealer we trust. Spec: RFC 8617 §7.2."""
        if any(ip in network for network in self.settings.trusted_forwarders):
            return Override(PolicyOverride.TRUSTED_FORWARDER, f"client {ip}")
        sealer = (arc.oldest_pass_domain or "").lower()
        if arc.cv is ChainValidation.PASS and sealer in self.settings.trusted_sealers:
            return Override(PolicyOverride.LOCAL_POLICY, f"ARC sealed by {sealer}")
        return None

    def _action(self, dmarc: DmarcResult) -> AuthAction:
        if dmarc.result is DmarcStatus.TEMPERROR and self.settings.temperror_defers:
            return AuthAction.DEFER
        if dmarc.disposition is Disposition.REJECT:
            return AuthAction.REJECT
        if dmarc.disposition is Disposition.QUARANTINE:
            return AuthAction.QUARANTINE
        return AuthAction.ACCEPT

    async def _dmarc(
        self,
        from_fields: list[bytes],
        spf: tuple[str, str] | None,
        dkim: list[tuple[str, str]],
        ip: IpAddress,
        arc: ArcResult,
    ) -> DmarcResult:
        """DMARC of the message, kept for messages alike while the answers it read
        are cached (not a temperror). Spec: RFC 9989."""
        override = self._override(ip, arc)
        key = (tuple(from_fields), spf, tuple(dkim), override)
        kept = self._dmarc_kept.get(key)
        if kept is not None:
            return kept
        recording = self._dmarc_kept.recording() if keepable_from(from_fields) else None
        resolver = recording or self._resolver
        dmarc = await evaluate(from_fields, spf, dkim, resolver, override=override)
        if recording is not None and dmarc.result is not DmarcStatus.TEMPERROR:
            self._dmarc_kept.keep(key, dmarc, recording)
        return dmarc

    async def _iprev(self, ip: IpAddress) -> MethodResult:
        """Reverse then forward DNS agree on ``ip``, kept while the answers it read
        are cached (not after a timeout). Spec: RFC 8601 §3, §2.7.3."""
        kept = self._iprev_kept.get(ip)
        if kept is not None:
            return kept
        recording = self._iprev_kept.recording()
        prop = (("policy.iprev", str(ip)),)
        try:
            async with asyncio.timeout(IPREV_TIMEOUT_S):
                result = await _iprev(recording or self._resolver, ip, prop)
        except TimeoutError:
            return MethodResult("iprev", "temperror", "DNS trouble", prop)
        if recording is not None:
            self._iprev_kept.keep(ip, result, recording)
        return result


def keepable_from(from_fields: Sequence[bytes]) -> bool:
    """Whether a DMARC result may be kept under these From: values (few and short
    enough: ``KEPT_FROM_FIELDS_MAX``, ``KEPT_FROM_OCTETS_MAX``)."""
    if len(from_fields) > KEPT_FROM_FIELDS_MAX:
        return False
    return sum(map(len, from_fields)) <= KEPT_FROM_OCTETS_MAX


async def _iprev(
    resolver: Resolver, ip: IpAddress, prop: tuple[tuple[str, str], ...]
) -> MethodResult:
    """The iprev result from the answers. Spec: RFC 8601 §3."""
    try:
        names = (await resolver.ptr(ip))[:IPREV_NAMES_MAX]
        if not names:
            return MethodResult("iprev", "permerror", "no PTR", prop)
        for name in names:
            with contextlib.suppress(PermanentFailure):
                lookup = resolver.a if ip.version == 4 else resolver.aaaa
                if ip in await lookup(name):
                    return MethodResult("iprev", "pass", None, (*prop, ("smtp.remote-ip", str(ip))))
        return MethodResult("iprev", "fail", "forward lookup does not match", prop)
    except TemporaryFailure:
        return MethodResult("iprev", "temperror", "DNS trouble", prop)
    except PermanentFailure:
        return MethodResult("iprev", "permerror", "no PTR", prop)


async def _guarded(check: Coroutine[Any, Any, SpfResult]) -> SpfResult | None:
    """The SPF result, or None if the check failed (it never raises; a bug must not
    lose the message)."""
    try:
        return await check
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("auth.spf_failed")
        return None


def _method_results(
    spf: SpfResult | None,
    helo: SpfResult | None,
    mail_from: str,
    dkim: Sequence[DkimResult],
    dmarc: DmarcResult,
    arc: ArcResult,
    iprev: MethodResult,
) -> list[MethodResult]:
    """The clauses of our Authentication-Results field. Spec: RFC 8601 §2.7, §3."""
    out: list[MethodResult] = []
    if spf is not None:
        identity = mail_from or f"postmaster@{spf.domain}"
        out.append(MethodResult("spf", str(spf.result), None, (("smtp.mailfrom", identity),)))
    if helo is not None:
        out.append(MethodResult("spf", str(helo.result), None, (("smtp.helo", helo.domain),)))
    if not dkim:
        out.append(MethodResult("dkim", "none"))
    for d in dkim:
        props = (("header.d", d.domain), ("header.s", d.selector), ("header.b", d.header_b))
        reason = d.reason if str(d.result) != "pass" else None
        out.append(MethodResult("dkim", str(d.result), reason, props))
    dmarc_props: list[tuple[str, str]] = []
    if dmarc.author_domain:
        dmarc_props.append(("header.from", dmarc.author_domain))
    if dmarc.record is not None:
        dmarc_props.append(("policy.dmarc", str(dmarc.disposition)))
    out.append(MethodResult("dmarc", str(dmarc.result), None, tuple(dmarc_props)))
    out.append(MethodResult("arc", str(arc.cv)))
    out.append(iprev)
    return out
