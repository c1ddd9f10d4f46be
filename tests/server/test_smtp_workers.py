"""Supervision of port-25 worker processes (docs/adr/0005): a worker that keeps dying
is left down after RESTARTS_MAX restarts, and the main process is told which slot, so
that it serves that worker's sockets itself."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, cast

import pytest

from postel.server import smtp_workers
from postel.server.smtp_workers import SmtpWorkers
from postel.store import Store


async def test_a_worker_left_down_is_reported_with_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smtp_workers, "RESTARTS_MAX", 2)
    monkeypatch.setattr(smtp_workers, "RESTART_DELAY_S", 0.0)
    monkeypatch.setattr(smtp_workers, "SUPERVISE_INTERVAL_S", 0.05)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    # A configuration that does not exist: each worker exits at once.
    workers = SmtpWorkers(
        ["--config", str(tmp_path / "missing.toml")], [[listener.fileno()]], tmp_path
    )
    abandoned: asyncio.Queue[int] = asyncio.Queue()

    async def on_abandoned(slot: int) -> None:
        await abandoned.put(slot)

    workers.on_abandoned = on_abandoned
    workers.spawn()
    serving = asyncio.create_task(workers.serve(cast(Store, cast(Any, object()))))
    try:
        assert await asyncio.wait_for(abandoned.get(), 60) == 0
        assert workers.pids == []
    finally:
        await workers.stop(1.0)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        listener.close()
