"""Kill -9 chaos, inbound (RELIABILITY.md test 1).

20 concurrent SMTP clients (threads with smtplib) send 2,000 messages while the server is
SIGKILLed 5 times at random moments and restarted. A client that loses its connection
retries; a message whose 250 it never saw is sent again under a NEW Message-ID. Then:

- every message that got a 250 is stored exactly once, byte-exact (Message-ID and the
  SHA-256 of the content compared as sets);
- nothing else is stored twice, and nothing stored is torn (every stored message is one
  that was sent, byte-exact);
- after each restart the server accepts mail (a full transaction answered 250) within
  5 s, and start-up recovery never reports a missing blob.

``POSTEL_EXTENDED=1`` scales to 10,000 messages and 20 kills (the extended mode).
The seed is printed; ``POSTEL_CRASH_SEED=<n>`` replays a run's schedule.

Spec: RELIABILITY.md D1 (250 only after durable commit), D2 (recovery at every start).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from .conftest import ServerFactory
from .server import PostelServer
from .stored import read_inbox

EXTENDED = os.environ.get("POSTEL_EXTENDED") == "1"
MESSAGES = 10_000 if EXTENDED else 2_000
KILLS = 20 if EXTENDED else 5
CLIENTS = 20
RESTART_ACCEPT_MAX = 5.0
"""Seconds from starting the process again to a 250 for a whole transaction."""
RUN_DEADLINE = 3000.0 if EXTENDED else 240.0
"""Seconds the clients may take in all before the test gives up."""
SMTP_TIMEOUT = 30.0

DOMAIN = "example.test"
RCPT = f"crash@{DOMAIN}"
SENDER = "load@remote.test"
_MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)\r\n", re.MULTILINE)


@dataclass
class Ledger:
    """What the clients saw, shared between threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, str] = field(default_factory=dict)
    """Message-ID -> SHA-256 of every message whose DATA was started."""
    acked: dict[str, str] = field(default_factory=dict)
    """Message-ID -> SHA-256 of every message answered 250."""
    errors: Counter[str] = field(default_factory=Counter)

    def attempt(self, message_id: str, digest: str) -> None:
        with self.lock:
            self.sent[message_id] = digest

    def ack(self, message_id: str, digest: str) -> None:
        with self.lock:
            self.acked[message_id] = digest

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1

    @property
    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def make_message(rng: random.Random, message_id: str) -> bytes:
    """A message of a few KB, sometimes a file-backed blob (> 128 KiB), rarely one
    spooled while it arrives (> 1 MiB)."""
    roll = rng.random()
    if roll < 0.005:
        lines = 20_000
    elif roll < 0.025:
        lines = 3_000
    else:
        lines = rng.randint(1, 100)
    seed = rng.getrandbits(64)
    body = b"".join(
        b"line %d of %s %016x\r\n" % (n, message_id.encode(), seed) for n in range(lines)
    )
    return (
        b"From: load@remote.test\r\n"
        b"To: " + RCPT.encode() + b"\r\n"
        b"Subject: crash test\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\n"
        b"\r\n" + body
    )


class Client(threading.Thread):
    """Sends ``count`` messages, each until a 250; a new Message-ID for every try."""

    def __init__(self, index: int, count: int, server: PostelServer, ledger: Ledger, seed: int):
        super().__init__(name=f"smtp-client-{index}", daemon=True)
        self.index = index
        self.count = count
        self.server = server
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.deadline = time.monotonic() + RUN_DEADLINE
        self.done = 0
        self.failure: str | None = None

    def run(self) -> None:
        client: smtplib.SMTP | None = None
        attempt = 0
        while self.done < self.count:
            if time.monotonic() > self.deadline:
                self.failure = f"deadline passed with {self.done}/{self.count} sent"
                return
            message_id = f"<c{self.index}.m{self.done}.t{attempt}@crash.test>"
            attempt += 1
            try:
                if client is None:
                    client = smtplib.SMTP(*self.server.address, timeout=SMTP_TIMEOUT)
                    client.ehlo("client.test")
                if self.send(client, message_id):
                    self.done += 1
                    attempt = 0
            except (OSError, smtplib.SMTPException) as exc:
                self.ledger.error(type(exc).__name__)
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
                client = None
                time.sleep(0.02)
        if client is not None:
            with contextlib.suppress(Exception):
                client.quit()

    def send(self, client: smtplib.SMTP, message_id: str) -> bool:
        content = make_message(self.rng, message_id)
        digest = hashlib.sha256(content).hexdigest()
        code, _ = client.mail(SENDER)
        if code != 250:
            self.ledger.error(f"MAIL {code}")
            client.rset()
            return False
        code, _ = client.rcpt(RCPT)
        if code != 250:
            self.ledger.error(f"RCPT {code}")
            client.rset()
            return False
        self.ledger.attempt(message_id, digest)
        code, _ = client.data(content)
        if code != 250:
            self.ledger.error(f"DATA {code}")
            return False
        self.ledger.ack(message_id, digest)
        return True


