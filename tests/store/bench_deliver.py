"""Measure deliver() throughput: 1 KB messages from concurrent callers (not a test).

Run: .venv/bin/python tests/store/bench_deliver.py [--callers 50] [--messages 5000] [--url URL]
Prints deliveries per second; the database is durable (WAL, synchronous=FULL).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from postel.clock import SystemClock
from postel.store import Credentials, Delivery, open_store


async def bench(url: str | None, callers: int, total: int) -> float:
    with tempfile.TemporaryDirectory(prefix="postel-bench-") as tmp:
        db_url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = open_store(db_url, Path(tmp) / "blobs", clock=SystemClock())
        await store.open()
        await store.add_domain("bench.example")
        creds = Credentials("x", b"s", 4096, b"k" * 32, b"k" * 32)
        accounts = [await store.add_account(f"u{i}@bench.example", creds) for i in range(10)]
        per_caller = total // callers

        async def caller(c: int) -> None:
            account = accounts[c % len(accounts)]
            for n in range(per_caller):
                writer = store.blob_writer()
                writer.write(f"Subject: {c}/{n}\r\n\r\n".encode() + b"x" * 1000)
                ref = await writer.commit()
                await store.deliver(
                    [
                        Delivery(
                            account_id=account.id,
                            mailbox="INBOX",
                            blob=ref,
                            trace_prefix=b"Delivered-To: u@bench.example\r\n",
                            internal_date=SystemClock().now(),
                            summary="{}",
                        )
                    ]
                )

        start = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        elapsed = time.perf_counter() - start
        await store.close()
        return per_caller * callers / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    rate = asyncio.run(bench(args.url, args.callers, args.messages))
    print(f"{rate:.0f} deliveries/s ({args.callers} callers, 1 KB messages)")


if __name__ == "__main__":
    main()
