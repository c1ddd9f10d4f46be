"""Change notifications between postel processes sharing one PostgreSQL database.

Every committed mailbox change is published on the local ChangeHub; ``PgChangeRelay``
also sends it as ``NOTIFY postel_changes, '<mailbox id>:<modseq>'`` and LISTENs on
the same channel, handing what other processes send to the local hub. IMAP sessions in
IDLE therefore learn of mail another node delivered within a round trip. A notification
can be lost (a dropped connection); sessions re-check the store periodically anyway
(``limits.IMAP_CHANGE_RECHECK``), and the relay reconnects with a growing delay.

Spec: PostgreSQL 15 documentation, NOTIFY and LISTEN; RFC 9051 §5.2 (mailbox updates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from postel.ids import MailboxId
from postel.store.changes import ChangeHub

log = logging.getLogger(__name__)

CHANNEL = "postel_changes"
"""The NOTIFY channel."""
PENDING_MAX = 10_000
"""Publications queued for sending; beyond this the oldest are dropped (sessions
re-check periodically, so a dropped notification only delays an update)."""
RECONNECT_DELAY_MAX = 30.0
"""Longest wait between reconnection attempts, seconds."""
CONNECT_TIMEOUT = 10
"""Seconds to establish a listener or sender connection."""


class PgChangeRelay:
    """LISTEN/NOTIFY relay for one process. ``conninfo`` is a libpq URL
    (``postgresql://user@host/db``). Use ``start()`` on the event loop, ``stop()`` to end."""

    def __init__(self, conninfo: str, hub: ChangeHub) -> None:
        self._conninfo = conninfo
        self._hub = hub
        self._queue: asyncio.Queue[str] = asyncio.Queue(PENDING_MAX)
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0
        """Notifications received (for tests and metrics)."""

    def start(self) -> None:
        """Start listening and sending; installs itself as the hub's relay."""
        self._hub.set_relay(self)
        self._tasks = [
            asyncio.get_running_loop().create_task(self._listen()),
            asyncio.get_running_loop().create_task(self._send()),
        ]

    async def stop(self) -> None:
        """Stop both tasks and detach from the hub."""
        self._hub.set_relay(None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def relay(self, mailbox_id: MailboxId, highestmodseq: int) -> None:
        """Queue one publication for NOTIFY (never blocks)."""
        payload = f"{int(mailbox_id)}:{int(highestmodseq)}"
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(payload)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.5
                    async for note in conn.notifies():
                        self._deliver(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: reconnect
                log.warning("store.notify.listen_failed", extra={"error": str(exc)[:200]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX)

    def _deliver(self, payload: str) -> None:
        mailbox, _, modseq = payload.partition(":")
        if not (mailbox.isdigit() and modseq.isdigit()):
            return
        self.received += 1
        self._hub.receive(MailboxId(int(mailbox)), int(modseq))

    async def _send(self) -> None:
        delay = 0.5
        while True:
            payload = await self._queue.get()
            try:
                async with await self._connect() as conn:
                    delay = 0.5
                    while True:
                        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                        payload = await self._queue.get()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("store.notify.send_failed", extra={"error": str(exc)[:200]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX)
