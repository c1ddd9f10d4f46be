"""Delivery status notifications as bytes: one RFC 3464 report about some recipients of
one message, for any mix of actions (failed, delayed, delivered, relayed).

A report is ``multipart/report; report-type=delivery-status`` with three parts: a
human-readable explanation, ``message/delivery-status`` (the per-message fields, then
one block per recipient), and the original: the whole message (``message/rfc822``) when
the report tells of a failure and the sender asked for RET=FULL, its header only
(``text/rfc822-headers``) otherwise. Values that come from a client (ENVID, ORCPT, the
reverse-path) have control characters written as xtext ``+XX``, so CR, LF and NUL
never reach a generated field.

Bounds defined here (local policy): ``HEADER_PART_MAX``, ``FULL_RETURN_MAX``,
``DIAGNOSTIC_MAX``.

Spec: RFC 3464 §2 (format), §2.2 (per-message fields), §2.3 (per-recipient fields);
RFC 3461 §4.3 (RET), §6.2 (contents); RFC 6522 (multipart/report); RFC 3834
(Auto-Submitted).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from postel.smtp.params import Orcpt, Ret, encode_utf8_addr
from postel.store.queue_api import QueuedMessage, QueueEntry, QueueRecipient

HEADER_PART_MAX = 64 * 1024
"""Octets of the original header returned with RET=HDRS (local policy)."""
FULL_RETURN_MAX = 1024 * 1024
"""A RET=FULL original above this is returned as its header only (RFC 3461 §4.3
lets the MTA return less than asked)."""
DIAGNOSTIC_MAX = 900
"""Characters of a remote reply kept in Diagnostic-Code and the explanation (local
policy; one folded field line stays well under RFC 5322 §2.1.1's 998)."""

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Action(enum.StrEnum):
    """What became of one recipient. Spec: RFC 3464 §2.3.3."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"


_CLASS = {Action.FAILED: "5", Action.DELAYED: "4", Action.DELIVERED: "2", Action.RELAYED: "2"}
"""The status class each action reports. Spec: RFC 3464 §2.3.4; RFC 3463 §3.1."""

_SUBJECT = {
    Action.FAILED: "Undelivered Mail Returned to Sender",
    Action.DELAYED: "Delayed Mail (still being retried)",
    Action.DELIVERED: "Successful Mail Delivery Report",
    Action.RELAYED: "Relayed Mail Report",
}
_INTRO = {
    Action.FAILED: "Your message could not be delivered to the following recipient(s):",
    Action.DELAYED: (
        "Your message has not been delivered yet to the following recipient(s).\r\n"
        "The mail system keeps trying; you do not need to send it again:"
    ),
    Action.DELIVERED: "Your message was delivered to the following recipient(s):",
    Action.RELAYED: (
        "Your message was handed to the mail system of the following recipient(s),\r\n"
        "which sends no delivery reports: this is the last report about them:"
    ),
}
_ORDER = (Action.FAILED, Action.DELAYED, Action.DELIVERED, Action.RELAYED)
"""Explanations and the subject follow this order: a failure is told first."""


@dataclass(frozen=True, slots=True)
class ReportRecipient:
    """One recipient block. ``status``: the enhanced status code (``"5.1.1"``);
    ``diagnostic``: the reply that decided it (``"550 5.1.1 no such user"``), if any.
    Spec: RFC 3464 §2.3.1-2.3.9."""

    address: str
    action: Action
    status: str
    orcpt: Orcpt | None = None
    diagnostic: str | None = None
    last_attempt: dt.datetime | None = None
    will_retry_until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ReportEnvelope:
    """What the report says of the message: whom it goes to (``reverse_path``, the
    original MAIL FROM, never empty), when the message arrived, and the sender's ENVID
    and RET. Spec: RFC 3464 §2.2; RFC 3461 §4.3-4.4."""

    reverse_path: str
    arrival: dt.datetime
    envid: str | None = None
    ret: Ret | None = None

    @classmethod
    def of(cls, message: QueuedMessage) -> ReportEnvelope:
        """The envelope of a queued message."""
        return cls(message.reverse_path, message.created, message.envid, message.ret)


def status_of(reply: str | None, action: Action) -> str:
    """The enhanced status code of ``reply`` when its class fits ``action``, else the
    class's generic code (``5.0.0``, ``4.0.0``, ``2.0.0``). Spec: RFC 3464 §2.3.4."""
    wanted = _CLASS[action]
    found = _ENHANCED.search(reply or "")
    return found.group(0) if found and found.group(1) == wanted else f"{wanted}.0.0"


def recipient_of(
    r: QueueRecipient, action: Action, will_retry_until: dt.datetime | None = None
) -> ReportRecipient:
    """The block for a queued recipient: status and diagnostic from its last reply."""
    return ReportRecipient(
        address=r.address,
        action=action,
        status=status_of(r.last_reply, action),
        orcpt=r.orcpt,
        diagnostic=r.last_reply or None,
        last_attempt=r.last_attempt,
        will_retry_until=will_retry_until,
    )


def wants_full(envelope: ReportEnvelope, recipients: Sequence[ReportRecipient]) -> bool:
    """Whether the report returns the whole message: a failure, and RET=FULL.
    Spec: RFC 3461 §4.3, §6.2."""
    return envelope.ret is Ret.FULL and any(r.action is Action.FAILED for r in recipients)


def header_of(original: bytes) -> bytes:
    """The header block of ``original`` with its empty line, at most HEADER_PART_MAX
    octets (all of it when it has no body)."""
    end = original.find(b"\r\n\r\n")
    header = original[: end + 4] if end >= 0 else original
    return header[:HEADER_PART_MAX]


def build_report(
    envelope: ReportEnvelope,
    recipients: Sequence[ReportRecipient],
    original: bytes,
    *,
    hostname: str,
    now: dt.datetime,
) -> bytes:
    """The report about ``recipients`` (at least one), addressed to
    ``envelope.reverse_path``. ``original``: the message as it was sent on (trace
    prefix and content), or at least its header; it is returned whole only when
    ``wants_full`` and it fits FULL_RETURN_MAX. Spec: RFC 3464 §2; RFC 6522 §3;
    RFC 3461 §6.2."""
    if not recipients:
        raise ValueError("a report needs at least one recipient")
    actions = [a for a in _ORDER if any(r.action is a for r in recipients)]
    boundary = f"=_postel_{secrets.token_hex(12)}"
    parts = [
        _part(b"text/plain; charset=utf-8", _human(recipients, actions, hostname)),
        _part(b"message/delivery-status", _status_text(envelope, recipients, hostname)),
        _returned(envelope, recipients, original),
    ]
    eight_bit = not all(p.isascii() for p in parts)
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{_safe(envelope.reverse_path)}>\r\n"
        f"Subject: {_SUBJECT[actions[0]]}\r\n"
        f"Date: {email.utils.format_datetime(now)}\r\n"
        f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        + ("Content-Transfer-Encoding: 8bit\r\n" if eight_bit else "")
        + "\r\n"
    ).encode("utf-8", "replace")
    marker = b"--" + boundary.encode("ascii")
    body = b"".join(marker + b"\r\n" + part + b"\r\n" for part in parts)
    return head + body + marker + b"--\r\n"


