"""The DMARC reporting part of the store contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt

from postel.store import Store
from postel.store.dmarc_api import (
    DmarcDkimOutcome,
    DmarcEvaluation,
    DmarcPolicySnapshot,
    ReceivedReport,
    SentReport,
)

from .conftest import T0

DAY = 86400
POLICY = DmarcPolicySnapshot("reject", sp="quarantine", rua=("mailto:dmarc@a.test",))


def evaluation(**changes: object) -> DmarcEvaluation:
    base = DmarcEvaluation(
        period_begin=0,
        policy_domain="a.test",
        source_ip="192.0.2.1",
        header_from="a.test",
        disposition="none",
        dkim_aligned=True,
        spf_aligned=False,
        policy=POLICY,
        last_seen=T0,
        envelope_from="a.test",
        dkim=(DmarcDkimOutcome("a.test", "s1", "pass"),),
        spf_domain="a.test",
        spf_result="fail",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_counts_add_up_per_record_and_claim_once(store: Store) -> None:
    await store.add_dmarc_evaluations([evaluation(), evaluation(count=2)])
    await store.add_dmarc_evaluations([evaluation(source_ip="2001:db8::1"), evaluation()])
    await store.add_dmarc_evaluations([evaluation(period_begin=DAY)])
    claimed = await store.claim_dmarc_evaluations(DAY)
    counts = sorted((e.source_ip, e.count) for e in claimed)
    assert counts == [("192.0.2.1", 4), ("2001:db8::1", 1)]
    first = next(e for e in claimed if e.source_ip == "192.0.2.1")
    assert first.dkim == (DmarcDkimOutcome("a.test", "s1", "pass"),)
    assert first.policy == POLICY and first.spf_result == "fail"
    assert await store.claim_dmarc_evaluations(DAY) == []
    later = await store.claim_dmarc_evaluations(2 * DAY)
    assert [e.period_begin for e in later] == [DAY]


async def test_a_count_arriving_after_its_period_was_claimed_is_reported_late(
    store: Store,
) -> None:
    """A flush racing the end of the period (or another node's flush) must not add
    to a row already handed to a report: those messages would never be reported."""
    await store.add_dmarc_evaluations([evaluation(count=3)])
    assert [e.count for e in await store.claim_dmarc_evaluations(DAY)] == [3]
    await store.add_dmarc_evaluations([evaluation(count=2)])
    await store.add_dmarc_evaluations([evaluation()])
    assert [e.count for e in await store.claim_dmarc_evaluations(DAY)] == [3]
    assert await store.claim_dmarc_evaluations(DAY) == []


async def test_received_reports_dedupe_and_list(store: Store) -> None:
    report = ReceivedReport(
        "example.net",
        "r1@example.net",
        "dmarc@example.net",
        "b.test",
        0,
        DAY - 1,
        2,
        5,
        3,
        700,
        "dmarc@b.test",
        T0,
    )
    assert await store.add_received_dmarc_report(report)
    assert not await store.add_received_dmarc_report(report)
    second = dataclasses.replace(report, report_id="r2", received_at=T0 + dt.timedelta(hours=1))
    assert await store.add_received_dmarc_report(second)
    listed = await store.list_received_dmarc_reports()
    assert [r.report_id for r in listed] == ["r2", "r1@example.net"]
    assert listed[1] == report


async def test_sent_reports_and_pruning(store: Store) -> None:
    sent = SentReport("x@b.test", "a.test", "mailto:dmarc@a.test", 0, DAY - 1, 1, 4, T0)
    await store.add_sent_dmarc_report(sent)
    assert await store.list_sent_dmarc_reports() == [sent]
    await store.add_dmarc_evaluations([evaluation()])
    await store.claim_dmarc_evaluations(DAY)
    removed = await store.prune_dmarc(T0 + dt.timedelta(seconds=1))
    assert removed == 2
    assert await store.list_sent_dmarc_reports() == []
