"""Delivery status notifications (bounces): RFC 3464 reports built from a finished
queue entry, and the loop that sends them.

A report goes to the envelope sender of the original message, never to a null sender
(RFC 5321 §4.5.5), with a null sender itself (so reports never loop): into the
sender's mailbox when the sender is ours, through the outbound queue otherwise. Its
parts: a human-readable explanation, ``message/delivery-status`` with one block per
failed recipient, and the original message (RET=FULL) or its header only (RET=HDRS,
and the default, which keeps reports small).

Spec: RFC 3464 §2 (format), §2.3 (per-recipient fields); RFC 3461 §4.1-4.4 (NOTIFY,
RET, ENVID, ORCPT); RFC 6522 (multipart/report); RFC 3834 (Auto-Submitted).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import secrets
from collections.abc import Awaitable, Callable

from postel.clock import Clock
from postel.errors import StoreError
from postel.smtp.params import Ret
from postel.store import Store
from postel.store.queue_api import QueueEntry, QueueRecipient

log = logging.getLogger(__name__)

HEADER_PART_MAX = 64 * 1024
"""Octets of the original header returned with RET=HDRS (local policy)."""
FULL_RETURN_MAX = 1024 * 1024
"""A RET=FULL original above this is returned as its header only (RFC 3461 §4.3
lets the MTA return less than asked)."""
BOUNCE_POLL_S = 5.0
"""Seconds between looks for finished queue entries."""
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

Deliver = Callable[[str, bytes], Awaitable[None]]
"""Sends one report: ``(recipient address, message bytes)``; raises StoreError."""


def _status(reply: str | None) -> str:
    """The enhanced status code of ``reply`` or 5.0.0. Spec: RFC 3464 §2.3.4."""
    found = _ENHANCED.search(reply or "")
    return found.group(0) if found and found.group(1) == "5" else "5.0.0"


def _recipient_block(r: QueueRecipient) -> str:
    lines = []
    if r.orcpt is not None:
        lines.append(f"Original-Recipient: {r.orcpt.addr_type}; {r.orcpt.address}")
    lines += [
        f"Final-Recipient: rfc822; {r.address}",
        "Action: failed",
        f"Status: {_status(r.last_reply)}",
    ]
    if r.last_reply:
        lines.append(f"Diagnostic-Code: smtp; {_one_line(r.last_reply)}")
    if r.last_attempt is not None:
        lines.append(f"Last-Attempt-Date: {email.utils.format_datetime(r.last_attempt)}")
    return "\r\n".join(lines) + "\r\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]


def build_failure_report(
    entry: QueueEntry, original: bytes, *, hostname: str, now_text: str
) -> bytes:
    """The RFC 3464 report for the failed recipients of ``entry`` (``entry.failed``),
    addressed to its envelope sender. ``original`` is the message as queued (trace
    prefix and blob). Spec: RFC 3464 §2, RFC 6522 §3."""
    message = entry.message
    failed = entry.failed
    boundary = f"=_postel_{secrets.token_hex(12)}"
    header_end = original.find(b"\r\n\r\n")
    header = original[: header_end + 4] if header_end >= 0 else original[:HEADER_PART_MAX]
    full = message.ret is Ret.FULL and len(original) <= FULL_RETURN_MAX
    human = (
        f"This is the mail system at {hostname}.\r\n\r\n"
        "Your message could not be delivered to the following recipient(s):\r\n\r\n"
        + "".join(f"  <{r.address}>: {_one_line(r.last_reply or 'failed')}\r\n" for r in failed)
    )
    status = [f"Reporting-MTA: dns; {hostname}"]
    if message.envid:
        status.append(f"Original-Envelope-Id: {message.envid}")
    status.append(f"Arrival-Date: {email.utils.format_datetime(message.created)}")
    status_text = (
        "\r\n".join(status) + "\r\n\r\n" + "\r\n".join(_recipient_block(r) for r in failed)
    )
    parts = [
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + human.encode("ascii", "replace"),
        b"Content-Type: message/delivery-status\r\n\r\n" + status_text.encode("utf-8", "replace"),
        (b"Content-Type: message/rfc822\r\n\r\n" + original)
        if full
        else (b"Content-Type: text/rfc822-headers\r\n\r\n" + header[:HEADER_PART_MAX]),
    ]
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{message.reverse_path}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {now_text}\r\n"
        f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
    ).encode("utf-8", "replace")
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return head + body + b"--" + boundary.encode() + b"--\r\n"


class Bouncer:
    """Sends failure reports for finished queue entries, then forgets the entries.

    ``deliver`` sends one report (the composition root decides: local mailbox or the
    queue). Run ``run()`` as a task; ``stop()`` ends it.
    """

    def __init__(self, store: Store, deliver: Deliver, *, hostname: str, clock: Clock) -> None:
        self._store = store
        self._deliver = deliver
        self._hostname = hostname
        self._clock = clock
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Handle every finished entry now; returns how many reports were sent."""
        sent = 0
        done = []
        for entry in await self._store.finished_messages():
            if entry.failed:
                original = b"".join(
                    [c async for c in self._store.open_queued_message(entry.message.id)]
                )
                report = build_failure_report(
                    entry,
                    original,
                    hostname=self._hostname,
                    now_text=email.utils.format_datetime(self._clock.now()),
                )
                try:
                    await self._deliver(entry.message.reverse_path, report)
                except StoreError:
                    log.exception("dsn.send_failed", extra={"queue_id": entry.message.queue_id})
                    continue
                sent += 1
                log.info(
                    "dsn.sent",
                    extra={
                        "queue_id": entry.message.queue_id,
                        "to": entry.message.reverse_path,
                        "failed": len(entry.failed),
                    },
                )
            done.append(entry.message.id)
        if done:
            await self._store.forget_finished(done)
        return sent

    async def run(self) -> None:
        """Look for finished entries every BOUNCE_POLL_S seconds until ``stop``."""
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except StoreError:
                log.exception("dsn.pass_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BOUNCE_POLL_S):
                    await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()
