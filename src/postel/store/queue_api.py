"""The outbound queue's shapes: queued messages, recipients, leases, outcomes, backoff.

A queued message is one SMTP transaction received for remote recipients: the envelope
(MAIL FROM and its DSN parameters), the blob it references (kept from collection while
queued) and one row per recipient with its own delivery state. A worker leases the due
recipients of one message for one destination domain (one outbound SMTP transaction),
tries them and settles each with an Outcome; a lease that is never settled ends by
itself, so a crashed worker's mail becomes due again.

Bounds defined here (local policy): ``QUEUE_LIST_MAX``, ``QUEUE_LEASE_WINDOW``,
``QUEUE_WORKER_MAX``, ``QUEUE_REPLY_MAX``.

Spec: RFC 5321 §4.5.4.1 (retry strategy), §4.5.5 (null reverse-path); RFC 3461 §4
(NOTIFY, RET, ENVID, ORCPT); RFC 3464 §2.3 (per-recipient DSN fields).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import NewType

from postel.smtp.params import Body, Notify, Orcpt, Ret, asks_for
from postel.store.api import BlobRef

QueueMessageId = NewType("QueueMessageId", int)
"""Database row id of one queued message (not the SMTP queue id)."""
QueueRecipientId = NewType("QueueRecipientId", int)
"""Database row id of one recipient of a queued message."""

QUEUE_LIST_MAX = 1000
"""Most queued messages one ``queue_list`` call returns (local policy)."""
QUEUE_LEASE_WINDOW = 8
"""``lease`` looks at ``limit * QUEUE_LEASE_WINDOW`` due recipients to fill ``limit``
leases (several recipients share a lease; full domains are skipped). Local policy."""
QUEUE_WORKER_MAX = 128
"""Longest worker name stored with a lease (local policy)."""
QUEUE_REPLY_MAX = 4096
"""Longest reply text kept per recipient for the DSN (local policy; RFC 5321 §4.5.3.1.5
bounds one reply line at 512 octets, a multi-line reply may be longer)."""


class RecipientState(enum.StrEnum):
    """Where one recipient of a queued message stands.

    ``queued``: waiting for its first attempt (or released by an operator);
    ``leased``: a worker is trying it; ``deferred``: waiting for a retry;
    ``delivered`` and ``failed``: final; ``held``: kept back by an operator.
    Spec: RFC 5321 §4.5.4.1.
    """

    QUEUED = "queued"
    LEASED = "leased"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"
    HELD = "held"


FINAL_STATES = frozenset({RecipientState.DELIVERED, RecipientState.FAILED})
"""States a recipient never leaves."""


class OutcomeKind(enum.StrEnum):
    """What one delivery attempt to one recipient came to. Spec: RFC 5321 §4.2.1."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt for one recipient, given to ``Store.settle``.

    ``reply``: the remote server's reply (``"250 2.0.0 ok"``, ``"451 4.7.1 greylisted"``)
    or a local diagnostic, kept for the DSN (truncated to QUEUE_REPLY_MAX).
    ``retry_at``: for DEFERRED, an explicit time for the next attempt (None: the
    BackoffPolicy decides). Build with the class methods.
    Spec: RFC 5321 §4.2.1 (2yz, 4yz, 5yz); RFC 3464 §2.3.6 (Diagnostic-Code).
    """

    kind: OutcomeKind
    reply: str = ""
    retry_at: dt.datetime | None = None

    @classmethod
    def delivered(cls, reply: str = "") -> Outcome:
        """The recipient was accepted (2yz after DATA). Spec: RFC 5321 §4.2.1."""
        return cls(OutcomeKind.DELIVERED, reply)

    @classmethod
    def deferred(cls, reason: str, retry_at: dt.datetime | None = None) -> Outcome:
        """A transient failure (4yz, no answer, DNS timeout): try again later.
        Spec: RFC 5321 §4.5.4.1."""
        return cls(OutcomeKind.DEFERRED, reason, retry_at)

    @classmethod
    def failed(cls, reply: str) -> Outcome:
        """A permanent failure (5yz): no more attempts; ``reply`` goes into the DSN.
        Spec: RFC 3464 §2.3.6."""
        return cls(OutcomeKind.FAILED, reply)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """When to retry a deferred recipient and when to give up.

    Times in seconds. The n-th retry waits ``first_retry * factor**(n-1)``, at most
    ``max_interval``; a recipient still undelivered ``lifetime`` after the message was
    queued fails; a delay notice is due ``delay_notice_after`` after queueing.
    Defaults: 5 minutes, doubling, at most 4 hours, 5 days, delay notice after 4 hours.
    Spec: RFC 5321 §4.5.4.1 (retry at least 30 minutes apart, give up after 4-5 days).
    """

    first_retry: float = 300.0
    factor: float = 2.0
    max_interval: float = 4 * 3600.0
    lifetime: float = 5 * 86400.0
    delay_notice_after: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if self.first_retry <= 0 or self.factor < 1 or self.max_interval < self.first_retry:
            raise ValueError("backoff: need first_retry > 0, factor >= 1, max >= first")
        if self.lifetime <= 0 or self.delay_notice_after <= 0:
            raise ValueError("backoff: lifetime and delay_notice_after must be positive")

    def interval(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (``attempts >= 1``)."""
        exponent = max(attempts, 1) - 1
        if exponent > 64:  # far beyond the cap; keeps the power finite
            return self.max_interval
        return float(min(self.first_retry * self.factor**exponent, self.max_interval))

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime:
        """When to try again after the ``attempts``-th failed attempt ended at ``now``."""
        return now + dt.timedelta(seconds=self.interval(attempts))

    def expires(self, created: dt.datetime) -> dt.datetime:
        """When a message queued at ``created`` stops being retried."""
        return created + dt.timedelta(seconds=self.lifetime)

    def delay_notice_due(self, created: dt.datetime) -> dt.datetime:
        """When a still-undelivered recipient of a message queued at ``created`` gets a
        delay notice. Spec: RFC 3464 §2.3.3 (Action: delayed)."""
        return created + dt.timedelta(seconds=self.delay_notice_after)


