"""The IMAP QUOTA commands over the store's per-account quota (one root, ``""``).

GETQUOTAROOT answers the roots of a mailbox (``""`` when the account has a limit, none
otherwise) and their QUOTA; GETQUOTA ``""`` answers the account's usage and limits
(STORAGE in 1024-octet units, rounded up; MESSAGE in messages); SETQUOTA is refused
(``[NOPERM]``): limits are the administrator's (``postel account quota``).
APPEND, COPY and MOVE over quota are refused with ``[OVERQUOTA]`` by the session, from
the store's OverQuota.

Spec: RFC 9208 §4.1-§4.3, §5.1, §5.2, §6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap import responses as r
from postel.imap.parse_quota import (
    GetQuota,
    GetQuotaRoot,
    SetQuota,
    quota_response,
    quotaroot_response,
)
from postel.store import QuotaUsage, storage_units

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

__all__ = ["QUOTA_ROOT", "run"]

QUOTA_ROOT = ""
"""The name of an account's one quota root."""


def _resources(usage: QuotaUsage) -> list[tuple[str, int, int]]:
    out = []
    if usage.storage_limit is not None:
        out.append(
            ("STORAGE", storage_units(usage.storage_used), storage_units(usage.storage_limit))
        )
    if usage.messages_limit is not None:
        out.append(("MESSAGE", usage.messages_used, usage.messages_limit))
    return out


async def run(session: ImapSession, command: GetQuota | GetQuotaRoot | SetQuota) -> None:
    """Answer one QUOTA command. Spec: RFC 9208 §4."""
    account = session.account
    assert account is not None
    match command:
        case SetQuota():
            await session.tagged(
                command.tag,
                r.Status.NO,
                "Quotas are set by the administrator (postel account quota)",
                r.NOPERM,
            )
        case GetQuota(root=root):
            if root != QUOTA_ROOT:
                await session.tagged(command.tag, r.Status.NO, "No such quota root", r.NONEXISTENT)
                return
            usage = await session.store.quota_usage(account.id)
            await session.write(quota_response(QUOTA_ROOT, _resources(usage)))
            await session.tagged(command.tag, r.Status.OK, "GETQUOTA completed")
        case GetQuotaRoot(mailbox=name):
            if await session.store.get_mailbox(account.id, name) is None:
                await session.tagged(command.tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
                return
            usage = await session.store.quota_usage(account.id)
            roots = [QUOTA_ROOT] if usage.limited else []
            out = quotaroot_response(name, roots, utf8=session.utf8)
            if usage.limited:
                out += quota_response(QUOTA_ROOT, _resources(usage))
            await session.write(out)
            await session.tagged(command.tag, r.Status.OK, "GETQUOTAROOT completed")
