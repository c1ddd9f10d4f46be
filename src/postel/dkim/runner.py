"""The signature checks of a process, run in a worker process of their own.

DKIM verification is pure CPU (canonicalisation, hashing, RSA). Run in a thread of
the SMTP process it competes for that process's one interpreter lock with the event
loop: measured with sender authentication on, the thread's work and the lock
hand-offs around it cost the SMTP process about as much as everything else it does
for a message. ``VerifyRunner`` sends each job to one worker process
(``postel.dkim.verify_worker``, started on first use) over a pipe and awaits the
answer, so verification runs on another core and the event loop only pickles a job
and reads an answer.

Jobs are callables that pickle (functions of the module namespace, ``functools.partial``
of them). The worker answers in order. A job that cannot be pickled, one larger than a
frame may be (``FRAME_MAX``), one the worker cannot load, and every job while no worker
can be started run in a thread of this process instead, so a message is never kept
waiting on a worker that is not there. A worker that dies is started again (at most
``WORKER_RESTARTS_MAX`` times in ``WORKER_RESTART_WINDOW_S``; after that, threads only)
and its unanswered jobs go to the new one; a job whose second worker ends too raises
WorkerLost, so that no input that kills workers ever runs on the SMTP process. A job
unanswered after ``VERIFY_JOB_TIMEOUT_S`` raises TimeoutError and the worker is killed
(it is stuck); one watchdog timer per worker notices it, not a timer per job.

Spec: RFC 6376 §6.1 (verification is the verifier's CPU cost; ``DKIM_SIGNATURES_MAX``
bounds it per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from postel.dkim.framing import FRAME_HEADER, FRAME_MAX, JOB_ID_OCTETS, job

__all__ = [
    "VERIFY_JOB_TIMEOUT_S",
    "WATCHDOG_INTERVAL_S",
    "WORKER_RESTARTS_MAX",
    "WORKER_RESTART_WINDOW_S",
    "WORKER_STOP_TIMEOUT_S",
    "VerifyRunner",
    "WorkerLost",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

VERIFY_JOB_TIMEOUT_S = 60.0
"""Seconds one job may wait for its answer (queueing included) before the worker is
taken for stuck, killed, and the job raises TimeoutError. Postel policy: far above
the cost of verifying the largest message."""
WORKER_RESTARTS_MAX = 5
"""Worker starts allowed within ``WORKER_RESTART_WINDOW_S``; beyond that, jobs run in
threads of this process (a worker that cannot live is not started forever)."""
WORKER_RESTART_WINDOW_S = 60.0
"""The window of ``WORKER_RESTARTS_MAX``, seconds."""
WATCHDOG_INTERVAL_S = 1.0
"""Seconds between the watchdog's looks at the oldest job (a stuck job fails at most
this long after ``VERIFY_JOB_TIMEOUT_S``)."""
WORKER_STOP_TIMEOUT_S = 5.0
"""Seconds a closing worker has to finish its last job and exit before it is killed."""
_WORKER_MODULE = "postel.dkim.verify_worker"


class WorkerLost(RuntimeError):
    """A job's worker ended before answering it, and so did the next one."""


@dataclass(frozen=True, slots=True)
class _Job:
    function: Callable[[], Any]
    pickled: bytes
    future: asyncio.Future[Any]
    sent: float
    """Loop time the job went to its worker."""
    attempt: int
    """0, or 1 once resent after its first worker ended."""


