"""What aggregate reporting takes from each message received on port 25.

``DmarcObserver.observe`` runs after sender authentication: it counts the DMARC
evaluation for the reports we send (``postel.dmarc.reporting``) and, for a message
that is being delivered and whose Subject says it is an aggregate report, reads the
report attachment and keeps its summary (``postel dmarc reports``). It never raises:
a problem is logged and the message goes on as if nothing happened.

Bounds defined here: ``DMARC_INTAKE_MESSAGE_MAX`` (larger messages are not read for a
report) and ``DMARC_INTAKE_TIMEOUT_S``.

Spec: RFC 9990 §2.1, §2.5.2 (Subject), §7.1.
"""

from __future__ import annotations

import asyncio
import logging

from postel.clock import Clock
from postel.dmarc.report import DkimAuth, SpfAuth, SpfScope
from postel.dmarc.report_parse import (
    DMARC_REPORT_COMPRESSED_MAX,
    ReportError,
    find_report,
    parse_report,
)
from postel.dmarc.reporting import DmarcRecorder
from postel.mail.header import split_header, unfold
from postel.pipeline.authentication import AuthAction, AuthVerdict
from postel.pipeline.inbound import InboundEnvelope
from postel.store import Store
from postel.store.dmarc_api import ReceivedReport

log = logging.getLogger(__name__)

DMARC_INTAKE_MESSAGE_MAX = 2 * DMARC_REPORT_COMPRESSED_MAX
"""Octets of a message read for a report attachment (base64 adds a third)."""
DMARC_INTAKE_TIMEOUT_S = 10.0
"""Seconds to read and store one received report (local policy)."""

_SUBJECT_PREFIX = b"report domain:"


class DmarcObserver:
    """Counts evaluations (``recorder``; None: no counting) and takes in received
    reports (``intake``). Spec: RFC 9990."""

    def __init__(
        self, store: Store, clock: Clock, recorder: DmarcRecorder | None, *, intake: bool = True
    ) -> None:
        self._store = store
        self._clock = clock
        self._recorder = recorder
        self._intake = intake

    async def observe(
        self, verdict: AuthVerdict, envelope: InboundEnvelope, content: bytes
    ) -> None:
        """Count ``verdict`` and take in ``content`` if it is a report being
        delivered. Never raises (logs ``dmarc.observe.failed``)."""
        try:
            if self._recorder is not None:
                self._record(verdict, envelope)
            if self._intake and verdict.action in (AuthAction.ACCEPT, AuthAction.QUARANTINE):
                await self._take_in(envelope, content)
        except asyncio.CancelledError:
            raise
        except Exception:  # reporting must never cost a message
            log.exception("dmarc.observe.failed", extra={"queue_id": envelope.queue_id})

    def _record(self, verdict: AuthVerdict, envelope: InboundEnvelope) -> None:
        assert self._recorder is not None
        spf = None
        if verdict.spf is not None:
            scope = SpfScope.MFROM if envelope.reverse_path else SpfScope.HELO
            spf = SpfAuth(verdict.spf.domain, scope, str(verdict.spf.result))
        mail_from = envelope.reverse_path.rpartition("@")[2].lower()
        self._recorder.record(
            verdict.dmarc,
            source_ip=envelope.client_ip,
            envelope_from=mail_from,
            spf=spf,
            dkim=[DkimAuth(d.domain, d.selector, str(d.result)) for d in verdict.dkim],
        )

    async def _take_in(self, envelope: InboundEnvelope, content: bytes) -> None:
        if len(content) > DMARC_INTAKE_MESSAGE_MAX or not _looks_like_report(content):
            return
        try:
            async with asyncio.timeout(DMARC_INTAKE_TIMEOUT_S):
                summary = await asyncio.to_thread(_summary, content)
        except (ReportError, TimeoutError) as exc:
            log.info(
                "dmarc.intake.refused", extra={"queue_id": envelope.queue_id, "error": str(exc)}
            )
            return
        if summary is None:
            return
        recipient = envelope.recipients[0].address if envelope.recipients else ""
        report = ReceivedReport(*summary, recipient=recipient, received_at=self._clock.now())
        added = await self._store.add_received_dmarc_report(report)
        log.info(
            "dmarc.intake.report",
            extra={"org": report.org_name, "id": report.report_id, "duplicate": not added},
        )


def _looks_like_report(content: bytes) -> bool:
    """The Subject starts with "Report Domain:". Spec: RFC 9990 §2.5.2 (dmarc-subject)."""
    end = content.find(b"\r\n\r\n")
    head = (content if end < 0 else content[:end]).lower()
    if b"report" not in head or b"domain:" not in head:  # words a fold cannot split
        return False
    for field in split_header(content).fields:
        if field.name.lower() == b"subject":
            words = b" ".join(unfold(field.value).split()).lower()  # "Report" 1*FWS "Domain:"
            return words.startswith(_SUBJECT_PREFIX)
    return False


def _summary(content: bytes) -> tuple[str, str, str, str, int, int, int, int, int, int] | None:
    attachment = find_report(content)
    if attachment is None:
        return None
    report = parse_report(attachment)
    meta = report.metadata
    return (
        meta.org_name,
        meta.report_id,
        meta.email,
        report.policy.domain,
        meta.begin,
        meta.end,
        len(report.records),
        report.messages,
        report.passing,
        len(attachment),
    )
