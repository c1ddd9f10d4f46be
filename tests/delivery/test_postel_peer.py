"""Delivery to a second postel instance (`postel serve`) as the receiving MTA: the
message lands in the recipient's INBOX, over opportunistic STARTTLS."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.server import PostelServer
from e2e.stored import read_inbox_async
from postel.store import Store
from postel.store.queue_api import RecipientState

from .conftest import WorkerFactory
from .test_worker import enqueue, recipients


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path / "peer")
    server.add_accounts("peer.example.test", "bob")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("use_bdat", [False, True], ids=["data", "bdat"])
async def test_delivery_to_postel(
    peer: PostelServer,
    store: Store,
    make_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
    use_bdat: bool,
) -> None:
    content = (
        b"From: a@example.org\r\nTo: bob@peer.example.test\r\nSubject: to a peer\r\n\r\n"
        b"hello bob\r\n.dot line\r\n" + b"x" * 200_000 + b"\r\n"
    )
    await enqueue(store, "P1", "bob@peer.example.test", data=content)
    with caplog.at_level(logging.INFO, logger="postel.delivery"):
        await make_worker(peer.smtp_port, use_bdat=use_bdat).run_once()
    r = (await recipients(store, "P1"))["bob@peer.example.test"]
    assert r.state is RecipientState.DELIVERED, r.last_reply
    inbox = await read_inbox_async(peer.database_url, peer.blob_dir, "bob@peer.example.test")
    assert len(inbox) == 1
    assert inbox[0].content.endswith(content)
    connected = [rec for rec in caplog.records if rec.msg == "delivery.connected"]
    assert connected and getattr(connected[0], "tls", "none").startswith("TLS")
