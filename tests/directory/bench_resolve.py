"""Measure Directory.resolve (a benchmark, not a test): CPU per RCPT TO lookup.

Run: .venv/bin/python tests/directory/bench_resolve.py [--callers 50] [--resolves 20000]
     [--cache-ttl SECONDS]
A SQLite store with 100 accounts and 10 aliases; concurrent callers resolve a mix like
an inbound MX sees: 80% existing accounts, 10% subaddresses and aliases, 10% unknown
local parts (each one new, so never answered from a cache). ``--cache-ttl 0`` measures
the store path alone. Prints resolves per second and process CPU ms per resolve.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from postel.clock import SystemClock
from postel.directory import Directory, LocalRecipients, UnknownRecipient
from postel.store import Credentials, open_store

USERS = 100


def workload(total: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for n in range(total):
        roll = rng.random()
        if roll < 0.8:
            out.append(f"user{rng.randrange(USERS)}@bench.example")
        elif roll < 0.85:
            out.append(f"user{rng.randrange(USERS)}+tag@bench.example")
        elif roll < 0.9:
            out.append(f"list{rng.randrange(10)}@bench.example")
        else:
            out.append(f"unknown{n}@bench.example")
    return out


async def bench(callers: int, total: int, cache_ttl: float | None) -> tuple[float, float]:
    """``(resolves per second, CPU ms per resolve)``."""
    with tempfile.TemporaryDirectory(prefix="postel-bench-") as tmp:
        store = open_store(
            f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp) / "blobs", clock=SystemClock()
        )
        await store.open()
        await store.add_domain("bench.example")
        creds = Credentials("x", b"s", 4096, b"k" * 32, b"k" * 32)
        for i in range(USERS):
            await store.add_account(f"user{i}@bench.example", creds, is_admin=i == 0)
        for i in range(10):
            await store.add_alias(f"list{i}@bench.example", [f"user{i}@bench.example"])
        options: dict[str, Any] = {} if cache_ttl is None else {"cache_ttl": cache_ttl}
        directory = Directory(store, None, **options)
        addresses = workload(total)

        async def caller(c: int) -> None:
            for address in addresses[c::callers]:
                result = await directory.resolve(address)
                assert isinstance(result, LocalRecipients | UnknownRecipient)

        cpu0, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        await store.close()
        return total / elapsed, cpu * 1000 / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--resolves", type=int, default=20000)
    parser.add_argument("--cache-ttl", type=float, default=None)
    args = parser.parse_args()
    rate, cpu_ms = asyncio.run(bench(args.callers, args.resolves, args.cache_ttl))
    ttl = "default" if args.cache_ttl is None else f"{args.cache_ttl:g} s"
    print(f"{rate:.0f} resolves/s, {cpu_ms:.3f} CPU ms/resolve (cache TTL {ttl})")


if __name__ == "__main__":
    main()
