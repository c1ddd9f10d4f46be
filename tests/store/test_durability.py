"""Every acknowledged delivery survives a SIGKILL of the delivering process.

Spec: RELIABILITY.md D1 (durable acknowledgement), D2 (recovery at every start).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from postel.clock import SystemClock
from postel.store import open_store

from .durability_child import ADDRESS, PREFIX, payload

CHILD = Path(__file__).with_name("durability_child.py")
ROUNDS = 3
READY_TIMEOUT_S = 60


def run_and_kill(url: str, blob_dir: Path, first: int, rng: random.Random) -> dict[int, int]:
    """Start the child, SIGKILL it after a random number of acks; returns index -> UID."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), url, str(blob_dir), str(first)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked: dict[int, int] = {}
    try:
        assert child.stdout.readline().strip() == "ready"
        target = rng.randint(5, 120)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(acked) < target and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            index, uid = line.split()
            acked[int(index)] = int(uid)
        time.sleep(rng.random() * 0.02)
        os.kill(child.pid, signal.SIGKILL)
        # Lines already written before the kill were acknowledged too.
        for line in child.stdout:
            if line.endswith("\n"):
                index, uid = line.split()
                acked[int(index)] = int(uid)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return acked


async def test_acknowledged_deliveries_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    blob_dir = tmp_path / "blobs"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acked: dict[int, int] = {}
    first = 0
    for _ in range(ROUNDS):
        got = run_and_kill(database_url, blob_dir, first, rng)
        assert got, "the child acknowledged nothing"
        acked.update(got)
        first = max(acked) + 100

    store = open_store(database_url, blob_dir, clock=SystemClock())
    report = await store.open()
    try:
        assert report.missing_blobs == ()
        account = await store.get_account(ADDRESS)
        assert account is not None
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        stored = {m.uid for m in await store.list_messages(inbox.id)}
        assert set(acked.values()) <= stored
        assert len(set(acked.values())) == len(acked)
        for index, uid in acked.items():
            assert await store.read_message(inbox.id, uid) == PREFIX + payload(index)
        assert inbox.uidnext == max(stored) + 1
        assert stored == set(range(1, inbox.uidnext))
    finally:
        await store.close()
    if database_url.startswith("sqlite"):
        # One node: recovery empties tmp/. With PostgreSQL other nodes may share the blob
        # directory, so fresh spool files are kept for the grace period (recovery.py).
        assert list((blob_dir / "tmp").iterdir()) == []