class VerifyRunner:
    """Runs picklable blocking functions in a worker process; ``run`` awaits the
    result and raises what the function raised (see the module docstring)."""

    def __init__(self, *, use_process: bool = True) -> None:
        self._use_process = use_process
        self._process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[asyncio.subprocess.Process | None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, _Job] = {}
        """Jobs sent to the current worker and not answered, oldest first."""
        self._next_id = 0
        self._background: set[asyncio.Task[None]] = set()
        """Hand-offs in flight (kept referenced until done)."""
        self._starts: list[float] = []
        self._closed = False

    @property
    def worker_pid(self) -> int | None:
        """The running worker's process id, None when there is none."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def prestart(self) -> None:
        """Begin starting the worker now (e.g. at MAIL FROM) if it is not running, so
        that the first message does not wait for it. Needs a running event loop."""
        if self._use_process and not self._closed and self._process is None:
            self._ensure_starting()

    async def run(self, function: Callable[[], T]) -> T:
        """``function()`` in the worker process (or a thread, see the module docstring).
        Raises what ``function`` raised; TimeoutError after ``VERIFY_JOB_TIMEOUT_S``;
        WorkerLost when the worker ended twice before answering it."""
        if not self._use_process or self._closed:
            return await asyncio.to_thread(function)
        try:
            pickled = pickle.dumps(function, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # not picklable: this one runs here
            return await asyncio.to_thread(function)
        if len(pickled) > FRAME_MAX - JOB_ID_OCTETS:  # more than a frame may carry
            return await asyncio.to_thread(function)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._send(_Job(function, pickled, future, 0.0, 0))
        # From the worker; from the next worker if this one ended first; TimeoutError
        # from the watchdog if it is stuck.
        return await future

    async def _send(self, entry: _Job) -> None:
        """Hand ``entry`` to the worker (started if needed), or to a thread when no
        worker can run."""
        process = await self._worker() if self._use_process and not self._closed else None
        loop = asyncio.get_running_loop()
        if process is None or process.stdin is None:
            self._spawn(_settle_in_thread(entry.function, entry.future))
            return
        job_id = self._next_id = self._next_id + 1
        self._pending[job_id] = _Job(
            entry.function, entry.pickled, entry.future, loop.time(), entry.attempt
        )
        with contextlib.suppress(ConnectionError):  # a dead worker: its reader resends
            process.stdin.write(job(job_id, entry.pickled))
            await process.stdin.drain()

    async def aclose(self) -> None:
        """Stop the worker (it ends at the end of its input) and wait for it; jobs
        still unanswered run in threads. Idempotent."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):
                await self._starting
        process = self._process
        if process is not None and process.stdin is not None:
            process.stdin.close()
            try:
                async with asyncio.timeout(WORKER_STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader

    # -- the worker -------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _worker(self) -> asyncio.subprocess.Process | None:
        process = self._process
        if process is not None and process.returncode is None:
            return process
        return await self._ensure_starting()

    def _ensure_starting(self) -> asyncio.Task[asyncio.subprocess.Process | None]:
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start())
        return self._starting

    async def _start(self) -> asyncio.subprocess.Process | None:
        now = time.monotonic()
        self._starts = [t for t in self._starts if now - t < WORKER_RESTART_WINDOW_S]
        if len(self._starts) >= WORKER_RESTARTS_MAX:
            if self._use_process:
                log.error(
                    "dkim.worker.given_up",
                    extra={"starts": len(self._starts), "window_s": WORKER_RESTART_WINDOW_S},
                )
            self._use_process = False
            return None
        self._starts.append(now)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                _WORKER_MODULE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.error("dkim.worker.start_failed", extra={"error": str(exc)})
            self._use_process = False
            return None
        self._process = process
        loop = asyncio.get_running_loop()
        watchdog = loop.create_task(self._watch(process))
        self._reader = loop.create_task(self._read_answers(process, watchdog))
        log.info("dkim.worker.started", extra={"pid": process.pid})
        return process

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        """Every ``WATCHDOG_INTERVAL_S``: if the oldest job has waited longer than
        ``VERIFY_JOB_TIMEOUT_S``, fail it with TimeoutError and kill the worker (its
        other jobs then go to the next worker). One timer per worker, not per job."""
        loop = asyncio.get_running_loop()
        while process.returncode is None:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            oldest = next(iter(self._pending.items()), None)
            if oldest is None or loop.time() - oldest[1].sent <= VERIFY_JOB_TIMEOUT_S:
                continue
            job_id, entry = oldest
            del self._pending[job_id]
            if not entry.future.done():
                entry.future.set_exception(TimeoutError(f"no answer in {VERIFY_JOB_TIMEOUT_S:g} s"))
            log.error("dkim.worker.stuck", extra={"pid": process.pid})
            _kill(process)
            return

    async def _read_answers(
        self, process: asyncio.subprocess.Process, watchdog: asyncio.Task[None]
    ) -> None:
        """Settle each job's future from the worker's answers; when the worker ends,
        hand every job still waiting to a thread."""
        stdout = process.stdout
        assert stdout is not None
        try:
            while True:
                head = await stdout.readexactly(FRAME_HEADER)
                size = int.from_bytes(head, "big")
                if size > FRAME_MAX:
                    break
                job_id, ok, value = pickle.loads(await stdout.readexactly(size))
                entry = self._pending.pop(job_id, None)
                if entry is None or entry.future.done():
                    continue
                if ok:
                    entry.future.set_result(value)
                elif ok is None:  # the worker could not load it: run it here
                    log.warning("dkim.worker.job_not_loaded", extra={"error": value})
                    self._spawn(_settle_in_thread(entry.function, entry.future))
                else:
                    entry.future.set_exception(value)
        except Exception:  # the end of the stream, or a broken one: the worker is done
            pass
        finally:
            if self._process is process:
                self._process = None
            orphans, self._pending = self._pending, {}
            _kill(process)
            code = await process.wait()
            if not self._closed or orphans:
                log.warning(
                    "dkim.worker.ended",
                    extra={"pid": process.pid, "code": code, "jobs_moved": len(orphans)},
                )
            watchdog.cancel()
            for entry in orphans.values():
                if entry.future.done():
                    continue
                if self._closed:  # shutting down: finish it here
                    self._spawn(_settle_in_thread(entry.function, entry.future))
                elif entry.attempt == 0:  # once more, on the next worker
                    self._spawn(self._send(dataclasses.replace(entry, attempt=1)))
                else:  # it ended two workers: never here, on the SMTP process
                    entry.future.set_exception(WorkerLost("the worker ended twice on this job"))


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL ``process`` unless it is known to have ended. ``os.kill`` rather than
    ``Process.kill``: the latter polls first and can reap the child behind asyncio's
    back (its exit status would then read 255)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


async def _settle_in_thread(function: Callable[[], Any], future: asyncio.Future[Any]) -> None:
    try:
        value = await asyncio.to_thread(function)
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(value)
