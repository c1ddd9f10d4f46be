"""Mail loop detection before delivery (``InboundDelivery.check_loops``): which
recipients a message has already reached, from its Delivered-To fields, and the
Received count that makes the whole message a loop. Spec: RFC 5321 §6.3; RFC 9228 §4."""

from __future__ import annotations

from typing import cast

import pytest

from postel.clock import SystemClock
from postel.directory.resolve import LocalTarget
from postel.ids import AccountId, QueueId
from postel.pipeline import InboundDelivery, InboundEnvelope, MailLoop, Recipient
from postel.store import Store

DELIVERY = InboundDelivery(cast(Store, None), "mx.test", SystemClock(), received_max=3)


def _envelope(*recipients: Recipient) -> InboundEnvelope:
    return InboundEnvelope(
        queue_id=QueueId("q1"),
        reverse_path="a@far.test",
        recipients=recipients,
        helo="far.test",
        client_ip="192.0.2.1",
        client_rdns=None,
        protocol="ESMTP",
        tls=None,
    )


ANN = Recipient("ann@ex.test", (LocalTarget(AccountId(1), "ann@ex.test"),))
TEAM = Recipient(
    "team@ex.test",
    (LocalTarget(AccountId(2), "bob@ex.test"), LocalTarget(AccountId(3), "cy@ex.test")),
)
ENVELOPE = _envelope(ANN, TEAM)


@pytest.mark.parametrize(
    ("head", "looped"),
    [
        (b"Subject: x\r\n\r\n", ()),
        (b"Delivered-To: someone@else.test\r\n\r\n", ()),
        (b"Delivered-To: ANN@ex.test\r\n\r\n", ("ann@ex.test",)),
        (b"Delivered-To:  ann@ex.test \r\n\r\n", ("ann@ex.test",)),
        (b"Delivered-To: team@ex.test\r\n\r\n", ("team@ex.test",)),
        (b"Delivered-To: cy@ex.test\r\n\r\n", ("team@ex.test",)),  # an alias's member
        (
            b"Delivered-To: bob@ex.test\r\nDelivered-To: ann@ex.test\r\n\r\n",
            ("ann@ex.test", "team@ex.test"),
        ),
        (b"Subject: x\r\n\r\nDelivered-To: ann@ex.test\r\n", ()),  # in the body: no field
    ],
)
def test_looped_recipients(head: bytes, looped: tuple[str, ...]) -> None:
    assert DELIVERY.check_loops(ENVELOPE, head) == looped


def test_too_many_received_fields_loop_the_whole_message() -> None:
    received = b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    with pytest.raises(MailLoop):
        DELIVERY.check_loops(ENVELOPE, received * 4 + b"\r\n")
    assert DELIVERY.check_loops(ENVELOPE, received * 3 + b"\r\n") == ()
