""" "Delivered" reports for recipients that asked for NOTIFY=SUCCESS and were put into a
local mailbox, sent with a null sender through the process's report sender (into the
sender's mailbox when the address is ours, through the outbound queue otherwise).

The report is best effort: it is built after the message is durable; a failure to send
it is logged and never undoes the acceptance.

Spec: RFC 3461 §5.2.3 (delivered), §6.1-6.2 (never to a null sender); RFC 3464 §2.3.3.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from postel import smtp
from postel.delivery.dsn_report import (
    Action,
    ReportEnvelope,
    ReportRecipient,
    build_report,
    header_of,
)
from postel.errors import PostelError

log = logging.getLogger(__name__)

ReportSender = Callable[[str, bytes], Awaitable[None]]
"""``send(address, report)``: delivers a report with a null sender (the composition
root builds it). Spec: RFC 3464 §2; RFC 5321 §4.5.5."""


def wants_success(params: smtp.RcptParams) -> bool:
    """Whether RCPT TO asked for a success report. Spec: RFC 3461 §4.1."""
    notify = params.notify or frozenset()
    return smtp.Notify.SUCCESS in notify and smtp.Notify.NEVER not in notify


async def send_success_report(
    send: ReportSender,
    *,
    hostname: str,
    now: dt.datetime,
    reverse_path: str,
    mail: smtp.MailParams,
    delivered: Sequence[tuple[str, smtp.RcptParams]],
    head: bytes,
    queue_id: str,
) -> None:
    """Send one "delivered" report for ``delivered`` (address, RCPT parameters) to
    ``reverse_path``; nothing for the null sender. ``head``: the message's header (or
    its start). Errors are logged, never raised. Spec: RFC 3461 §5.2.3, §6.1."""
    if not reverse_path or not delivered:
        return
    envelope = ReportEnvelope(reverse_path, now, mail.envid, mail.ret)
    recipients = [
        ReportRecipient(a, Action.DELIVERED, "2.0.0", orcpt=p.orcpt, last_attempt=now)
        for a, p in delivered
    ]
    report = build_report(envelope, recipients, header_of(head), hostname=hostname, now=now)
    try:
        await send(reverse_path, report)
    except (PostelError, OSError):
        log.exception("dsn.send_failed", extra={"queue_id": queue_id})
        return
    log.info("dsn.sent", extra={"queue_id": queue_id, "to": reverse_path, "action": "delivered"})
