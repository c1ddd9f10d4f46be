"""Reports the SMTP service sends for a message it has accepted: "delivered" for
recipients that asked for NOTIFY=SUCCESS and were put into a local mailbox, "failed"
for recipients the message looped back to (a Delivered-To of theirs), in one report with a
null sender through the process's report sender (into the sender's mailbox when the
address is ours, through the outbound queue otherwise).

A report is best effort: it is built after the message is durable; a failure to send
it is logged and never undoes the acceptance.

Spec: RFC 3461 §5.2.3 (delivered), §5.2.2 (failed), §6.1-6.2 (never to a null sender);
RFC 3464 §2.3.3.
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


def wants(params: smtp.RcptParams | None, kind: smtp.Notify) -> bool:
    """Whether RCPT TO (its parameters; None: it gave none) asks for a report of
    ``kind``. Spec: RFC 3461 §4.1."""
    return smtp.asks_for(None if params is None else params.notify, kind)


async def send_reports(
    send: ReportSender,
    *,
    hostname: str,
    now: dt.datetime,
    reverse_path: str,
    mail: smtp.MailParams,
    delivered: Sequence[tuple[str, smtp.RcptParams | None]],
    looped: Sequence[tuple[str, smtp.RcptParams | None]],
    head: bytes,
    queue_id: str,
) -> None:
    """Send one report to ``reverse_path`` with a "failed" block (5.4.6, mail loop) for
    each of ``looped`` whose NOTIFY allows it and a "delivered" block for each of
    ``delivered`` whose NOTIFY asks for SUCCESS (address, RCPT parameters); nothing for the null sender or when no
    block is left. ``head``: the message's header (or its start). Errors are logged,
    never raised. Spec: RFC 3461 §5.2.2-5.2.3, §6.1; RFC 3464 §2.3; RFC 3463 §3.5
    (X.4.6); RFC 5321 §6.3."""
    recipients = [
        ReportRecipient(
            a,
            Action.FAILED,
            "5.4.6",
            orcpt=p.orcpt if p is not None else None,
            diagnostic=f"554 5.4.6 mail loop: already delivered to {a}",
            last_attempt=now,
        )
        for a, p in looped
        if wants(p, smtp.Notify.FAILURE)
    ]
    recipients += [
        ReportRecipient(
            a, Action.DELIVERED, "2.0.0", orcpt=p.orcpt if p else None, last_attempt=now
        )
        for a, p in delivered
        if wants(p, smtp.Notify.SUCCESS)
    ]
    if not reverse_path or not recipients:
        return
    envelope = ReportEnvelope(reverse_path, now, mail.envid, mail.ret)
    report = build_report(envelope, recipients, header_of(head), hostname=hostname, now=now)
    try:
        await send(reverse_path, report)
    except (PostelError, OSError):
        log.exception("dsn.send_failed", extra={"queue_id": queue_id})
        return
    actions = ",".join(dict.fromkeys(r.action.value for r in recipients))
    log.info("dsn.sent", extra={"queue_id": queue_id, "to": reverse_path, "action": actions})
