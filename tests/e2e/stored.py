"""Read what a postel server stored, from the test process, and split off its trace fields.

Reads go straight to the store (SQLite WAL or PostgreSQL) without ``Store.open()``, so
they never run migrations or start-up recovery next to a running server.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from postel.clock import SystemClock
from postel.store import StoredMessage, open_store

from .server import PostelServer

TRACE_FIELDS = ("return-path", "delivered-to", "received")
"""What postel prepends to every delivered message, in this order. Spec: RFC 5321 §4.4."""

_FIELD_NAME = re.compile(rb"([!-9;-~]+):")

Trace = tuple[tuple[str, bytes], ...]
"""(lower-case field name, whole field with its CRLF) for each leading field."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored message: its metadata, the trace fields postel added, and the rest."""

    meta: StoredMessage
    trace: Trace
    content: bytes
    """The message as received, after the trace fields."""

    def field(self, name: str) -> bytes:
        """The value of trace field ``name`` (unfolded, stripped)."""
        for key, raw in self.trace:
            if key == name:
                value = raw.split(b":", 1)[1]
                return re.sub(rb"\r\n[ \t]+", b" ", value).strip()
        raise KeyError(name)


def split_trace(message: bytes, count: int = len(TRACE_FIELDS)) -> tuple[Trace, bytes] | None:
    """Split the first ``count`` header fields (with their folded continuation lines)
    off ``message``; None when the message does not start with that many fields."""
    fields: list[tuple[str, bytes]] = []
    pos = 0
    for _ in range(count):
        match = _FIELD_NAME.match(message, pos)
        if match is None:
            return None
        end = message.find(b"\r\n", pos)
        while end >= 0 and message[end + 2 : end + 3] in (b" ", b"\t"):
            end = message.find(b"\r\n", end + 2)
        if end < 0:
            return None
        fields.append((match.group(1).decode("ascii").lower(), message[pos : end + 2]))
        pos = end + 2
    return tuple(fields), message[pos:]


def strip_trace(message: bytes) -> bytes:
    """The content after exactly Return-Path, Delivered-To and Received; raises
    AssertionError naming what was found when the prefix is not exactly those."""
    split = split_trace(message)
    assert split is not None, f"no trace fields at the start: {message[:300]!r}"
    trace, content = split
    names = tuple(name for name, _ in trace)
    assert names == TRACE_FIELDS, f"trace fields {names}, expected {TRACE_FIELDS}"
    return content


async def read_inbox_async(
    database_url: str, blob_dir: Path, address: str, mailbox: str = "INBOX", uid_from: int = 1
) -> list[Stored]:
    """Every message in ``address``'s ``mailbox`` (UID order), split into trace and
    content. Raises AssertionError if the account or mailbox is missing."""
    store = open_store(database_url, blob_dir, clock=SystemClock())
    try:
        account = await store.get_account(address)
        assert account is not None, f"no account {address}"
        box = await store.get_mailbox(account.id, mailbox)
        assert box is not None, f"no mailbox {mailbox} for {address}"
        found: list[Stored] = []
        for meta in await store.list_messages(box.id, uid_from=uid_from):
            raw = await store.read_message(box.id, meta.uid)
            split = split_trace(raw)
            assert split is not None, f"UID {meta.uid}: no trace fields: {raw[:300]!r}"
            found.append(Stored(meta=meta, trace=split[0], content=split[1]))
        return found
    finally:
        await store.close()


def read_inbox(server: PostelServer, address: str, uid_from: int = 1) -> list[Stored]:
    """``read_inbox_async`` for a sync test, on ``server``'s store."""
    return asyncio.run(
        read_inbox_async(server.database_url, server.blob_dir, address, uid_from=uid_from)
    )


def by_queue_id(messages: list[Stored]) -> dict[str, list[Stored]]:
    """Stored messages grouped by the queue id postel answered 250 with."""
    grouped: dict[str, list[Stored]] = {}
    for message in messages:
        grouped.setdefault(str(message.meta.queue_id), []).append(message)
    return grouped


_QUEUED = re.compile(rb"queued as ([A-Za-z0-9]+)")


def queue_id_of(reply: bytes | str) -> str:
    """The queue id in postel's ``250 2.0.0 Ok: queued as ID`` reply."""
    data = reply.encode() if isinstance(reply, str) else reply
    match = _QUEUED.search(data)
    assert match is not None, f"no queue id in {data!r}"
    return match.group(1).decode()


async def find_queued_async(
    database_url: str, blob_dir: Path, address: str, queue_id: str
) -> list[Stored]:
    """The messages of ``address``'s INBOX delivered under ``queue_id`` (normally one)."""
    store = open_store(database_url, blob_dir, clock=SystemClock())
    try:
        account = await store.get_account(address)
        assert account is not None, f"no account {address}"
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None, f"no INBOX for {address}"
        found: list[Stored] = []
        for meta in await store.list_messages(box.id):
            if str(meta.queue_id) != queue_id:
                continue
            raw = await store.read_message(box.id, meta.uid)
            split = split_trace(raw)
            assert split is not None, f"UID {meta.uid}: no trace fields: {raw[:300]!r}"
            found.append(Stored(meta=meta, trace=split[0], content=split[1]))
        return found
    finally:
        await store.close()


def find_queued(server: PostelServer, address: str, queue_id: str) -> list[Stored]:
    """``find_queued_async`` for a sync test, on ``server``'s store."""
    return asyncio.run(find_queued_async(server.database_url, server.blob_dir, address, queue_id))


def stored_once(server: PostelServer, address: str, queue_id: str) -> bytes:
    """The content of the one message delivered to ``address`` under ``queue_id``, after
    asserting it is there exactly once with exactly postel's three trace fields."""
    found = find_queued(server, address, queue_id)
    assert len(found) == 1, f"{len(found)} messages stored for queue id {queue_id}"
    names = tuple(name for name, _ in found[0].trace)
    assert names == TRACE_FIELDS, f"trace fields {names}, expected {TRACE_FIELDS}"
    assert found[0].meta.size == sum(len(raw) for _, raw in found[0].trace) + len(
        found[0].content
    ), "RFC822.SIZE differs from the stored length"
    return found[0].content
