"""Delivery status notifications for the outbound queue, and the loop that sends them.

A report goes to the envelope sender of the original message, never to a null sender
(RFC 5321 §4.5.5, RFC 3461 §6.1), with a null sender itself (so reports never loop):
into the sender's mailbox when the sender is ours, through the outbound queue otherwise
(the composition root's ``deliver``). The Bouncer sends, per message:

* once every recipient is final, one report for the recipients that failed and asked
  for FAILURE (the default) and those delivered to a server without the DSN extension
  that asked for SUCCESS (``relayed``); recipients sent to a server that took the
  extension carried their NOTIFY on and are not ours to report (the store drops their
  SUCCESS when they are settled: ``Store.settle(dsn_passed_on=...)``);
* once ``delay_notice_after`` has passed with recipients still undelivered, one delay
  report for all of them that asked for DELAY (the default), with Will-Retry-Until
  from the retry lifetime. Each recipient gets at most one delay report.

The report bytes are built by ``dsn_report``.

Spec: RFC 3464 §2, §2.3.3 (Action), §2.3.9 (Will-Retry-Until); RFC 3461 §4.1-4.4
(NOTIFY, ORCPT, RET, ENVID), §5.2.1-5.2.2, §5.2.5-5.2.6, §6.1-6.2; RFC 6522.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from postel.clock import Clock
from postel.errors import StoreError
from postel.smtp.params import Notify
from postel.store import Store
from postel.store.queue_api import DEFAULT_BACKOFF, BackoffPolicy, QueuedMessage, QueueEntry

from .dsn_report import (
    FULL_RETURN_MAX,
    HEADER_PART_MAX,
    Action,
    ReportEnvelope,
    ReportRecipient,
    build_report,
    recipient_of,
    wants_full,
)

log = logging.getLogger(__name__)

BOUNCE_POLL_S = 5.0
"""Seconds between looks for finished queue entries and due delay notices."""
BOUNCE_BATCH_MAX = 100
"""Queue entries handled per look, of each kind (local policy; the next look takes the
rest)."""

Deliver = Callable[[str, bytes], Awaitable[None]]
"""Sends one report: ``(recipient address, message bytes)``; raises StoreError."""


def build_failure_report(
    entry: QueueEntry, original: bytes, *, hostname: str, now: dt.datetime
) -> bytes:
    """The report for the failed recipients of ``entry`` (``entry.failed``, at least
    one), addressed to its envelope sender. ``original`` is the message as queued
    (trace prefix and blob). Spec: RFC 3464 §2, RFC 6522 §3."""
    recipients = [recipient_of(r, Action.FAILED) for r in entry.failed]
    return build_report(
        ReportEnvelope.of(entry.message), recipients, original, hostname=hostname, now=now
    )


def finished_recipients(entry: QueueEntry) -> list[ReportRecipient]:
    """What a finished entry's report tells: ``failed`` recipients, then ``relayed``
    ones (delivered, SUCCESS asked, not passed on); empty for the null sender.
    Spec: RFC 3461 §5.2.2, §5.2.6; RFC 3464 §2.3.3."""
    return [recipient_of(r, Action.FAILED) for r in entry.failed] + [
        recipient_of(r, Action.RELAYED) for r in entry.delivered_with_notice
    ]


class Bouncer:
    """Sends the reports a queued message owes (see the module docstring).

    ``deliver`` sends one report (the composition root decides: local mailbox or the
    queue); ``backoff`` is the queue's retry policy (delay notices and
    Will-Retry-Until). Run ``run()`` as a task; ``stop()`` ends it.
    """

    def __init__(
        self,
        store: Store,
        deliver: Deliver,
        *,
        hostname: str,
        clock: Clock,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
    ) -> None:
        self._store = store
        self._deliver = deliver
        self._hostname = hostname
        self._clock = clock
        self._backoff = backoff
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Send every report due now; returns how many were sent."""
        return await self._finished_pass() + await self._delay_pass()

    async def _finished_pass(self) -> int:
        """Reports for finished entries, which are then forgotten (an entry whose
        report could not be sent is kept for the next pass)."""
        sent = 0
        done = []
        for entry in await self._store.finished_messages(limit=BOUNCE_BATCH_MAX):
            recipients = finished_recipients(entry)
            if recipients:
                if not await self._send(entry.message, recipients):
                    continue
                sent += 1
            done.append(entry.message.id)
        if done:
            await self._store.forget_finished(done)
        return sent

    async def _delay_pass(self) -> int:
        """One delay report per message for its recipients owed one, then marked so.
        Spec: RFC 3461 §5.2.5; RFC 3464 §2.3.3, §2.3.9."""
        sent = 0
        now = self._clock.now()
        due = await self._store.due_delay_notices(now, self._backoff, limit=BOUNCE_BATCH_MAX)
        for entry in due:
            until = self._backoff.expires(entry.message.created)
            owed = [r for r in entry.recipients if r.wants(Notify.DELAY)]
            if not owed or not entry.message.reverse_path:
                continue
            recipients = [recipient_of(r, Action.DELAYED, until) for r in owed]
            if not await self._send(entry.message, recipients):
                continue
            await self._store.mark_delay_notified([r.id for r in owed])
            sent += 1
        return sent

    async def _send(self, message: QueuedMessage, recipients: Sequence[ReportRecipient]) -> bool:
        """Build and send one report to ``message.reverse_path``; False (logged) when
        it could not be sent."""
        envelope = ReportEnvelope.of(message)
        if not envelope.reverse_path:
            return False  # never a report to the null sender (RFC 5321 §4.5.5)
        try:
            original = await self._original(message, wants_full(envelope, recipients))
            report = build_report(
                envelope, recipients, original, hostname=self._hostname, now=self._clock.now()
            )
            await self._deliver(message.reverse_path, report)
        except StoreError:
            log.exception("dsn.send_failed", extra={"queue_id": message.queue_id})
            return False
        log.info(
            "dsn.sent",
            extra={
                "queue_id": message.queue_id,
                "to": message.reverse_path,
                "action": ",".join(sorted({str(r.action) for r in recipients})),
                "recipients": len(recipients),
            },
        )
        return True

    async def _original(self, message: QueuedMessage, full: bool) -> bytes:
        """The queued message: whole when ``full`` and it fits FULL_RETURN_MAX, else
        read only as far as its header (at most HEADER_PART_MAX octets)."""
        whole = full and message.size <= FULL_RETURN_MAX
        out = bytearray()
        chunks = self._store.open_queued_message(message.id)
        try:
            async for chunk in chunks:
                out += chunk
                if not whole and (b"\r\n\r\n" in out or len(out) >= HEADER_PART_MAX):
                    break
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        return bytes(out)

    async def run(self) -> None:
        """Look for due reports every BOUNCE_POLL_S seconds until ``stop``."""
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except StoreError:
                log.exception("dsn.pass_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BOUNCE_POLL_S):
                    await self._stopping.wait()

    def stop(self) -> None:
        """End ``run`` after its current pass."""
        self._stopping.set()
