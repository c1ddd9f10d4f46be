"""Outbound delivery when things go wrong, with real processes, sockets and DNS:

* the destination is down: the recipient is deferred, retried on the configured
  backoff schedule, and delivered once the destination comes back;
* the destination publishes a null MX, does not exist (NXDOMAIN), or exists with
  neither MX nor address: the sender gets an RFC 3464 report at once, no retry;
* the destination answers 451 to RCPT once: deferred, then delivered at the retry.

Postel A (a.test) listens on 127.0.0.2 and sends from it with a short retry schedule
(1 s, then 3 s, then 9 s); postel B (b.test) has 127.0.0.3; a small asyncio SMTP
server in the test stands for t.test on 127.0.0.5. All of them use one port, A's
``[delivery] port``.

Spec: RFC 5321 §4.5.4.1 (retry strategy), §4.2.1 (reply classes), §5.1 (MX, implicit
MX); RFC 7505 §4.1 (null MX: 556 5.1.10); RFC 3463 (5.1.2, 5.4.4); RFC 3464 (reports).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from dnsserver import DnsServer, DnsServerMissing

from .imap_helpers import add_accounts
from .outbound_helpers import (
    RECEIVER_HOST,
    SENDER_HOST,
    SOA,
    QueueRow,
    mailbox_messages,
    mx_zone,
    null_mx_zone,
    queue_rows,
    simple_message,
    submit,
    wait_for_empty_queue,
    wait_for_message,
    wait_for_reports,
)
from .server import PostelServer

ALICE = "alice@a.test"
BOB = "bob@b.test"
FLAKY_HOST = "127.0.0.5"
"""Loopback address of the test's own SMTP server for t.test."""

FIRST_RETRY = 1.0
RETRY_FACTOR = 3.0
MAX_RETRY_INTERVAL = 9.0
"""A's retry schedule: seconds after the 1st, 2nd, 3rd... failed attempt: 1, 3, 9, 9."""
TIMESTAMP_RESOLUTION = 1.0
"""``postel queue list --json`` gives times to the second (truncated)."""
POLL_SLACK = 5.0
"""Seconds a due retry may wait for the worker (it looks every second) and a
connection, on a loaded two-core machine."""


def retry_interval(attempts: int) -> float:
    """Seconds A waits after its ``attempts``-th failed attempt (BackoffPolicy)."""
    return min(FIRST_RETRY * RETRY_FACTOR ** (attempts - 1), MAX_RETRY_INTERVAL)


@dataclass
class FlakySmtpServer:
    """A minimal SMTP server (asyncio, in its own thread) that answers the first RCPT
    with ``451 4.3.0`` and every later one with 250, and keeps each message it gets.
    Spec: RFC 5321 §4.2.1 (4yz: try again), §4.1.1."""

    host: str
    port: int
    rcpt_replies: list[int] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> FlakySmtpServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._session, self.host, self.port)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="flaky-smtp", daemon=True)
        self._thread.start()
        assert ready.wait(10), "flaky SMTP server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = 0
        try:
            writer.write(b"220 t.test ESMTP flaky\r\n")
            while line := await asyncio.wait_for(reader.readline(), 30):
                verb = line[:4].upper()
                if verb == b"EHLO":
                    reply = b"250-t.test\r\n250 8BITMIME\r\n"
                elif verb in (b"HELO", b"MAIL", b"RSET", b"NOOP"):
                    accepted = 0 if verb in (b"MAIL", b"RSET") else accepted
                    reply = b"250 2.0.0 OK\r\n"
                elif verb == b"RCPT":
                    code = 451 if not self.rcpt_replies else 250
                    self.rcpt_replies.append(code)
                    accepted += code == 250
                    reply = b"451 4.3.0 Try again later\r\n" if code == 451 else b"250 2.1.5 OK\r\n"
                elif verb == b"DATA" and accepted:
                    writer.write(b"354 Go ahead\r\n")
                    await writer.drain()
                    data = b""
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        data += chunk
                    self.messages.append(data)
                    reply = b"250 2.0.0 Stored\r\n"
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    reply = b"503 5.5.1 Bad sequence\r\n"
                writer.write(reply)
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass(frozen=True, slots=True)
class Setup:
    sender: PostelServer
    receiver: PostelServer
    """B, not started by the fixture."""
    dns_server: DnsServer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("outbound-failures")
    receiver = PostelServer(base / "b", host=RECEIVER_HOST)
    add_accounts(receiver, BOB)
    zones = {
        "test": SOA,  # so that gone.test is NXDOMAIN, not a refusal
        "a.test": mx_zone(SENDER_HOST),
        "b.test": mx_zone(RECEIVER_HOST),
        "t.test": mx_zone(FLAKY_HOST),
        "n.test": null_mx_zone(),
        "empty.test": SOA,  # exists, with neither MX nor A
    }
    try:
        dns_server = DnsServer(zones).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    ns_host, ns_port = dns_server.nameserver
    sender = PostelServer(
        base / "a",
        host=SENDER_HOST,
        delivery={
            "enabled": True,
            "port": receiver.smtp_port,
            "bind_address": SENDER_HOST,
            "first_retry": FIRST_RETRY,
            "retry_factor": RETRY_FACTOR,
            "max_retry_interval": MAX_RETRY_INTERVAL,
        },
        dns={"nameservers": [f"{ns_host}:{ns_port}"]},
    )
    add_accounts(sender, ALICE)
    try:
        sender.start()
        yield Setup(sender, receiver, dns_server)
    finally:
        sender.stop()
        receiver.stop()
        dns_server.stop()


