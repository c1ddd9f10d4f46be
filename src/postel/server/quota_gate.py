"""The quota check of SMTP RCPT TO: refuse a recipient whose mailbox is already full.

At RCPT TO a recipient is refused with ``452 4.2.2`` when one of the accounts it reaches
has no room left: its usage is at or above a limit, or the size the client declared in
MAIL FROM (``SIZE=``) does not fit in what is left. A 452 at RCPT refuses that recipient
alone; the client goes on with the others and retries this one later. The exact check
is the store's, inside the delivery transaction (a message too large for the space left
and sent without SIZE is refused after DATA, for the whole transaction).

Cost: accounts without a limit are remembered for ``QUOTA_GATE_TTL_S`` seconds (at most
``QUOTA_GATE_MAX`` of them), so most recipients cost no store read; an account with a
limit is read every time (one statement). A limit set through this process's store is
seen at once (``directory_version``), one set by another process (the CLI) within the
TTL.

Bounds defined here (local policy): ``QUOTA_GATE_TTL_S``, ``QUOTA_GATE_MAX``.

Spec: RFC 5321 §4.2.2, §4.5.3.1.10 (452 at RCPT); RFC 1870 §6.2 (SIZE per recipient);
RFC 3463 §3.3 (X.2.2 mailbox full); RFC 9208 §5.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from postel import smtp
from postel.clock import Clock
from postel.directory import LocalTarget
from postel.errors import StoreError
from postel.ids import AccountId
from postel.store import Store, exceeded

log = logging.getLogger(__name__)

QUOTA_GATE_TTL_S = 2.0
"""Seconds an account is known to have no limit (the directory cache's TTL)."""
QUOTA_GATE_MAX = 10_000
"""Accounts remembered as unlimited at most; the memory is cleared when full."""

MAILBOX_FULL = smtp.Reply(452, "4.2.2", "Mailbox full, try again later")
"""Spec: RFC 3463 §3.3 (X.2.2); RFC 5321 §4.2.2 (452)."""


class QuotaGate:
    """Answers whether a recipient's accounts have room, for RCPT TO.

    Args:
        store: the usage and limits (``Store.quota_usages``).
        clock: the monotonic clock of the unlimited-account memory.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._unlimited: dict[AccountId, float] = {}
        self._version = store.directory_version

    async def refusal(self, targets: Sequence[LocalTarget], size: int | None) -> smtp.Reply | None:
        """``MAILBOX_FULL`` when an account of ``targets`` has no room for a message of
        ``size`` octets (MAIL FROM's SIZE; None: unknown, one octet is checked), else
        None. A store failure lets the recipient through (the delivery checks again).
        Spec: RFC 5321 §4.5.3.1.10; RFC 1870 §6.2."""
        now = self._clock.monotonic()
        if self._store.directory_version != self._version:
            self._unlimited.clear()
            self._version = self._store.directory_version
        wanted = [t.account_id for t in targets if self._unlimited.get(t.account_id, 0.0) <= now]
        if not wanted:
            return None
        try:
            usages = await self._store.quota_usages(wanted, limited_only=True)
        except StoreError:
            log.warning("smtp.rcpt.quota_unknown", extra={"accounts": len(wanted)})
            return None
        if len(self._unlimited) + len(wanted) > QUOTA_GATE_MAX:
            self._unlimited.clear()
        addresses = {t.account_id: t.address for t in targets}
        for account_id in wanted:
            usage = usages.get(account_id)
            if usage is None:
                self._unlimited[account_id] = now + QUOTA_GATE_TTL_S
                continue
            problem = exceeded(usage, octets=max(size or 0, 1), messages=1)
            if problem is not None:
                extra: dict[str, object] = {
                    "account": addresses[account_id],
                    "resource": problem.name,  # RFC 9208 §5: STORAGE or MESSAGE
                }
                if size is not None:
                    extra["size"] = size
                log.info("smtp.rcpt.over_quota", extra=extra)
                return MAILBOX_FULL
        return None
