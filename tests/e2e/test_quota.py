"""Quotas over SMTP and submission on real sockets, and `postel account quota`.

Behaviour shown here (RFC 9208 §5; RFC 5321 §4.2.2, §4.5.3.1.10; RFC 1870 §6.2;
RFC 3463 §3.3):

* RCPT TO of an account that is at or over a limit, or whose space left is smaller than
  MAIL FROM's SIZE, gets ``452 4.2.2``; the other recipients of the transaction are
  accepted and get the message.
* A message too large for the space left, sent without SIZE, passes RCPT and is refused
  after DATA with ``452 4.2.2`` for the whole transaction: one DATA reply speaks for
  every recipient, so nothing is stored for any of them (nor queued, on submission),
  and the client's retry later does not duplicate anything.
* `postel account quota` sets and shows the limits; `account list` shows usage and
  limits; ``--none`` removes them, effective at once for the next delivery.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from collections.abc import Iterator

import pytest

from postel.clock import SystemClock
from postel.server.quota_gate import QUOTA_GATE_TTL_S
from postel.store import open_store
from postel.store.queue_api import QueueFilter

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer
from .stored import read_inbox

FULL = "full@quota.test"
ROOMY = "roomy@quota.test"
SENDER = "sender@remote.test"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("quota")
    add_accounts(srv, FULL, ROOMY)
    srv.start()
    yield srv
    assert srv.stop() == 0


def message(subject: str, size: int = 200) -> bytes:
    head = f"From: {SENDER}\r\nTo: {FULL}\r\nSubject: {subject}\r\n\r\n".encode()
    line = b"x" * 70 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def count(server: PostelServer, address: str) -> int:
    return len(read_inbox(server, address))


def quota(server: PostelServer, *args: str) -> dict[str, object]:
    out = server.cli("account", "quota", FULL, *args, "--json").stdout
    (row,) = json.loads(out)
    assert isinstance(row, dict)
    return row


def send_without_size(
    server: PostelServer, rcpts: list[str], data: bytes
) -> tuple[list[tuple[int, bytes]], tuple[int, bytes]]:
    """MAIL FROM without SIZE, each RCPT, DATA: the RCPT replies and the DATA reply."""
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.ehlo("client.test")
        assert client.mail(SENDER)[0] == 250
        replies = [client.rcpt(r) for r in rcpts]
        if not any(code == 250 for code, _ in replies):
            return replies, (0, b"")
        return replies, client.data(data)


def test_cli_sets_and_shows_limits(server: PostelServer) -> None:
    row = quota(server, "--storage", "4K", "--messages", "3")
    assert row == {
        "address": FULL,
        "storage_used": 0,
        "storage_limit": 4096,
        "messages": 0,
        "messages_limit": 3,
    }
    assert quota(server, "--messages", "5")["storage_limit"] == 4096  # one limit at a time
    text = server.cli("account", "quota", FULL).stdout
    assert "limit 4K" in text and "limit 5" in text
    listing = {r["address"]: r for r in json.loads(server.cli("account", "list", "--json").stdout)}
    assert listing[ROOMY]["storage_limit"] is None and listing[FULL]["messages_limit"] == 5
    table = server.cli("account", "list").stdout.splitlines()
    assert table[0].split()[3:5] == ["STORAGE", "MESSAGES"]
    assert any(line.startswith(FULL) and "0/4K" in line and "0/5" in line for line in table)
    bad = server.cli("account", "quota", FULL, "--storage", "lots", check=False)
    assert bad.returncode != 0 and "bad size" in bad.stderr
    quota(server, "--messages", "3")


def test_delivery_over_quota_gets_452_and_stores_nothing(server: PostelServer) -> None:
    with smtplib.SMTP(*server.address, timeout=30) as client:
        assert client.sendmail(SENDER, [FULL], message("first", 1000)) == {}
    used = int(str(quota(server)["storage_used"]))
    assert 1000 <= used < 4096 and count(server, FULL) == 1

    # Too large for the space left, no SIZE: refused after DATA for both recipients.
    big = message("big", 4096 - used + 100)
    replies, data = send_without_size(server, [FULL, ROOMY], big)
    assert [code for code, _ in replies] == [250, 250]
    assert data[0] == 452 and data[1].startswith(b"4.2.2")
    assert count(server, FULL) == 1 and count(server, ROOMY) == 0

    # The same with SIZE: FULL is refused at RCPT, ROOMY gets the message.
    with smtplib.SMTP(*server.address, timeout=30) as client:
        refused = client.sendmail(SENDER, [FULL, ROOMY], big)
    assert list(refused) == [FULL]
    assert refused[FULL][0] == 452 and refused[FULL][1].startswith(b"4.2.2")
    assert count(server, FULL) == 1 and count(server, ROOMY) == 1

    # Up to the message limit (3), then RCPT is refused even without SIZE.
    with smtplib.SMTP(*server.address, timeout=30) as client:
        assert client.sendmail(SENDER, [FULL], message("second")) == {}
        assert client.sendmail(SENDER, [FULL], message("third")) == {}
    assert count(server, FULL) == 3
    replies, _ = send_without_size(server, [FULL], message("fourth"))
    assert replies[0][0] == 452 and replies[0][1].startswith(b"4.2.2")
    assert count(server, FULL) == 3
    # The operator's log names the address and the resource, and no unknown size.
    refusals = [x for x in server.log.read_text().splitlines() if "smtp.rcpt.over_quota" in x]
    assert any(f"account={FULL}" in x and "resource=MESSAGE" in x for x in refusals), refusals
    assert not any("size=None" in x for x in refusals), refusals

    # Without limits the next delivery goes through at once.
    row = quota(server, "--none")
    assert (row["storage_limit"], row["messages_limit"]) == (None, None)
    with smtplib.SMTP(*server.address, timeout=30) as client:
        assert client.sendmail(SENDER, [FULL], big) == {}
    assert count(server, FULL) == 4
    quota(server, "--messages", "4")


def test_submission_over_quota_queues_nothing(server: PostelServer) -> None:
    """A local recipient without room refuses the DATA of a submission that also has a
    remote recipient: nothing is queued, so the client's retry sends nothing twice."""
    assert quota(server, "--messages", "4")["messages"] == 4  # full by count
    time.sleep(QUOTA_GATE_TTL_S)  # the server remembered the account as unlimited
    text = message("submitted").replace(f"From: {SENDER}".encode(), f"From: {ROOMY}".encode())
    with smtplib.SMTP(*server.submission_address, timeout=30) as client:
        client.ehlo("client.test")
        client.starttls(context=tls_context(server))
        client.ehlo("client.test")
        client.login(ROOMY, PASSWORD)
        assert client.mail(ROOMY)[0] == 250
        assert client.rcpt("carol@remote.test")[0] == 250
        code, reply = client.rcpt(FULL)
        assert code == 452 and reply.startswith(b"4.2.2")  # refused at RCPT already
        # Room for one more message, but not for this one: refused after DATA.
        used = int(str(quota(server)["storage_used"]))
        quota(server, "--messages", "5", "--storage", str(used + 10))
        client.rset()
        assert client.mail(ROOMY)[0] == 250
        assert client.rcpt("carol@remote.test")[0] == 250
        assert client.rcpt(FULL)[0] == 250
        code, reply = client.data(text)
        assert code == 452 and reply.startswith(b"4.2.2")

    async def queued() -> list[str]:
        store = open_store(server.database_url, server.blob_dir, clock=SystemClock())
        await store.open(recovery=False)
        try:
            return [r.address for e in await store.queue_list(QueueFilter()) for r in e.recipients]
        finally:
            await store.close()

    assert "carol@remote.test" not in asyncio.run(queued())
    assert count(server, FULL) == 4