DEFAULT_BACKOFF = BackoffPolicy()
"""The default retry schedule (see BackoffPolicy)."""


@dataclass(frozen=True, slots=True)
class NewRecipient:
    """One RCPT TO for the queue.

    ``domain``: the destination, a lower-case A-label (the caller converts U-labels,
    e.g. with ``postel.directory.to_a_label``). ``notify`` None: the client gave no
    NOTIFY (DEFAULT_NOTIFY applies); an empty set or ``{NEVER}``: no DSN at all.
    Spec: RFC 3461 §4.1-4.2.
    """

    address: str
    domain: str
    notify: frozenset[Notify] | None = None
    orcpt: Orcpt | None = None


@dataclass(frozen=True, slots=True)
class NewQueuedMessage:
    """One received transaction to queue: the committed blob and its envelope.

    ``reverse_path``: MAIL FROM without brackets, ``""`` for the null sender (no DSN
    is ever sent to it). ``trace_prefix``: header lines sent before the blob (Received).
    Spec: RFC 5321 §4.1.1.2, §4.4; RFC 3461 §4.3-4.4; RFC 6152; RFC 6531; RFC 8689.
    """

    queue_id: str
    blob: BlobRef
    reverse_path: str
    trace_prefix: bytes = b""
    envid: str | None = None
    ret: Ret | None = None
    body: Body | None = None
    smtputf8: bool = False
    requiretls: bool = False


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A queued message as stored. ``size``: octets sent, ``len(trace_prefix)`` plus
    the blob. ``blob`` carries no inline bytes (read them with
    ``Store.read_queued_message``). Spec: RFC 5321 §4.5.4."""

    id: QueueMessageId
    queue_id: str
    blob: BlobRef
    reverse_path: str
    envid: str | None
    ret: Ret | None
    body: Body | None
    smtputf8: bool
    requiretls: bool
    created: dt.datetime
    trace_prefix: bytes
    size: int


@dataclass(frozen=True, slots=True)
class QueueRecipient:
    """One recipient of a queued message as stored.

    ``attempts``: failed attempts so far. ``next_attempt``: when it is due (for a
    leased recipient: when the lease ends). ``last_reply``: the reply of the last
    attempt (the DSN's Diagnostic-Code). Spec: RFC 3464 §2.3 (per-recipient fields).
    """

    id: QueueRecipientId
    message_id: QueueMessageId
    address: str
    domain: str
    notify: frozenset[Notify] | None
    orcpt: Orcpt | None
    state: RecipientState
    attempts: int
    next_attempt: dt.datetime
    last_attempt: dt.datetime | None
    last_reply: str | None
    delay_notified: bool

    def wants(self, notify: Notify) -> bool:
        """Whether a DSN of this kind is asked for (no NOTIFY: FAILURE and DELAY).
        Spec: RFC 3461 §4.1."""
        return asks_for(self.notify, notify)


@dataclass(frozen=True, slots=True)
class Lease:
    """Due recipients of one message for one domain, held by ``worker`` until
    ``expires``: one outbound SMTP transaction. Settle it with ``Store.settle``.
    Spec: RFC 5321 §4.5.4.1; ARCHITECTURE.md (queue leases)."""

    message: QueuedMessage
    domain: str
    recipients: tuple[QueueRecipient, ...]
    worker: str
    expires: dt.datetime


@dataclass(frozen=True, slots=True)
class SettleResult:
    """``settled``: recipients whose outcome was recorded; ``lost``: recipients of the
    lease no longer held by it (taken over after it expired, deleted, or settled
    before), whose outcome was ignored."""

    settled: tuple[QueueRecipientId, ...]
    lost: tuple[QueueRecipientId, ...]


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queued message with all its recipients (``postel queue show``, DSNs)."""

    message: QueuedMessage
    recipients: tuple[QueueRecipient, ...]

    @property
    def failed(self) -> tuple[QueueRecipient, ...]:
        """Recipients that failed and asked for a failure DSN (none for the null
        sender). Spec: RFC 3461 §4.1; RFC 5321 §4.5.5."""
        if not self.message.reverse_path:
            return ()
        return tuple(
            r
            for r in self.recipients
            if r.state == RecipientState.FAILED and r.wants(Notify.FAILURE)
        )

    @property
    def delivered_with_notice(self) -> tuple[QueueRecipient, ...]:
        """Recipients delivered that asked for a success DSN. Spec: RFC 3461 §4.1."""
        if not self.message.reverse_path:
            return ()
        return tuple(
            r
            for r in self.recipients
            if r.state == RecipientState.DELIVERED and r.wants(Notify.SUCCESS)
        )


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What ``queue_list`` returns: messages with at least one recipient matching every
    given criterion, oldest first, at most ``limit`` (capped at QUEUE_LIST_MAX)."""

    state: RecipientState | None = None
    domain: str | None = None
    limit: int = QUEUE_LIST_MAX
