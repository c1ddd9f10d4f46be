"""The extra port-25 processes of ``[smtp] processes`` (docs/adr/0005): started by the
main process, given the listening sockets and one end of a socketpair each, supervised
(restarted when one dies) and stopped with it.

Each worker runs ``postel.app.worker.main`` (``worker_argv``: ``python -c`` with the
same ``--config``/``--data`` and two options naming its inherited file descriptors; not
the ``postel`` command, whose administration modules a worker never uses); its
deliveries come back through
``delivery_ipc.DeliveryServer``. Workers are started before the main process drops
privileges, so they can read the TLS key and drop privileges themselves; a worker
restarted later runs with the dropped privileges (if it cannot read the key any more
it exits). A worker left down (``RESTARTS_MAX``) is reported through ``on_abandoned``:
the main process then serves that worker's sockets itself, so no connection the kernel
gives them waits on a process that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from postel.server.delivery_ipc import DeliveryServer
from postel.store import Store
from postel.store.blobs import BlobFiles

__all__ = ["SMTP_PROCESSES_MAX", "WORKER_ENTRY", "SmtpWorkers", "worker_argv"]

log = logging.getLogger(__name__)

SMTP_PROCESSES_MAX = 32
"""Largest ``[smtp] processes`` (the main process included). Postel policy: one per
core is the useful maximum; this bounds a typo."""
RESTART_DELAY_S = 1.0
"""Seconds before a worker that died is started again."""
RESTARTS_MAX = 20
"""Restarts of one worker slot in a row (each within ``STABLE_S`` of the last) before
it is left down (the main process still serves port 25)."""
STABLE_S = 60.0
"""A worker that ran this long before it died starts a fresh count of restarts."""
SUPERVISE_INTERVAL_S = 0.5
"""Seconds between checks of the workers' liveness."""
WORKER_ENTRY = "from postel.app.worker import main; raise SystemExit(main())"
"""The ``python -c`` program of a worker process; its options follow (``worker_argv``)."""
START_TIMEOUT_S = 60.0
"""Seconds the main process waits for its workers to accept connections before it
reports itself started anyway (a slow machine imports slowly)."""


def worker_argv(location: Sequence[str], listen_fds: Sequence[int], ipc_fd: int) -> list[str]:
    """The command line of one worker process: this interpreter, ``WORKER_ENTRY``, the
    options selecting the configuration (``location``: ``--config FILE`` or ``--data
    DIR``) and the inherited descriptors (``--listen-fds 5,6 --ipc-fd 7``)."""
    return [
        sys.executable,
        "-c",
        WORKER_ENTRY,
        *location,
        "--listen-fds",
        ",".join(str(fd) for fd in listen_fds),
        "--ipc-fd",
        str(ipc_fd),
    ]


@dataclass(slots=True)
class _Worker:
    slot: int
    process: subprocess.Popen[bytes]
    ipc: socket.socket
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)
    abandoned: bool = False
    """Left down after RESTARTS_MAX quick deaths in a row."""
    served: asyncio.Task[None] | None = field(default=None)
    up: asyncio.Event = field(default_factory=asyncio.Event)


class SmtpWorkers:
    """``count`` worker processes serving ``listen_fds`` (see the module docstring).

    ``location``: the CLI options that select the configuration (``--config FILE`` or
    ``--data DIR``); ``listen_fds``: per worker, its own SO_REUSEPORT sockets of the
    port-25 listeners (the kernel spreads connections over the processes' sockets);
    ``blob_dir``: where a worker that died left the temp files of the messages it was
    receiving (removed before it is started again)."""

    def __init__(
        self, location: Sequence[str], listen_fds: Sequence[Sequence[int]], blob_dir: Path
    ) -> None:
        self._files = BlobFiles(blob_dir)
        self._location = list(location)
        self._listen_fds = [list(fds) for fds in listen_fds]
        self._count = len(self._listen_fds)
        self._workers: list[_Worker] = []
        self._store: Store | None = None
        self.on_wake: Callable[[], None] | None = None
        """Called when a worker queued mail for other domains."""
        self.on_abandoned: Callable[[int], Awaitable[None]] | None = None
        """Awaited with the slot (the index into ``listen_fds``) of a worker left down."""
        self._stopping = False

    def spawn(self) -> None:
        """Start every worker (synchronously, before privileges are dropped)."""
        for slot in range(self._count):
            self._workers.append(self._start(slot))

    def _start(self, slot: int, restarts: int = 0) -> _Worker:
        ours, theirs = socket.socketpair()
        fds = self._listen_fds[slot]
        argv = worker_argv(self._location, fds, theirs.fileno())
        process = subprocess.Popen(argv, pass_fds=(*fds, theirs.fileno()))
        theirs.close()
        log.info("smtp.worker.started", extra={"slot": slot, "pid": process.pid})
        return _Worker(slot, process, ours, restarts)

    async def serve(self, store: Store) -> None:
        """Answer the workers' deliveries with ``store`` and restart workers that die,
        until ``stop``."""
        self._store = store
        for worker in self._workers:
            self._attach(worker)
        while not self._stopping:
            await asyncio.sleep(SUPERVISE_INTERVAL_S)
            for index, worker in enumerate(self._workers):
                code = worker.process.poll()
                if code is None or self._stopping or worker.abandoned:
                    continue
                cleared = await asyncio.to_thread(self._files.clear_tmp_of, worker.process.pid)
                log.warning(
                    "smtp.worker.exited",
                    extra={
                        "slot": worker.slot,
                        "pid": worker.process.pid,
                        "code": code,
                        "temp_files_removed": cleared,
                    },
                )
                restarts = worker.restarts
                if time.monotonic() - worker.started > STABLE_S:
                    restarts = 0
                if restarts >= RESTARTS_MAX:
                    worker.abandoned = True
                    log.error("smtp.worker.abandoned", extra={"slot": worker.slot})
                    if self.on_abandoned is not None:
                        await self.on_abandoned(worker.slot)
                    continue
                await asyncio.sleep(RESTART_DELAY_S)
                if self._stopping:
                    break
                fresh = self._start(worker.slot, restarts + 1)
                self._workers[index] = fresh
                self._attach(fresh)

    def _attach(self, worker: _Worker) -> None:
        assert self._store is not None
        server = DeliveryServer(self._store, self._wake, worker.up.set)
        worker.served = asyncio.create_task(server.serve(worker.ipc))

    def _wake(self) -> None:
        if self.on_wake is not None:
            self.on_wake()

    async def wait_up(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every worker accepts connections;
        whether they all do."""
        waits = [asyncio.create_task(w.up.wait()) for w in self._workers]
        if not waits:
            return True
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for task in pending:
            task.cancel()
        return not pending

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [w.process.pid for w in self._workers if w.process.poll() is None]

    async def stop(self, grace: float) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds for them to finish their
        sessions (their deliveries are still answered meanwhile), then SIGKILL."""
        self._stopping = True
        for worker in self._workers:
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(w.process.poll() is None for w in self._workers):
            await asyncio.sleep(0.05)
        for worker in self._workers:
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
            if worker.served is None:
                worker.ipc.close()  # never attached; otherwise its transport closes it
                continue
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(worker.served, 2.0)
