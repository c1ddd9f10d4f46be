"""SQL of DMARC aggregate reporting (see dmarc_api.py), one function per operation.

Evaluations are added with an upsert on their ``key`` (count += n), so several
processes can add counts for the same record; ``claim`` marks the rows of finished
periods reported and returns them in one statement, so one process reports them.

Spec: RFC 9990 §2.1, §2.5.2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from postel.store.dmarc_api import (
    DMARC_LIST_MAX,
    DmarcDkimOutcome,
    DmarcEvaluation,
    DmarcPolicySnapshot,
    ReceivedReport,
    SentReport,
)
from postel.store.schema import (
    ADDRESS_MAX,
    DMARC_TEXT_MAX,
    DOMAIN_MAX,
    dmarc_evaluations,
    dmarc_reports_received,
    dmarc_reports_sent,
)


def _key(e: DmarcEvaluation) -> str:
    parts = [
        str(e.period_begin),
        e.policy_domain,
        e.source_ip,
        e.header_from,
        e.envelope_from,
        e.envelope_to,
        e.disposition,
        e.dkim_aligned,
        e.spf_aligned,
        _auth_json(e),
        e.override,
        e.override_comment,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _auth_json(e: DmarcEvaluation) -> str:
    dkim = [[d.domain, d.selector, d.result] for d in e.dkim]
    return json.dumps({"dkim": dkim, "spf": [e.spf_domain, e.spf_scope, e.spf_result]})


def _policy_json(p: DmarcPolicySnapshot) -> str:
    return json.dumps(
        {
            "p": p.p,
            "sp": p.sp,
            "np": p.np,
            "adkim": p.adkim,
            "aspf": p.aspf,
            "testing": p.testing,
            "fo": p.fo,
            "rua": list(p.rua),
        }
    )


def _cut(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def _row(e: DmarcEvaluation) -> dict[str, Any]:
    return {
        "key": _key(e),
        "period_begin": e.period_begin,
        "policy_domain": e.policy_domain[:DOMAIN_MAX],
        "source_ip": e.source_ip[:64],
        "header_from": e.header_from[:DOMAIN_MAX],
        "envelope_from": _cut(e.envelope_from, DOMAIN_MAX),
        "envelope_to": _cut(e.envelope_to, DOMAIN_MAX),
        "disposition": e.disposition[:16],
        "dkim_aligned": e.dkim_aligned,
        "spf_aligned": e.spf_aligned,
        "auth_results": _auth_json(e),
        "override": _cut(e.override, 32),
        "override_comment": _cut(e.override_comment, DMARC_TEXT_MAX),
        "policy": _policy_json(e.policy),
        "count": e.count,
        "last_seen": e.last_seen,
        "reported": False,
    }


def add_evaluations(conn: Connection, evaluations: Sequence[DmarcEvaluation]) -> None:
    """Add each evaluation's count to its row (created when new); the policy and
    ``last_seen`` become the newest. A count arriving for a row already claimed for
    a report (another node, or a flush racing the period's end) starts the row
    afresh, unreported, so it goes out in a late report rather than vanishing.
    Spec: RFC 9990 §2.1 (one policy per report)."""
    if not evaluations:
        return
    flavour = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = flavour.insert(dmarc_evaluations)
    t = dmarc_evaluations.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.key],
        set_={
            "count": case((t.reported, stmt.excluded.count), else_=t.count + stmt.excluded.count),
            "reported": False,
            "last_seen": stmt.excluded.last_seen,
            "policy": stmt.excluded.policy,
        },
    )
    conn.execute(stmt, [_row(e) for e in evaluations])


def claim_evaluations(conn: Connection, before: int) -> list[DmarcEvaluation]:
    """Mark reported, and return, the unreported rows of periods that began before
    ``before`` (seconds since the epoch)."""
    t = dmarc_evaluations.c
    stmt = (
        update(dmarc_evaluations)
        .where(t.reported.is_(False), t.period_begin < before)
        .values(reported=True)
        .returning(*dmarc_evaluations.c)
    )
    return [_evaluation(row._mapping) for row in conn.execute(stmt)]


def _evaluation(m: Any) -> DmarcEvaluation:
    auth = json.loads(m["auth_results"])
    policy = json.loads(m["policy"])
    spf_domain, spf_scope, spf_result = auth["spf"]
    return DmarcEvaluation(
        period_begin=m["period_begin"],
        policy_domain=m["policy_domain"],
        source_ip=m["source_ip"],
        header_from=m["header_from"],
        disposition=m["disposition"],
        dkim_aligned=m["dkim_aligned"],
        spf_aligned=m["spf_aligned"],
        policy=DmarcPolicySnapshot(
            p=policy["p"],
            sp=policy["sp"],
            np=policy["np"],
            adkim=policy["adkim"],
            aspf=policy["aspf"],
            testing=policy["testing"],
            fo=policy["fo"],
            rua=tuple(policy["rua"]),
        ),
        last_seen=m["last_seen"],
        envelope_from=m["envelope_from"],
        envelope_to=m["envelope_to"],
        dkim=tuple(DmarcDkimOutcome(d, s, r) for d, s, r in auth["dkim"]),
        spf_domain=spf_domain,
        spf_scope=spf_scope,
        spf_result=spf_result,
        override=m["override"],
        override_comment=m["override_comment"],
        count=m["count"],
    )


def add_received(conn: Connection, report: ReceivedReport) -> bool:
    """Insert the summary; False when (org_name, report_id) is already there."""
    values = {
        "org_name": report.org_name[:DMARC_TEXT_MAX],
        "report_id": report.report_id[:DMARC_TEXT_MAX],
        "email": report.email[:ADDRESS_MAX],
        "policy_domain": report.policy_domain[:DOMAIN_MAX],
        "begin": report.begin,
        "end": report.end,
        "records": report.records,
        "messages": report.messages,
        "passing": report.passing,
        "raw_size": report.raw_size,
        "recipient": report.recipient[:ADDRESS_MAX],
        "received_at": report.received_at,
    }
    t = dmarc_reports_received.c
    exists = conn.execute(
        select(t.id).where(t.org_name == values["org_name"], t.report_id == values["report_id"])
    ).first()
    if exists is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(dmarc_reports_received.insert().values(**values))
    except IntegrityError:
        return False
    return True


def list_received(conn: Connection, limit: int) -> list[ReceivedReport]:
    t = dmarc_reports_received.c
    rows = conn.execute(
        select(dmarc_reports_received)
        .order_by(t.received_at.desc(), t.id.desc())
        .limit(min(limit, DMARC_LIST_MAX))
    )
    return [
        ReceivedReport(
            org_name=r.org_name,
            report_id=r.report_id,
            email=r.email,
            policy_domain=r.policy_domain,
            begin=r.begin,
            end=r.end,
            records=r.records,
            messages=r.messages,
            passing=r.passing,
            raw_size=r.raw_size,
            recipient=r.recipient,
            received_at=r.received_at,
        )
        for r in rows
    ]


def add_sent(conn: Connection, report: SentReport) -> None:
    conn.execute(
        dmarc_reports_sent.insert().values(
            report_id=report.report_id[:DMARC_TEXT_MAX],
            policy_domain=report.policy_domain[:DOMAIN_MAX],
            rua=report.rua[:DMARC_TEXT_MAX],
            begin=report.begin,
            end=report.end,
            records=report.records,
            messages=report.messages,
            sent_at=report.sent_at,
        )
    )


def list_sent(conn: Connection, limit: int) -> list[SentReport]:
    t = dmarc_reports_sent.c
    rows = conn.execute(
        select(dmarc_reports_sent)
        .order_by(t.sent_at.desc(), t.id.desc())
        .limit(min(limit, DMARC_LIST_MAX))
    )
    return [
        SentReport(
            report_id=r.report_id,
            policy_domain=r.policy_domain,
            rua=r.rua,
            begin=r.begin,
            end=r.end,
            records=r.records,
            messages=r.messages,
            sent_at=r.sent_at,
        )
        for r in rows
    ]


def prune(conn: Connection, before: dt.datetime) -> int:
    """Delete reported evaluations last seen before ``before`` and report summaries
    received or sent before it; returns the rows deleted."""
    e, r, s = dmarc_evaluations.c, dmarc_reports_received.c, dmarc_reports_sent.c
    total = conn.execute(
        delete(dmarc_evaluations).where(e.reported.is_(True), e.last_seen < before)
    ).rowcount
    total += conn.execute(delete(dmarc_reports_received).where(r.received_at < before)).rowcount
    total += conn.execute(delete(dmarc_reports_sent).where(s.sent_at < before)).rowcount
    return int(total)
