"""Measure deliver(): 1 KB messages from concurrent callers (a benchmark, not a test).

Run: .venv/bin/python tests/store/bench_deliver.py [--callers 50] [--messages 5000]
     [--url URL | --pg] [--recipients 1]
``--pg`` starts a throwaway PostgreSQL cluster (tests/pgcluster.py) for the run.
Every delivery carries a queue id, as SMTP deliveries do (so the duplicate check runs).
Prints deliveries per second and the process CPU per delivery (milliseconds; CPU time of
all threads, so it is meaningful on a busy machine where wall-clock rates are not). The
database is durable (WAL, synchronous=FULL; PostgreSQL synchronous_commit=on).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from postel.clock import SystemClock
from postel.ids import QueueId
from postel.store import Credentials, Delivery, open_store


async def bench(url: str | None, callers: int, total: int, recipients: int) -> tuple[float, float]:
    """``(deliveries per second, CPU ms per delivery)``; one delivery = one recipient."""
    with tempfile.TemporaryDirectory(prefix="postel-bench-") as tmp:
        db_url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = open_store(db_url, Path(tmp) / "blobs", clock=SystemClock())
        await store.open()
        await store.add_domain("bench.example")
        creds = Credentials("x", b"s", 4096, b"k" * 32, b"k" * 32)
        accounts = [await store.add_account(f"u{i}@bench.example", creds) for i in range(10)]
        per_caller = total // callers

        async def caller(c: int) -> None:
            for n in range(per_caller):
                writer = store.blob_writer()
                writer.write(f"Subject: {c}/{n}\r\n\r\n".encode() + b"x" * 1000)
                ref = await writer.commit()
                await store.deliver(
                    [
                        Delivery(
                            account_id=accounts[(c + r) % len(accounts)].id,
                            mailbox="INBOX",
                            blob=ref,
                            trace_prefix=b"Delivered-To: u@bench.example\r\n",
                            internal_date=SystemClock().now(),
                            summary="{}",
                            queue_id=QueueId(f"Q{c}x{n}"),
                        )
                        for r in range(recipients)
                    ]
                )

        cpu0, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        await store.close()
        count = per_caller * callers * recipients
        return count / elapsed, cpu * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--url", default=None)
    parser.add_argument("--pg", action="store_true", help="start a throwaway PostgreSQL")
    args = parser.parse_args()
    cluster = None
    url = args.url
    if args.pg:
        sys.path.insert(0, str(Path(__file__).parents[1]))
        from pgcluster import PgCluster

        cluster = PgCluster.start()
        url = cluster.create_database("bench")
    try:
        rate, cpu_ms = asyncio.run(bench(url, args.callers, args.messages, args.recipients))
    finally:
        if cluster is not None:
            cluster.stop()
    print(
        f"{rate:.0f} deliveries/s, {cpu_ms:.3f} CPU ms/delivery "
        f"({args.callers} callers, {args.recipients} recipient(s), 1 KB messages)"
    )


if __name__ == "__main__":
    main()
