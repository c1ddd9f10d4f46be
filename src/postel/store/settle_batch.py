"""Group commit for queue settles: outcomes reported by concurrent delivery connections
while one settle transaction runs are written together in the next one, so the queue
pays one commit (one fsync) per batch rather than per message.

Each settle keeps its own meaning: if the batch's transaction fails, its settles are
run again one transaction each, so one bad settle fails alone.

Spec: RELIABILITY.md D1 (group commit); RFC 5321 §4.5.4.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from postel.store.queue_api import BackoffPolicy, Lease, Outcome, QueueRecipientId, SettleResult

SETTLE_BATCH_MAX = 256
"""Settles written in one transaction at most (local policy: bounds the transaction)."""


@dataclass(frozen=True, slots=True)
class SettleRequest:
    """The arguments of one ``Store.settle`` call."""

    lease: Lease
    outcomes: Mapping[QueueRecipientId, Outcome]
    now: dt.datetime
    policy: BackoffPolicy
    passed_on: Collection[QueueRecipientId]


WriteMany = Callable[[Sequence[SettleRequest]], Awaitable[list[SettleResult]]]
"""Runs the requests in one transaction (all or nothing)."""


class SettleBatcher:
    """Coalesces concurrent ``settle`` calls into shared transactions (see module).
    ``write_many`` writes a batch; it is called with one request to retry alone."""

    def __init__(self, write_many: WriteMany) -> None:
        self._write_many = write_many
        self._waiting: list[tuple[SettleRequest, asyncio.Future[SettleResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def settle(self, request: SettleRequest) -> SettleResult:
        """Settle ``request`` in the next batch; raises what its own write raised."""
        future: asyncio.Future[SettleResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch = self._waiting[:SETTLE_BATCH_MAX]
            del self._waiting[:SETTLE_BATCH_MAX]
            try:
                results = await self._write_many([request for request, _ in batch])
            except Exception:
                await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(
        self, batch: list[tuple[SettleRequest, asyncio.Future[SettleResult]]]
    ) -> None:
        for request, future in batch:
            try:
                (result,) = await self._write_many([request])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)
