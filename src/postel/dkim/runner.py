"""One worker thread for the signature checks of a process, fed in batches.

``asyncio.to_thread`` costs a thread-pool hand-off and an event-loop wake-up for every
call, and under load the event loop and the pool threads trade the GIL back and forth
for each of them. ``VerifyRunner`` keeps one thread that takes every job waiting when it
wakes, runs them one after the other, and hands all their results back to the event
loop in one call: with many messages in flight the cost of leaving the loop is paid
per batch instead of per message, and verification still never runs on the event loop.

Spec: RFC 6376 §6.1 (verification is the verifier's CPU cost; ``DKIM_SIGNATURES_MAX``
bounds it per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["VERIFY_BATCH_MAX", "VerifyRunner"]

T = TypeVar("T")

VERIFY_BATCH_MAX = 64
"""Jobs run per wake-up before results go back to the event loop, so that the first
results of a large batch are not held back for long. Postel policy."""

_Job = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class VerifyRunner:
    """Runs blocking functions on one daemon thread (started on first use); ``run``
    awaits the result. Exceptions of the function are raised by ``run``."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, function: Callable[[], T]) -> T:
        """``function()`` on the runner's thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._ensure_thread()
        self._jobs.put((function, future, loop))
        return await future

    def close(self) -> None:
        """Stop the thread after the jobs already queued."""
        if self._thread is not None:
            self._jobs.put(None)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="postel-verify", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            with contextlib.suppress(queue.Empty):
                while len(batch) < VERIFY_BATCH_MAX:
                    job = self._jobs.get_nowait()
                    if job is None:
                        self._jobs.put(None)  # stop after this batch
                        break
                    batch.append(job)
            done: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]]
            done = {}
            for function, future, loop in batch:
                try:
                    outcome, ok = function(), True
                except BaseException as exc:  # handed to the awaiting coroutine
                    outcome, ok = exc, False
                done.setdefault(loop, []).append((future, outcome, ok))
            for loop, results in done.items():
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(_settle, results)


def _settle(results: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for future, outcome, ok in results:
        if future.done():  # its awaiting task was cancelled
            continue
        if ok:
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