def _part(content_type: bytes, content: bytes) -> bytes:
    cte = b"" if content.isascii() else b"Content-Transfer-Encoding: 8bit\r\n"
    return b"Content-Type: " + content_type + b"\r\n" + cte + b"\r\n" + content


def _returned(
    envelope: ReportEnvelope, recipients: Sequence[ReportRecipient], original: bytes
) -> bytes:
    """The third part. Spec: RFC 3462 §3 (text/rfc822-headers); RFC 3461 §4.3."""
    if wants_full(envelope, recipients) and len(original) <= FULL_RETURN_MAX:
        return _part(b"message/rfc822", original)
    return _part(b"text/rfc822-headers", header_of(original))


def _human(recipients: Sequence[ReportRecipient], actions: list[Action], hostname: str) -> bytes:
    text = f"This is the mail system at {hostname}.\r\n"
    for action in actions:
        text += "\r\n" + _INTRO[action] + "\r\n\r\n"
        for r in recipients:
            if r.action is action:
                note = _one_line(r.diagnostic or str(action))
                text += f"  <{_safe(r.address)}>: {note}\r\n"
        if action is Action.DELAYED:
            until = next((r.will_retry_until for r in recipients if r.will_retry_until), None)
            if until is not None:
                text += f"\r\nIt will keep trying until {email.utils.format_datetime(until)}.\r\n"
    return text.encode("utf-8", "replace")


def _status_text(
    envelope: ReportEnvelope, recipients: Sequence[ReportRecipient], hostname: str
) -> bytes:
    """The message/delivery-status body. Spec: RFC 3464 §2.1-2.3."""
    fields = [f"Reporting-MTA: dns; {hostname}"]
    if envelope.envid:
        fields.append(f"Original-Envelope-Id: {_safe(envelope.envid)}")
    fields.append(f"Arrival-Date: {email.utils.format_datetime(envelope.arrival)}")
    blocks = ["\r\n".join(fields) + "\r\n"]
    blocks += [_recipient_block(r) for r in recipients]
    return "\r\n".join(blocks).encode("utf-8", "replace")


def _recipient_block(r: ReportRecipient) -> str:
    """One per-recipient block. Spec: RFC 3464 §2.3."""
    lines = []
    if r.orcpt is not None:
        address = r.orcpt.address
        if r.orcpt.addr_type.upper() == "UTF-8":  # ASCII in message/delivery-status
            address = encode_utf8_addr(address)
        lines.append(f"Original-Recipient: {_safe(r.orcpt.addr_type)}; {_safe(address)}")
    lines += [
        f"Final-Recipient: rfc822; {_safe(r.address)}",
        f"Action: {r.action}",
        f"Status: {r.status}",
    ]
    if r.diagnostic:
        lines.append(f"Diagnostic-Code: smtp; {_one_line(r.diagnostic)}")
    if r.last_attempt is not None:
        lines.append(f"Last-Attempt-Date: {email.utils.format_datetime(r.last_attempt)}")
    if r.will_retry_until is not None and r.action is Action.DELAYED:
        lines.append(f"Will-Retry-Until: {email.utils.format_datetime(r.will_retry_until)}")
    return "\r\n".join(lines) + "\r\n"


def _one_line(text: str) -> str:
    return _safe(" ".join(text.split())[:DIAGNOSTIC_MAX])


def _safe(text: str) -> str:
    """``text`` with control characters as xtext ``+XX``. Spec: RFC 3461 §4 (xtext)."""
    return _CONTROL.sub(lambda m: f"+{ord(m.group(0)):02X}", text)


def entry_report(
    entry: QueueEntry,
    recipients: Sequence[ReportRecipient],
    original: bytes,
    *,
    hostname: str,
    now: dt.datetime,
) -> bytes:
    """``build_report`` for a queued message. Spec: RFC 3464 §2."""
    return build_report(
        ReportEnvelope.of(entry.message), recipients, original, hostname=hostname, now=now
    )


__all__ = [
    "DIAGNOSTIC_MAX",
    "FULL_RETURN_MAX",
    "HEADER_PART_MAX",
    "Action",
    "ReportEnvelope",
    "ReportRecipient",
    "build_report",
    "entry_report",
    "header_of",
    "recipient_of",
    "status_of",
    "wants_full",
]
