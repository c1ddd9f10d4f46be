"""Aggregate reporting of DMARC evaluations: counting them and sending the reports.

``DmarcRecorder`` counts each evaluated message in memory (no database write before
the 250); ``DmarcReporter`` is the background task that moves the counts to the store
every ``flush_interval`` seconds and, once a reporting period has ended (a UTC day by
default: periods are multiples of ``interval`` since the epoch), claims that period's
rows, builds one report per Policy Domain and mails it to each ``mailto:`` reporting
URI of its DMARC Policy Record. A URI outside the Policy Domain is used only when the
destination publishes ``<policy domain>._report._dmarc.<destination>``. Counts still
in memory when the process dies are lost (reports are statistics, RFC 9990 §2.5 lets
a receiver discard data it cannot send).

Bounds defined here: ``DMARC_BUFFER_RECORDS_MAX`` (distinct records held in memory
before an early flush), ``DMARC_RUA_ADDRESSES_MAX``, ``DMARC_VERIFY_TIMEOUT_S``.

Spec: RFC 9990 §2.1 (one Policy Domain per report), §2.5 (transport), §3 (Verifying
External Destinations); RFC 9989 §4.7 (rua); RFC 6068 (mailto).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from postel.clock import Clock
from postel.dmarc.record import Policy
from postel.dmarc.report import (
    ActionDisposition,
    AggregateReport,
    DkimAuth,
    OverrideReason,
    PublishedPolicy,
    ReportMail,
    ReportMetadata,
    ReportRecord,
    SpfAuth,
    SpfScope,
    gzip_report,
    render_report,
    report_filename,
    report_message,
)
from postel.dmarc.result import DmarcResult, PolicyOverride, Result
from postel.errors import PostelError
from postel.resolver import Resolver
from postel.store import Store
from postel.store.dmarc_api import (
    DmarcDkimOutcome,
    DmarcEvaluation,
    DmarcPolicySnapshot,
    SentReport,
)

log = logging.getLogger(__name__)

DMARC_BUFFER_RECORDS_MAX = 10_000
"""Distinct records counted in memory before they are flushed early (local policy)."""
DMARC_RUA_ADDRESSES_MAX = 16
"""Addresses taken from one ``mailto:`` URI (local policy; RFC 6068 §2 allows a list)."""
DMARC_VERIFY_TIMEOUT_S = 10.0
"""Seconds for the external destination check of one URI (local policy)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SendReport = Callable[[str, bytes], Awaitable[None]]
"""Delivers one message to one address with the null reverse-path."""


class DmarcRecorder:
    """Counts DMARC evaluations per report record and period (see module docstring).

    ``interval``: length of a reporting period in seconds. Spec: RFC 9990 §2.1."""

    def __init__(self, clock: Clock, interval: float) -> None:
        self._clock = clock
        self._interval = max(1, int(interval))
        self._counts: dict[DmarcEvaluation, int] = {}
        self._last_seen = _EPOCH
        self.full = asyncio.Event()
        """Set when ``DMARC_BUFFER_RECORDS_MAX`` records wait for a flush."""

    def period_begin(self, now: dt.datetime) -> int:
        """Start (seconds since the epoch) of the period holding ``now``."""
        seconds = int(now.timestamp())
        return seconds - seconds % self._interval

    def record(
        self,
        dmarc: DmarcResult,
        *,
        source_ip: str,
        envelope_from: str | None,
        spf: SpfAuth | None,
        dkim: Sequence[DkimAuth],
    ) -> bool:
        """Count one message. Messages without a DMARC Policy Record, and those
        whose result is an error (they are deferred or not evaluated), are not
        counted; returns whether this one was. Spec: RFC 9990 §2.1."""
        record = dmarc.record
        if (
            record is None
            or record.p is None
            or dmarc.policy_domain is None
            or dmarc.result not in (Result.PASS, Result.FAIL)
        ):
            return False
        now = self._clock.now()
        key = DmarcEvaluation(
            period_begin=self.period_begin(now),
            policy_domain=dmarc.policy_domain,
            source_ip=source_ip,
            header_from=dmarc.author_domain or dmarc.policy_domain,
            disposition=str(_disposition(dmarc)),
            dkim_aligned=dmarc.dkim_aligned,
            spf_aligned=dmarc.spf_aligned,
            policy=DmarcPolicySnapshot(
                p=str(record.p),
                sp=str(record.sp) if record.sp is not None else None,
                np=str(record.np) if record.np is not None else None,
                adkim=str(record.adkim),
                aspf=str(record.aspf),
                testing=record.testing,
                fo=":".join(sorted(str(f) for f in record.fo)) or None,
                rua=tuple(u.uri for u in record.rua),
            ),
            last_seen=_EPOCH,
            envelope_from=envelope_from,
            dkim=tuple(DmarcDkimOutcome(d.domain, d.selector, d.result) for d in dkim),
            spf_domain=spf.domain if spf else None,
            spf_scope=str(spf.scope) if spf else "mfrom",
            spf_result=spf.result if spf else None,
            override=str(dmarc.override) if dmarc.override else None,
            count=0,
        )
        self._counts[key] = self._counts.get(key, 0) + 1
        self._last_seen = now
        if len(self._counts) >= DMARC_BUFFER_RECORDS_MAX:
            self.full.set()
        return True

    def drain(self) -> list[DmarcEvaluation]:
        """The counted records (with counts), forgetting them."""
        counts, self._counts = self._counts, {}
        self.full.clear()
        seen = self._last_seen
        return [dataclasses.replace(k, count=n, last_seen=seen) for k, n in counts.items()]


