"""Per-account quotas: the shapes, the error and the pure checks.

Each account may have a STORAGE limit (octets: the sum of RFC822.SIZE over every
message of every mailbox of the account) and a MESSAGE limit (the number of those
messages); ``None`` is no limit. Usage is never counted in a column: it is computed from
the messages themselves (``SUM(size)``, ``COUNT(*)``), and only for accounts that have a
limit, so an unlimited account costs nothing.

The rule, the same for SMTP delivery, APPEND, COPY and MOVE: an operation is refused
(``OverQuota``) when it raises a resource's usage above its limit; an operation that
leaves a resource's usage as it was or lowers it is never refused for that resource
(MOVE within an account, EXPUNGE), even while the account is over quota (after its limit
was lowered). Usage exactly at the limit is allowed.

IMAP speaks STORAGE in units of 1024 octets; the store speaks octets, and
``storage_units`` / ``storage_octets`` convert at the protocol edge.

Spec: RFC 9208 §5 (resources STORAGE and MESSAGE), §4.1 ([OVERQUOTA]); RFC 3463 §3.3
(X.2.2 mailbox full).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.errors import StoreError
from postel.ids import AccountId

STORAGE_UNIT = 1024
"""Octets per unit of the IMAP STORAGE resource. Spec: RFC 9208 §5.1."""
QUOTA_LIMIT_MAX = 2**63 - 1
"""Largest limit stored (a signed 64-bit column), octets or messages."""


class QuotaResource(enum.StrEnum):
    """The resources a quota limits. Spec: RFC 9208 §5.1 (STORAGE), §5.2 (MESSAGE)."""

    STORAGE = "STORAGE"
    MESSAGE = "MESSAGE"


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """One account's usage and limits. ``storage_*`` in octets, ``messages_*`` in
    messages; a ``None`` limit is no limit. Spec: RFC 9208 §5."""

    account_id: AccountId
    storage_used: int
    storage_limit: int | None
    messages_used: int
    messages_limit: int | None

    @property
    def limited(self) -> bool:
        """True when the account has a limit on either resource."""
        return self.storage_limit is not None or self.messages_limit is not None

    @property
    def full(self) -> bool:
        """True when not even a one-octet message fits: usage at or above a limit
        (what SMTP answers at RCPT with 452 4.2.2). Spec: RFC 3463 §3.3 (X.2.2)."""
        return exceeded(self, octets=1, messages=1) is not None


def exceeded(usage: QuotaUsage, *, octets: int, messages: int) -> QuotaResource | None:
    """The resource that adding ``octets`` and ``messages`` (either may be zero or
    negative: a MOVE out, an EXPUNGE) to ``usage`` would take above its limit, STORAGE
    first; None when the operation fits. Only a resource that grows can be exceeded.

    The IMAP layer calls this before reading an APPEND literal (``octets``: the literal
    size; ``messages``: 1) or before COPY (the sum of RFC822.SIZE of the source
    messages and their count); the store checks again, exactly, inside the write.
    Spec: RFC 9208 §4.1 ([OVERQUOTA]), §5."""
    if (
        octets > 0
        and usage.storage_limit is not None
        and usage.storage_used + octets > usage.storage_limit
    ):
        return QuotaResource.STORAGE
    if (
        messages > 0
        and usage.messages_limit is not None
        and usage.messages_used + messages > usage.messages_limit
    ):
        return QuotaResource.MESSAGE
    return None


def storage_units(octets: int) -> int:
    """Octets as IMAP STORAGE units (1024 octets), rounded up: a usage of one octet
    is reported as 1. Spec: RFC 9208 §5.1."""
    return -(-octets // STORAGE_UNIT)


def storage_octets(units: int) -> int:
    """IMAP STORAGE units (SETQUOTA) as octets. Spec: RFC 9208 §5.1."""
    return units * STORAGE_UNIT


class OverQuota(StoreError):
    """The operation would take ``account_id`` above its ``resource`` limit; nothing
    of it was stored. SMTP answers 452 4.2.2, IMAP NO [OVERQUOTA].

    ``account_id`` and ``resource`` are None when the error crossed a process
    boundary as text. Spec: RFC 9208 §4.1; RFC 3463 §3.3 (X.2.2); RFC 5321 §4.2.2."""

    def __init__(
        self,
        message: str,
        *,
        account_id: AccountId | None = None,
        resource: QuotaResource | None = None,
    ) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.resource = resource

    @classmethod
    def of(cls, usage: QuotaUsage, resource: QuotaResource) -> OverQuota:
        """The error for ``usage`` exceeding ``resource``, with a one-line message."""
        if resource is QuotaResource.STORAGE:
            detail = f"{usage.storage_used} of {usage.storage_limit} octets used"
        else:
            detail = f"{usage.messages_used} of {usage.messages_limit} messages"
        return cls(
            f"account {usage.account_id} over its {resource} quota ({detail})",
            account_id=usage.account_id,
            resource=resource,
        )


def check_limits(storage_limit: int | None, message_limit: int | None) -> None:
    """Raise StoreError unless each limit is None or an integer from 0 to
    QUOTA_LIMIT_MAX (a limit of 0 allows nothing). Spec: RFC 9208 §4.3 (SETQUOTA)."""
    for name, value in (("storage", storage_limit), ("message", message_limit)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise StoreError(f"{name} limit must be an integer, not {value!r}")
        if not 0 <= value <= QUOTA_LIMIT_MAX:
            raise StoreError(f"{name} limit {value} outside 0..{QUOTA_LIMIT_MAX}")