def probe(server: PostelServer, ledger: Ledger, n: int) -> None:
    """One whole transaction, retried until 250; raises after RESTART_ACCEPT_MAX."""
    deadline = time.monotonic() + RESTART_ACCEPT_MAX
    attempt = 0
    while True:
        message_id = f"<probe{n}.t{attempt}@crash.test>"
        attempt += 1
        content = make_message(random.Random(n), message_id)
        digest = hashlib.sha256(content).hexdigest()
        try:
            with smtplib.SMTP(*server.address, timeout=RESTART_ACCEPT_MAX) as client:
                ledger.attempt(message_id, digest)
                client.sendmail(SENDER, [RCPT], content)
            ledger.ack(message_id, digest)
            return
        except (OSError, smtplib.SMTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def chaos(
    server: PostelServer, ledger: Ledger, clients: list[Client], rng: random.Random
) -> list[float]:
    """Kill at KILLS random points of progress; returns the seconds from each restart to
    the first 250."""
    thresholds = sorted(rng.uniform(0.03, 0.9) * MESSAGES for _ in range(KILLS))
    restarts: list[float] = []
    for n, threshold in enumerate(thresholds):
        while ledger.acked_count < threshold and any(c.is_alive() for c in clients):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        server.kill()
        time.sleep(rng.uniform(0.0, 0.2))
        began = time.monotonic()
        server.start()
        probe(server, ledger, n)
        restarts.append(time.monotonic() - began)
    return restarts


def stored_by_message_id(server: PostelServer) -> dict[str, list[str]]:
    """Message-ID -> SHA-256 of each stored copy."""
    found: dict[str, list[str]] = {}
    for message in read_inbox(server, RCPT):
        match = _MESSAGE_ID.search(message.content)
        key = match.group(1).decode() if match else f"<no Message-ID: UID {message.meta.uid}>"
        found.setdefault(key, []).append(hashlib.sha256(message.content).hexdigest())
    return found


@pytest.mark.timeout(RUN_DEADLINE + 300)
def test_kill9_chaos_loses_no_acknowledged_message(postel_factory: ServerFactory) -> None:
    seed = int(os.environ.get("POSTEL_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed {seed} ({MESSAGES} messages, {KILLS} kills)")
    rng = random.Random(seed)
    server = postel_factory("crash")
    server.add_accounts(DOMAIN, "crash")
    server.start()

    ledger = Ledger()
    per_client = [MESSAGES // CLIENTS + (i < MESSAGES % CLIENTS) for i in range(CLIENTS)]
    clients = [
        Client(i, count, server, ledger, rng.getrandbits(32)) for i, count in enumerate(per_client)
    ]
    for client in clients:
        client.start()
    restarts = chaos(server, ledger, clients, rng)
    for client in clients:
        client.join(RUN_DEADLINE)
    failures = [f"{c.name}: {c.failure}" for c in clients if c.failure or c.is_alive()]
    assert not failures, failures
    assert server.stop() == 0
    print(f"restarts (s): {[round(r, 2) for r in restarts]}; client errors: {dict(ledger.errors)}")

    assert len(restarts) == KILLS
    slow = [r for r in restarts if r > RESTART_ACCEPT_MAX]
    assert not slow, f"restarts slower than {RESTART_ACCEPT_MAX}s: {slow}"
    recoveries = re.findall(r"store\.recovery\.done .*missing=(\d+)", server.log.read_text())
    assert len(recoveries) == KILLS + 1, recoveries
    assert all(m == "0" for m in recoveries), f"missing blobs after a restart: {recoveries}"

    stored = stored_by_message_id(server)
    lost = sorted(mid for mid in ledger.acked if mid not in stored)
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    duplicated = sorted(mid for mid, copies in stored.items() if len(copies) > 1)
    assert not duplicated, f"{len(duplicated)} messages stored twice, e.g. {duplicated[:5]}"
    unknown = sorted(mid for mid in stored if mid not in ledger.sent)
    assert not unknown, f"stored messages never sent: {unknown[:5]}"
    corrupt = sorted(mid for mid, copies in stored.items() if copies[0] != ledger.sent[mid])
    assert not corrupt, f"{len(corrupt)} stored messages differ from what was sent: {corrupt[:5]}"
    acked_pairs = set(ledger.acked.items())
    stored_pairs = {(mid, copies[0]) for mid, copies in stored.items()}
    assert acked_pairs <= stored_pairs
    assert len(ledger.acked) == MESSAGES + KILLS
