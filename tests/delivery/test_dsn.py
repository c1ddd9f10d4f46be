"""Delivery status notifications from the queue: failure, relayed and delay reports,
built from a real SQLite queue and parsed back with Python's email package."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import email.utils
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postel.clock import FixedClock
from postel.delivery.dsn import Bouncer
from postel.delivery.dsn_report import (
    Action,
    ReportEnvelope,
    ReportRecipient,
    build_report,
    status_of,
)
from postel.smtp.params import Notify, Orcpt, Ret
from postel.store import Store, open_store
from postel.store.queue_api import BackoffPolicy, NewQueuedMessage, NewRecipient, Outcome

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SENDER = "alice@example.org"
TRACE = b"Received: from client by mx.example.org; Sun, 1 Mar 2026 12:00:00 +0000\r\n"
CONTENT = (
    b"From: alice@example.org\r\nTo: bob@example.test\r\nSubject: report me\r\n\r\n"
    b"the body line that only RET=FULL returns\r\n"
)
POLICY = BackoffPolicy(first_retry=5.0, max_interval=60.0, lifetime=100.0, delay_notice_after=10.0)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
async def store(tmp_path: Path, clock: FixedClock) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'q.db'}", tmp_path / "blobs", clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


class Outbox:
    """The ``deliver`` of a Bouncer under test: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def __call__(self, address: str, report: bytes) -> None:
        self.sent.append((address, report))

    def parsed(self, index: int = 0) -> email.message.EmailMessage:
        msg = email.message_from_bytes(self.sent[index][1], policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


async def enqueue(
    store: Store,
    queue_id: str,
    *,
    reverse_path: str = SENDER,
    ret: Ret | None = None,
    envid: str | None = None,
    notify: frozenset[Notify] | None = None,
    orcpt: Orcpt | None = None,
) -> None:
    writer = store.blob_writer()
    writer.write(CONTENT)
    ref = await writer.commit()
    message = NewQueuedMessage(
        queue_id, ref, reverse_path, trace_prefix=TRACE, envid=envid, ret=ret
    )
    rcpt = NewRecipient("bob@example.test", "example.test", notify=notify, orcpt=orcpt)
    await store.enqueue(message, [rcpt])


async def settle_all(
    store: Store, clock: FixedClock, outcome: Outcome, *, passed_on: bool = False
) -> None:
    leases = await store.lease("w", clock.now(), limit=10, lease_for=60.0, per_domain_max=10)
    assert leases
    for lease in leases:
        ids = [r.id for r in lease.recipients]
        await store.settle(
            lease,
            dict.fromkeys(ids, outcome),
            clock.now(),
            POLICY,
            dsn_passed_on=ids if passed_on else (),
        )


def bouncer(store: Store, clock: FixedClock, outbox: Outbox) -> Bouncer:
    return Bouncer(store, outbox, hostname="mx.example.org", clock=clock, backoff=POLICY)


def status_blocks(msg: email.message.EmailMessage) -> list[email.message.Message]:
    part = next(p for p in msg.walk() if p.get_content_type() == "message/delivery-status")
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return blocks


async def test_failure_with_ret_full_returns_the_whole_message(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(
        store,
        "Q1",
        ret=Ret.FULL,
        envid="env-42",
        orcpt=Orcpt("rfc822", "bob@old.example"),
    )
    await settle_all(store, clock, Outcome.failed("550 5.1.1 <bob@example.test>: no such user"))
    outbox = Outbox()
    assert await bouncer(store, clock, outbox).run_once() == 1
    assert outbox.sent[0][0] == SENDER
    msg = outbox.parsed()
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == ["text/plain", "message/delivery-status", "message/rfc822"]
    per_message, per_recipient = status_blocks(msg)
    assert per_message["Original-Envelope-Id"] == "env-42"
    assert per_message["Reporting-MTA"] == "dns; mx.example.org"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Final-Recipient"] == "rfc822; bob@example.test"
    assert per_recipient["Original-Recipient"] == "rfc822; bob@old.example"
    assert "no such user" in per_recipient["Diagnostic-Code"]
    assert TRACE + CONTENT in outbox.sent[0][1]
    assert await store.queue_show("Q1") is None  # forgotten once reported


@pytest.mark.parametrize("ret", [None, Ret.HDRS])
async def test_failure_without_ret_full_returns_the_header_only(
    store: Store, clock: FixedClock, ret: Ret | None
) -> None:
    await enqueue(store, "Q2", ret=ret)
    await settle_all(store, clock, Outcome.failed("554 5.7.1 refused"))
    outbox = Outbox()
    await bouncer(store, clock, outbox).run_once()
    msg = outbox.parsed()
    returned = list(msg.iter_parts())[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    raw = outbox.sent[0][1]
    assert b"Subject: report me" in raw
    assert b"only RET=FULL returns" not in raw
    assert "Original-Envelope-Id" not in status_blocks(msg)[0]


async def test_no_report_to_the_null_sender_or_for_notify_never(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(store, "Q3", reverse_path="")
    await enqueue(store, "Q4", notify=frozenset({Notify.NEVER}))
    await settle_all(store, clock, Outcome.failed("550 5.1.1 no"))
    outbox = Outbox()
    assert await bouncer(store, clock, outbox).run_once() == 0
    assert outbox.sent == []
    assert await store.queue_show("Q3") is None
    assert await store.queue_show("Q4") is None


async def test_success_to_a_server_without_dsn_is_reported_relayed(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(store, "Q5", notify=frozenset({Notify.SUCCESS}))
    await settle_all(store, clock, Outcome.delivered("250 2.0.0 Ok: queued as X"))
    outbox = Outbox()
    assert await bouncer(store, clock, outbox).run_once() == 1
    msg = outbox.parsed()
    assert msg["Subject"] == "Relayed Mail Report"
    block = status_blocks(msg)[1]
    assert block["Action"] == "relayed"
    assert block["Status"] == "2.0.0"
    assert list(msg.iter_parts())[2].get_content_type() == "text/rfc822-headers"


async def test_success_passed_on_to_a_dsn_server_is_not_ours_to_report(
    store: Store, clock: FixedClock
) -> None:
    await enqueue(store, "Q6", notify=frozenset({Notify.SUCCESS, Notify.FAILURE}))
    await settle_all(store, clock, Outcome.delivered("250 ok"), passed_on=True)
    entry = await store.queue_show("Q6")
    assert entry is not None and entry.recipients[0].notify == frozenset({Notify.FAILURE})
    outbox = Outbox()
    assert await bouncer(store, clock, outbox).run_once() == 0
    assert await store.queue_show("Q6") is None


async def test_success_not_asked_gives_no_report(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "Q7")
    await settle_all(store, clock, Outcome.delivered("250 ok"))
    outbox = Outbox()
    assert await bouncer(store, clock, outbox).run_once() == 0


async def test_one_delay_report_with_will_retry_until(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "Q8", envid="slow-1")
    await settle_all(store, clock, Outcome.deferred("451 4.4.1 connection refused"))
    outbox = Outbox()
    b = bouncer(store, clock, outbox)
    assert await b.run_once() == 0  # not yet: delay_notice_after is 10 s
    clock.advance(11)
    assert await b.run_once() == 1
    msg = outbox.parsed()
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    per_message, block = status_blocks(msg)
    assert per_message["Original-Envelope-Id"] == "slow-1"
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.4.1"
    until = email.utils.parsedate_to_datetime(block["Will-Retry-Until"])
    assert until == T0 + dt.timedelta(seconds=POLICY.lifetime)
    assert list(msg.iter_parts())[2].get_content_type() == "text/rfc822-headers"
    clock.advance(5)
    assert await b.run_once() == 0  # one delay report per recipient
    entry = await store.queue_show("Q8")
    assert entry is not None and entry.recipients[0].delay_notified


async def test_no_delay_report_when_only_failure_is_asked(store: Store, clock: FixedClock) -> None:
    await enqueue(store, "Q9", notify=frozenset({Notify.FAILURE}))
    await settle_all(store, clock, Outcome.deferred("451 4.4.1 later"))
    clock.advance(11)
    outbox = Outbox()
    assert await bouncer(store, clock, outbox).run_once() == 0


def test_client_values_never_break_a_field() -> None:
    envelope = ReportEnvelope(SENDER, T0, envid="a\r\nBcc: x@example.net", ret=None)
    rcpt = ReportRecipient(
        "bob@example.test",
        Action.DELIVERED,
        "2.0.0",
        orcpt=Orcpt("rfc822", "b\rob\x00@example.test"),
    )
    report = build_report(envelope, [rcpt], CONTENT, hostname="mx.example.org", now=T0)
    assert b"\r\nBcc:" not in report
    assert b"Original-Envelope-Id: a+0D+0ABcc: x@example.net\r\n" in report
    assert b"Original-Recipient: rfc822; b+0Dob+00@example.test\r\n" in report
    assert b"\x00" not in report
    assert b"Subject: Successful Mail Delivery Report\r\n" in report


def test_status_follows_the_action_class() -> None:
    assert status_of("550 5.2.2 mailbox full", Action.FAILED) == "5.2.2"
    assert status_of("451 4.2.2 mailbox full", Action.FAILED) == "5.0.0"
    assert status_of("451 4.2.2 mailbox full", Action.DELAYED) == "4.2.2"
    assert status_of(None, Action.RELAYED) == "2.0.0"


def test_a_report_needs_a_recipient() -> None:
    with pytest.raises(ValueError):
        build_report(ReportEnvelope(SENDER, T0), [], CONTENT, hostname="h", now=T0)
