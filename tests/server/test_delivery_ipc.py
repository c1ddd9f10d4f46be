"""The delivery channel between SMTP worker processes and the committing process, over
a real socketpair: the codec round-trips every field, store errors come back as the
same types, a bad frame ends the channel without a traceback, and a worker whose main
process is gone gets IpcClosed at once (docs/adr/0005)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
import struct
from collections.abc import Sequence

import pytest

from postel.errors import NotFound
from postel.ids import AccountId, MailboxId, QueueId
from postel.server.delivery_ipc import (
    IPC_FRAME_MAX,
    DeliveryClient,
    DeliveryServer,
    IpcClosed,
    decode_deliveries,
    encode_deliveries,
)
from postel.store import BlobRef, Delivered, Delivery

WHEN = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def _delivery(
    inline: bytes | None = b"Subject: x\r\n\r\nhi\r\n", mailbox: str = "INBOX"
) -> Delivery:
    return Delivery(
        account_id=AccountId(7),
        mailbox=mailbox,
        blob=BlobRef("ab" * 32, 19, inline),
        trace_prefix=b"Return-Path: <a@b>\r\n\xff",
        internal_date=WHEN,
        summary='{"s": "\\u00e9"}',
        flags=frozenset({"\\Seen", "$Junk"}),
        queue_id=QueueId("Q1"),
    )


def test_codec_round_trips_every_field() -> None:
    for original in (_delivery(), _delivery(None)):
        (back,) = decode_deliveries(encode_deliveries([original]))
        assert back == original and back.blob.inline == original.blob.inline


def test_the_copies_of_one_message_carry_its_blob_and_summary_once() -> None:
    copies = [dataclasses.replace(_delivery(), account_id=AccountId(n)) for n in range(50)]
    value = encode_deliveries(copies)
    assert len(value["blobs"]) == 1 and len(value["summaries"]) == 1
    assert decode_deliveries(value) == copies


def test_codec_refuses_a_date_without_time_zone() -> None:
    value = encode_deliveries([_delivery()])
    value["items"][0]["internal_date"] = "2026-11-29T12:00:00"
    with pytest.raises(ValueError):
        decode_deliveries(value)


class _Store:
    """Commits by numbering; a mailbox named "missing" is NotFound."""

    def __init__(self) -> None:
        self.uid = 0

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Delivered]:
        if any(d.mailbox == "missing" for d in deliveries):
            raise NotFound("no such mailbox")
        out = []
        for d in deliveries:
            self.uid += 1
            out.append(Delivered(d.account_id, MailboxId(3), 99, self.uid, self.uid))
        return out


async def test_deliveries_and_errors_cross_the_channel() -> None:
    ours, theirs = socket.socketpair()
    woken: list[str] = []
    server = DeliveryServer(_Store(), lambda: woken.append("wake"), lambda: woken.append("up"))  # type: ignore[arg-type]
    served = asyncio.create_task(server.serve(ours))
    client = DeliveryClient()
    await client.connect(theirs)
    results = await asyncio.gather(*(client.deliver([_delivery(), _delivery()]) for _ in range(20)))
    uids = sorted(d.uid for batch in results for d in batch)
    assert uids == list(range(1, 41))
    with pytest.raises(NotFound):
        await client.deliver([_delivery(mailbox="missing")])
    client.wake_queue()
    client.up()
    await client.close()
    await asyncio.wait_for(served, 5)
    assert woken == ["wake", "up"]


async def test_the_worker_learns_at_once_that_the_main_process_is_gone() -> None:
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(_Store()).serve(ours))  # type: ignore[arg-type]
    client = DeliveryClient()
    await client.connect(theirs)
    served.cancel()
    ours.close()
    await asyncio.wait_for(client.closed.wait(), 5)
    with pytest.raises(IpcClosed):
        await client.deliver([_delivery()])


async def test_an_oversized_frame_ends_the_channel_quietly() -> None:
    ours, theirs = socket.socketpair()
    served = asyncio.create_task(DeliveryServer(_Store()).serve(ours))  # type: ignore[arg-type]
    reader, writer = await asyncio.open_connection(sock=theirs)
    await reader.readexactly(4 + len(b'{"op":"ready"}'))
    writer.write(struct.pack("!I", IPC_FRAME_MAX + 1))
    await writer.drain()
    await asyncio.wait_for(served, 5)
    assert await reader.read() == b""
    writer.close()
