"""Child process of test_durability: delivers in a loop, printing each acknowledged UID.

Usage: python durability_child.py DATABASE_URL BLOB_DIR FIRST_INDEX
Prints ``<index> <uid>`` after each deliver() returned, until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from postel.clock import SystemClock
from postel.ids import QueueId
from postel.limits import BLOB_INLINE_MAX
from postel.store import Credentials, Delivery, open_store

ADDRESS = "durable@example.org"
PREFIX = b"Delivered-To: durable@example.org\r\n"


def payload(i: int) -> bytes:
    """Message ``i``: every fifth one is a file blob, the rest are inline."""
    size = BLOB_INLINE_MAX + 1000 + i if i % 5 == 0 else 900 + i % 300
    head = f"Subject: message {i}\r\n\r\n".encode()
    return head + bytes((i + k) % 251 for k in range(size))


async def main(url: str, blob_dir: Path, first: int) -> None:
    store = open_store(url, blob_dir, clock=SystemClock())
    await store.open()
    account = await store.get_account(ADDRESS)
    if account is None:
        if await store.get_domain("example.org") is None:
            await store.add_domain("example.org")
        account = await store.add_account(
            ADDRESS, Credentials("x", b"s", 4096, b"k" * 32, b"k" * 32)
        )
    print("ready", flush=True)

    async def one(i: int) -> None:
        writer = store.blob_writer()
        writer.write(payload(i))
        ref = await writer.commit()
        (done,) = await store.deliver(
            [
                Delivery(
                    account_id=account.id,
                    mailbox="INBOX",
                    blob=ref,
                    trace_prefix=PREFIX,
                    internal_date=SystemClock().now(),
                    summary="{}",
                    queue_id=QueueId(f"Q{i}"),
                )
            ]
        )
        sys.stdout.write(f"{i} {done.uid}\n")
        sys.stdout.flush()

    i = first
    while True:
        # A few concurrent callers, so acknowledgements come from shared commits.
        await asyncio.gather(*(one(i + k) for k in range(4)))
        i += 4


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