def _disposition(dmarc: DmarcResult) -> ActionDisposition:
    """``pass`` for a pass under an enforcing policy, else the disposition applied.
    Spec: RFC 9990 Appendix A (ActionDispositionType)."""
    if dmarc.result is Result.PASS:
        enforcing = dmarc.requested in (Policy.QUARANTINE, Policy.REJECT)
        return ActionDisposition.PASS if enforcing else ActionDisposition.NONE
    return ActionDisposition(str(dmarc.disposition))


@dataclass(frozen=True, slots=True)
class ReporterSettings:
    """``interval``: seconds per reporting period (86400: UTC days); ``send``: mail
    the reports (False: only count); ``submitter``: our domain (file name, Subject);
    ``org_name``/``from_address``: report_metadata and From; ``flush_interval``:
    seconds between moves of the counts to the store; ``history``: how long reported
    rows and report summaries are kept. Spec: RFC 9990 §2.1.1, §2.5.2."""

    interval: float
    submitter: str
    org_name: str
    from_address: str
    send: bool = True
    flush_interval: float = 60.0
    history: dt.timedelta = dt.timedelta(days=31)
    generator: str = "postel"


class DmarcReporter:
    """The reporting task (see module docstring): ``run`` until ``stop``."""

    def __init__(
        self,
        store: Store,
        recorder: DmarcRecorder,
        send: SendReport,
        *,
        clock: Clock,
        settings: ReporterSettings,
        resolver: Resolver | None,
        unique: Callable[[], str],
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._send = send
        self._clock = clock
        self._settings = settings
        self._resolver = resolver
        self._unique = unique
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End ``run`` after the current step; ``run`` flushes the counts first."""
        self._stop.set()

    async def run(self) -> None:
        """Flush counts and send due reports until stopped; errors are logged."""
        interval = max(1.0, self._settings.interval)
        while not self._stop.is_set():
            await self._step()
            now = self._clock.now().timestamp()
            until_boundary = interval - now % interval + 0.5
            wait = min(self._settings.flush_interval, until_boundary)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, wait)):
                    stop = asyncio.ensure_future(self._stop.wait())
                    full = asyncio.ensure_future(self._recorder.full.wait())
                    try:
                        await asyncio.wait({stop, full}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stop.cancel()
                        full.cancel()
        await self._flush()

    async def _step(self) -> None:
        try:
            await self._flush()
            if self._settings.send:
                await self.report_due()
        except asyncio.CancelledError:
            raise
        except Exception:  # a task that must outlive store or DNS trouble
            log.exception("dmarc.report.failed")

    async def _flush(self) -> None:
        evaluations = self._recorder.drain()
        if evaluations:
            await self._store.add_dmarc_evaluations(evaluations)

    async def report_due(self) -> int:
        """Build and send the reports of every ended period; returns how many
        messages were sent. Spec: RFC 9990 §2.1, §2.5."""
        now = self._clock.now()
        claimed = await self._store.claim_dmarc_evaluations(self._recorder.period_begin(now))
        sent = 0
        for report in build_reports(claimed, self._settings, self._unique, self._period()):
            sent += await self._deliver(report, claimed_policy(claimed, report))
        await self._store.prune_dmarc(now - self._settings.history)
        return sent

    def _period(self) -> int:
        return max(1, int(self._settings.interval))

    async def _deliver(self, report: AggregateReport, rua: tuple[str, ...]) -> int:
        settings, meta = self._settings, report.metadata
        attachment = gzip_report(render_report(report))
        unique = meta.report_id.partition("@")[0].replace(".", "")
        name = report_filename(
            settings.submitter, report.policy.domain, meta.begin, meta.end, unique
        )
        sent = 0
        for uri in rua:
            for address in mailto_addresses(uri):
                if not await self._authorized(report.policy.domain, address):
                    log.info("dmarc.report.unauthorized", extra={"rua": address})
                    continue
                mail = ReportMail(
                    settings.submitter, settings.from_address, address, self._clock.now()
                )
                try:
                    await self._send(address, report_message(report, attachment, name, mail))
                except (PostelError, OSError):
                    log.exception("dmarc.report.send_failed", extra={"rua": address})
                    continue
                sent += 1
                await self._store.add_sent_dmarc_report(
                    SentReport(
                        meta.report_id,
                        report.policy.domain,
                        uri,
                        meta.begin,
                        meta.end,
                        len(report.records),
                        report.messages,
                        self._clock.now(),
                    )
                )
                log.info(
                    "dmarc.report.sent",
                    extra={"domain": report.policy.domain, "rua": address, "id": meta.report_id},
                )
        return sent

    async def _authorized(self, policy_domain: str, address: str) -> bool:
        """Whether reports for ``policy_domain`` may go to ``address``.
        Spec: RFC 9990 §3 (Verifying External Destinations)."""
        host = address.rpartition("@")[2].lower()
        if _related(host, policy_domain):
            return True
        if self._resolver is None:
            return False
        try:
            async with asyncio.timeout(DMARC_VERIFY_TIMEOUT_S):
                records = await self._resolver.txt(f"{policy_domain}._report._dmarc.{host}")
        except (TimeoutError, PostelError):
            return False
        return any(r.strip().startswith(b"v=DMARC1") for r in records)


def _related(host: str, domain: str) -> bool:
    """Same domain, or one inside the other (stands in for equal Organizational
    Domains). Spec: RFC 9990 §3."""
    return host == domain or host.endswith("." + domain) or domain.endswith("." + host)


def mailto_addresses(uri: str) -> list[str]:
    """The addresses of a ``mailto:`` URI (others give none), percent-decoded; any
    address with CR, LF, NUL, spaces or without one "@" is dropped.
    Spec: RFC 6068 §2; RFC 9989 §4.6."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "mailto":
        return []
    to = urllib.parse.unquote(rest.partition("?")[0])
    out: list[str] = []
    for part in to.split(",")[:DMARC_RUA_ADDRESSES_MAX]:
        address = part.strip()
        bad = any(c in address for c in "\r\n\0 <>\t")
        if address.count("@") == 1 and not bad and address[0] != "@" and address[-1] != "@":
            out.append(address)
    return out


def claimed_policy(claimed: Sequence[DmarcEvaluation], report: AggregateReport) -> tuple[str, ...]:
    """The ``rua`` URIs of the newest evaluation of the report's domain and period."""
    rows = [
        e
        for e in claimed
        if e.policy_domain == report.policy.domain and e.period_begin == report.metadata.begin
    ]
    return max(rows, key=lambda e: e.last_seen).policy.rua if rows else ()


def build_reports(
    evaluations: Sequence[DmarcEvaluation],
    settings: ReporterSettings,
    unique: Callable[[], str],
    interval: int,
) -> list[AggregateReport]:
    """One report per (Policy Domain, period) of ``evaluations``, records merged by
    their content, the policy of the newest evaluation. Spec: RFC 9990 §2.1."""
    groups: dict[tuple[str, int], list[DmarcEvaluation]] = {}
    for e in evaluations:
        groups.setdefault((e.policy_domain, e.period_begin), []).append(e)
    reports = []
    for (domain, begin), rows in sorted(groups.items()):
        newest = max(rows, key=lambda e: e.last_seen).policy
        meta = ReportMetadata(
            org_name=settings.org_name,
            email=settings.from_address,
            report_id=f"{unique()}.{begin}@{settings.submitter}",
            begin=begin,
            end=begin + interval - 1,
            generator=settings.generator,
        )
        policy = PublishedPolicy(
            domain=domain,
            p=newest.p,
            sp=newest.sp,
            np=newest.np,
            adkim=newest.adkim,
            aspf=newest.aspf,
            testing=newest.testing,
            fo=newest.fo,
        )
        reports.append(AggregateReport(meta, policy, _records(rows)))
    return reports


def _records(rows: Sequence[DmarcEvaluation]) -> tuple[ReportRecord, ...]:
    merged: dict[ReportRecord, int] = {}
    for e in rows:
        record = ReportRecord(
            source_ip=e.source_ip,
            count=0,
            disposition=e.disposition,
            dkim_aligned=e.dkim_aligned,
            spf_aligned=e.spf_aligned,
            header_from=e.header_from,
            envelope_from=e.envelope_from,
            envelope_to=e.envelope_to,
            dkim=tuple(DkimAuth(d.domain, d.selector, d.result) for d in e.dkim),
            spf=_spf(e),
            reasons=_reasons(e),
        )
        merged[record] = merged.get(record, 0) + e.count
    return tuple(dataclasses.replace(r, count=n) for r, n in merged.items())


def _spf(e: DmarcEvaluation) -> tuple[SpfAuth, ...]:
    if e.spf_domain is None or e.spf_result is None:
        return ()
    scope = SpfScope.HELO if e.spf_scope == "helo" else SpfScope.MFROM
    return (SpfAuth(e.spf_domain, scope, e.spf_result),)


def _reasons(e: DmarcEvaluation) -> tuple[OverrideReason, ...]:
    if e.override is None:
        return ()
    comment = "t=y" if e.override == PolicyOverride.POLICY_TEST_MODE else ""
    return (OverrideReason(e.override, e.override_comment or comment),)