def _deferred_by_attempts(
    sender: PostelServer, domain: str, until: int, within: float
) -> dict[int, QueueRow]:
    """Poll the queue for ``domain`` until its recipient was deferred ``until`` times;
    returns the first row seen for each attempt count."""
    seen: dict[int, QueueRow] = {}
    deadline = time.monotonic() + within
    while max(seen, default=0) < until:
        assert time.monotonic() < deadline, f"not deferred {until} times in {within} s: {seen}"
        for row in queue_rows(sender, domain=domain):
            if row.state == "deferred":
                seen.setdefault(row.attempts, row)
        time.sleep(0.2)
    return seen


def test_a_down_destination_is_retried_with_backoff_and_gets_the_mail_when_back(
    setup: Setup,
) -> None:
    sender, receiver = setup.sender, setup.receiver
    assert not receiver.running
    submit(sender, ALICE, [BOB], simple_message(ALICE, BOB, "patience", "patience-marker"))

    within = sum(retry_interval(n) for n in (1, 2)) + 3 * POLL_SLACK
    seen = _deferred_by_attempts(sender, "b.test", until=3, within=within)
    first = seen[min(seen)]
    assert first.recipient == BOB and first.sender == ALICE
    assert first.attempts >= 1
    assert re.match(r"4\d\d 4\.\d+\.\d+ ", first.last_reply), first.last_reply
    # Backoff: the 3rd attempt is never earlier than due, and it sets the next one
    # retry_interval(3) after itself, so the time between the scheduled 3rd and 4th
    # attempts is at least 9 s, against at most 3 s + slack between the 2nd and 3rd.
    assert 2 in seen and 3 in seen, seen
    gap_3 = (seen[3].next_attempt - seen[2].next_attempt).total_seconds()
    assert gap_3 >= retry_interval(3) - TIMESTAMP_RESOLUTION, seen
    if 1 in seen:
        gap_2 = (seen[2].next_attempt - seen[1].next_attempt).total_seconds()
        assert retry_interval(2) - TIMESTAMP_RESOLUTION <= gap_2 < gap_3, seen

    receiver.start()
    arrived = wait_for_message(
        receiver, BOB, "patience-marker", within=MAX_RETRY_INTERVAL + 3 * POLL_SLACK
    )
    assert b"Subject: patience" in arrived
    assert len(mailbox_messages(receiver, BOB, "BODY", "patience-marker")) == 1
    wait_for_empty_queue(sender, "b.test")
    assert not [r for r in queue_rows(sender) if r.recipient == BOB]


@pytest.mark.parametrize(
    ("recipient", "status", "code"),
    [
        pytest.param("nobody@n.test", "5.1.10", "556", id="null-mx"),
        pytest.param("nobody@gone.test", "5.1.2", "550", id="nxdomain"),
        pytest.param("nobody@empty.test", "5.4.4", "550", id="no-mx-no-address"),
    ],
)
def test_an_undeliverable_domain_bounces_at_once(
    setup: Setup, recipient: str, status: str, code: str
) -> None:
    """No mail exchanger can exist: a failure report in the sender's INBOX at once
    (the first attempt fails permanently; nothing waits for a retry), parsed by
    Python's email package. RFC 7505 §4.1: 556 5.1.10 for a null MX."""
    sender = setup.sender
    domain = recipient.rsplit("@", 1)[1]
    subject = f"doomed-{domain.replace('.', '-')}"
    began = time.monotonic()
    submit(sender, ALICE, [recipient], simple_message(ALICE, recipient, subject, "never"))
    [report] = wait_for_reports(sender, ALICE, subject)
    assert time.monotonic() - began < 20.0
    assert ALICE in str(report.message["To"])
    assert report.message["Auto-Submitted"] == "auto-replied"
    assert report.per_message["reporting-mta"] == "dns; mx.test"
    [block] = report.recipients
    assert block["final-recipient"] == f"rfc822; {recipient}"
    assert block["action"] == "failed"
    assert block["status"] == status
    assert block["diagnostic-code"].startswith(f"smtp; {code} {status} "), block
    returned = list(report.message.iter_parts())[2].as_bytes()
    assert f"Subject: {subject}".encode() in returned
    wait_for_empty_queue(sender, domain)


def test_a_451_at_rcpt_is_deferred_then_delivered(setup: Setup) -> None:
    """The peer answers 451 to RCPT once: A defers the recipient (no report) and the
    retry a second later delivers. Spec: RFC 5321 §4.2.1, §4.5.4.1."""
    sender = setup.sender
    flaky = FlakySmtpServer(FLAKY_HOST, setup.receiver.smtp_port).start()
    try:
        rcpt = "carol@t.test"
        submit(sender, ALICE, [rcpt], simple_message(ALICE, rcpt, "flaky", "flaky-marker"))
        deadline = time.monotonic() + retry_interval(1) + 4 * POLL_SLACK
        while not flaky.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        assert flaky.rcpt_replies == [451, 250]
        [message] = flaky.messages
        assert b"flaky-marker" in message and b"Subject: flaky" in message
        wait_for_empty_queue(sender, "t.test")
    finally:
        flaky.stop()
    log = sender.log.read_text(errors="replace")
    assert re.search(r"delivery\.sent .*domain=t\.test .*451 4\.3\.0", log), log[-3000:]
    reports = mailbox_messages(sender, ALICE, "SUBJECT", "Undelivered", "TEXT", "flaky")
    assert reports == [], "a deferred recipient must not bounce"
