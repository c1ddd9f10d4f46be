"""postel on PostgreSQL, end to end: mail over SMTP stored byte-exact, and two postel
processes sharing one database and one blob dir without UID collisions.

Spec: RELIABILITY.md D1 (durable acknowledgement), D2 (recovery at every start);
RFC 9051 §2.3.1.1 (UIDs strictly ascending, unique in a mailbox).
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from pathlib import Path

import pytest

from postel.clock import SystemClock
from postel.store import open_store

from .conftest import ServerFactory
from .corpus import corpus_names, load
from .rawsmtp import RawSmtp
from .server import PostelServer
from .stored import queue_id_of, read_inbox, stored_once

pytestmark = pytest.mark.postgres

DOMAIN = "example.test"
RCPT = f"pg@{DOMAIN}"
SENDER = "sender@remote.test"
PER_SERVER = 200
THREADS_PER_SERVER = 4
SAME_BIG = 4
"""Identical large messages (one file blob) sent through each server."""


def _send(server: PostelServer, content: bytes) -> str:
    with smtplib.SMTP(*server.address, timeout=60) as client:
        client.ehlo("client.test")
        assert client.mail(SENDER, ["BODY=8BITMIME"])[0] == 250
        assert client.rcpt(RCPT)[0] == 250
        code, text = client.data(content)
        assert code == 250, text
    return queue_id_of(text)


def _big(lines: int, tag: bytes) -> bytes:
    return (
        b"Subject: big "
        + tag
        + b"\r\n\r\n"
        + b"".join(b"%s line %08d of a large message\r\n" % (tag, n) for n in range(lines))
    )


def test_mail_over_smtp_is_stored_byte_exact_on_postgres(
    postel_factory: ServerFactory, pg_db_url: str
) -> None:
    server = postel_factory("pg", database_url=pg_db_url)
    server.add_accounts(DOMAIN, "pg")
    server.start()
    names = corpus_names()[::8]
    messages = [load(name).content for name in names]
    messages += [_big(5_000, b"file-blob"), _big(40_000, b"spooled")]
    for content in messages:
        assert stored_once(server, RCPT, _send(server, content)) == content
    assert server.stop() == 0


def _sender(server: PostelServer, tag: str, count: int, big: bytes, sent: list[bytes]) -> None:
    with smtplib.SMTP(*server.address, timeout=60) as client:
        client.ehlo("client.test")
        for n in range(count):
            content = f"Subject: {tag} {n}\r\nX-Seq: {tag}-{n}\r\n\r\nbody {n}\r\n".encode()
            client.sendmail(SENDER, [RCPT], content)
            sent.append(content)
        for _ in range(SAME_BIG if tag.endswith("-0") else 0):
            client.sendmail(SENDER, [RCPT], big)
            sent.append(big)


def test_two_processes_share_one_database_without_uid_collisions(
    tmp_path: Path, pg_db_url: str
) -> None:
    shared = tmp_path / "shared-data"
    a = PostelServer(shared, home=tmp_path / "a", database_url=pg_db_url)
    b = PostelServer(shared, home=tmp_path / "b", database_url=pg_db_url)
    a.add_accounts(DOMAIN, "pg")
    a.start()
    try:
        b.start()
        big = _big(6_000, b"shared")
        sent: list[bytes] = []
        threads = [
            threading.Thread(
                target=_sender,
                args=(server, f"{name}-{i}", PER_SERVER // THREADS_PER_SERVER, big, sent),
            )
            for name, server in (("a", a), ("b", b))
            for i in range(THREADS_PER_SERVER)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert not any(t.is_alive() for t in threads)
    finally:
        codes = (a.stop(), b.stop())
    assert codes == (0, 0)
    assert len(sent) == 2 * PER_SERVER + 2 * SAME_BIG

    stored = read_inbox(a, RCPT)
    uids = [m.meta.uid for m in stored]
    assert len(uids) == len(set(uids)), "UID collision"
    assert uids == sorted(uids)
    assert sorted(m.content for m in stored) == sorted(sent)
    assert len({m.meta.blob.key for m in stored if m.content == big}) == 1
    report = asyncio.run(_recover(pg_db_url, shared / "blobs"))
    assert report.missing_blobs == ()


async def _recover(url: str, blob_dir: Path):  # type: ignore[no-untyped-def]
    store = open_store(url, blob_dir, clock=SystemClock())
    try:
        return await store.open()
    finally:
        await store.close()


def test_second_node_start_keeps_the_first_nodes_message_in_flight(
    tmp_path: Path, pg_db_url: str
) -> None:
    shared = tmp_path / "shared-data"
    a = PostelServer(shared, home=tmp_path / "a", database_url=pg_db_url)
    b = PostelServer(shared, home=tmp_path / "b", database_url=pg_db_url)
    a.add_accounts(DOMAIN, "pg")
    a.start()
    content = _big(60_000, b"in-flight")  # > 1 MiB: spooled to tmp/ while it arrives
    head = len(content) - 100_000
    try:
        with RawSmtp(a.address, timeout=60) as client:
            client.greet()
            assert client.command(f"MAIL FROM:<{SENDER}>").code == 250
            assert client.command(f"RCPT TO:<{RCPT}>").code == 250
            assert client.command("DATA").code == 354
            client.send(content[:head])
            time.sleep(0.5)  # let the first node spool what it got
            b.start()
            client.send(content[head:] + b".\r\n")
            reply = client.reply()
    finally:
        a.stop()
        b.stop()
    assert reply.code == 250, reply
    assert [m.content for m in read_inbox(a, RCPT)] == [content]
