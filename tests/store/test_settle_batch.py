"""Group commit of queue settles (pure logic over a scripted batch writer)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from postel.errors import StoreError
from postel.store.settle_batch import SettleBatcher, SettleRequest


class Writer:
    """Records batches; a request whose ``lease`` is "bad" fails its whole batch."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.gate = asyncio.Event()

    async def write_many(self, requests: Sequence[SettleRequest]) -> list[Any]:
        await self.gate.wait()
        self.batches.append([r.lease for r in requests])
        if "bad" in [r.lease for r in requests]:
            raise StoreError("outcome for a recipient not in the lease")
        return [f"done {r.lease}" for r in requests]


def request(name: str) -> SettleRequest:
    return SettleRequest(name, {}, None, None, ())  # type: ignore[arg-type]


async def test_concurrent_settles_share_a_transaction() -> None:
    writer = Writer()
    batcher = SettleBatcher(writer.write_many)
    first = asyncio.create_task(batcher.settle(request("a")))
    await asyncio.sleep(0)  # "a" is being written...
    rest = [asyncio.create_task(batcher.settle(request(n))) for n in "bcd"]
    writer.gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == ["done a", "done b", "done c", "done d"]
    assert writer.batches == [["a"], ["b", "c", "d"]]


async def test_a_failing_settle_fails_alone() -> None:
    writer = Writer()
    writer.gate.set()
    batcher = SettleBatcher(writer.write_many)
    tasks = [asyncio.create_task(batcher.settle(request(n))) for n in ("x", "bad", "y")]
    good_x, bad, good_y = await asyncio.gather(*tasks, return_exceptions=True)
    assert (good_x, good_y) == ("done x", "done y")
    assert isinstance(bad, StoreError)
    assert writer.batches[0] == ["x", "bad", "y"]  # then one by one
    assert writer.batches[1:] == [["x"], ["bad"], ["y"]]


async def test_nothing_waits_after_the_last_settle() -> None:
    writer = Writer()
    writer.gate.set()
    batcher = SettleBatcher(writer.write_many)
    assert await batcher.settle(request("z")) == "done z"
    with pytest.raises(StoreError):
        await batcher.settle(request("bad"))
    assert await batcher.settle(request("w")) == "done w"
