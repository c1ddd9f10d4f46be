"""The shapes the store keeps for DMARC aggregate reporting.

Evaluations of received mail are kept aggregated: one row per distinct report record
(source address, identifiers, outcomes, override) and reporting period, with a message
count. Reports received for our domains and reports we sent are kept as summaries.
Values here are plain text and numbers; ``postel.dmarc`` gives them their meaning.

Bounds defined here (local policy): ``DMARC_LIST_MAX``.

Spec: RFC 9990 §2.1 (report content), §2.5.2 (duplicates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DMARC_LIST_MAX = 1000
"""Most reports one list call returns (newest first)."""


@dataclass(frozen=True, slots=True)
class DmarcDkimOutcome:
    """One DKIM signature's ``d=``, ``s=`` and result. Spec: RFC 9990 §2.1.2."""

    domain: str
    selector: str
    result: str


@dataclass(frozen=True, slots=True)
class DmarcPolicySnapshot:
    """The DMARC Policy Record that applied: policies, alignment modes, testing, fo
    and the ``rua`` URIs. Spec: RFC 9989 §4.7; RFC 9990 §2.1.1."""

    p: str
    sp: str | None = None
    np: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    testing: bool = False
    fo: str | None = None
    rua: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DmarcEvaluation:
    """``count`` messages of the reporting period starting at ``period_begin``
    (seconds since the epoch) that share one report record. ``envelope_from`` is ""
    for the null reverse-path; ``spf_*`` None when SPF gave nothing; ``last_seen``
    the newest message counted. Spec: RFC 9990 §2.1.1 (record)."""

    period_begin: int
    policy_domain: str
    source_ip: str
    header_from: str
    disposition: str
    dkim_aligned: bool
    spf_aligned: bool
    policy: DmarcPolicySnapshot
    last_seen: dt.datetime
    envelope_from: str | None = None
    envelope_to: str | None = None
    dkim: tuple[DmarcDkimOutcome, ...] = ()
    spf_domain: str | None = None
    spf_scope: str = "mfrom"
    spf_result: str | None = None
    override: str | None = None
    override_comment: str | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    """A report received for one of our domains, summarised: who sent it
    (``org_name``, ``email``), its Report-ID and period, how many records and
    messages, how many ``passing`` (aligned pass), its size as received and the
    mailbox it was addressed to. Spec: RFC 9990 §2.1."""

    org_name: str
    report_id: str
    email: str
    policy_domain: str
    begin: int
    end: int
    records: int
    messages: int
    passing: int
    raw_size: int
    recipient: str
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SentReport:
    """A report we sent to one reporting URI. Spec: RFC 9990 §2.5."""

    report_id: str
    policy_domain: str
    rua: str
    begin: int
    end: int
    records: int
    messages: int
    sent_at: dt.datetime
