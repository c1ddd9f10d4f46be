"""The octets an IMAP URL names: one message of one mailbox of one account, its
section and partial range. Shared by CATENATE (URL parts) and URLFETCH.

Spec: RFC 5092 §3 (isection, ipartial), §7 (only messages the user may read);
RFC 4469 §5; RFC 4467 §9.
"""

from __future__ import annotations

from postel.errors import NotFound, ProtocolError
from postel.imap import fetch
from postel.imap.imapurl import ImapUrl
from postel.server.imap_scan import load_summary
from postel.store import Account, Store
from postel.store.api import UidSet

__all__ = ["url_octets", "url_owner"]


async def url_owner(store: Store, url: ImapUrl) -> Account | None:
    """The account an absolute URL's ``user@host`` names: the userid as given, or
    ``userid@host`` when the userid has no domain. Spec: RFC 5092 §3.2 (iuserinfo)."""
    if url.user is None:
        return None
    account = await store.get_account(url.user)
    if account is None and "@" not in url.user and url.host:
        account = await store.get_account(f"{url.user}@{url.host}")
    return account


async def url_octets(store: Store, account: Account, url: ImapUrl) -> bytes | None:
    """The octets ``url`` names in ``account``'s mailboxes, or None when the mailbox,
    UIDVALIDITY, UID or section does not match (a stale or wrong URL: CATENATE then
    fails with BADURL, URLFETCH answers NIL); the partial range cuts the section.
    Spec: RFC 5092 §3 (UIDVALIDITY check, isection, ipartial); RFC 4469 §5;
    RFC 4467 §7; RFC 9051 §6.4.5."""
    mailbox = await store.get_mailbox(account.id, url.mailbox)
    if mailbox is None:
        return None
    if url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity:
        return None
    rows = await store.fetch_messages(mailbox.id, UidSet.of([url.uid]))
    if not rows:
        return None
    message = rows[0]
    try:
        data = await store.read_message(mailbox.id, url.uid)
    except NotFound:
        return None
    octets = data
    if url.section is not None:
        try:
            summary = await load_summary(message)
        except ProtocolError:
            return None
        if not fetch.section_exists(summary, url.section):
            return None
        source = fetch.FetchSource(
            message.uid,
            message.flags,
            message.internal_date,
            message.size,
            summary,
            message.trace_prefix,
            data,
            message.modseq,
        )
        octets = fetch.section_octets(source, url.section)
    if url.partial is not None:
        start, length = url.partial
        octets = octets[start : None if length is None else start + length]
    return octets
