"""`postel mailbox list`, `postel message list | show` on a store with delivered mail."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from postel.cli import main
from postel.clock import SystemClock
from postel.config import Config
from postel.ids import QueueId
from postel.mail import parse_message
from postel.store import Delivery, open_store

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9?= report\r\n\r\nbody\r\n"
)


async def _deliver(data: Path) -> None:
    config = Config.embedded_default(data)
    store = open_store(config.database_url, config.blob_dir, clock=SystemClock())
    await store.open()
    try:
        account = await store.get_account("bob@example.org")
        assert account is not None
        writer = store.blob_writer()
        writer.write(MESSAGE)
        ref = await writer.commit()
        await store.deliver(
            [
                Delivery(
                    account_id=account.id,
                    mailbox="INBOX",
                    blob=ref,
                    trace_prefix=b"Return-Path: <alice@example.org>\r\n",
                    internal_date=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                    summary=parse_message(MESSAGE).to_json(),
                    queue_id=QueueId("Q1"),
                    flags=frozenset({"\\Seen", "$Work"}),
                )
            ]
        )
    finally:
        await store.close()


def test_mailbox_and_message_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["--data", str(data), "domain", "add", "example.org"]) == 0
    assert main(["--data", str(data), "account", "add", "bob@example.org", "--generate"]) == 0
    asyncio.run(_deliver(data))
    capsys.readouterr()

    assert main(["--data", str(data), "mailbox", "list", "bob@example.org", "--json"]) == 0
    boxes = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert set(boxes) == {"INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"}
    assert boxes["INBOX"]["messages"] == 1 and boxes["INBOX"]["uidnext"] == 2
    assert boxes["Junk"]["special_use"] == "\\Junk"

    assert main(["--data", str(data), "message", "list", "bob@example.org", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["uid"] == 1
    assert row["from"] == "alice@example.org"
    assert row["subject"] == "café report"
    assert row["size"] == len(MESSAGE) + len(b"Return-Path: <alice@example.org>\r\n")
    assert row["flags"] == ["$Work", "\\Seen"]  # a list of flag names, as JSON

    assert main(["--data", str(data), "message", "show", "bob@example.org", "1"]) == 0
    shown = capsys.readouterr().out
    assert shown == "Return-Path: <alice@example.org>\r\n" + MESSAGE.decode()

    assert main(["--data", str(data), "message", "show", "bob@example.org", "9"]) == 1
    err = capsys.readouterr().err
    assert err == "postel: error: no message with UID 9 in INBOX\n"
    assert main(["--data", str(data), "mailbox", "list", "nobody@example.org"]) == 1
    assert capsys.readouterr().err == "postel: error: no account nobody@example.org\n"
