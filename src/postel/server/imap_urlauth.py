"""URLAUTH: GENURLAUTH, RESETKEY and URLFETCH with the INTERNAL mechanism.

Each mailbox has a secret mailbox access key (``URLAUTH_KEY_OCTETS`` random octets,
made by the first GENURLAUTH, stored in the store, dropped by RESETKEY). The INTERNAL
token of an URL is the hex HMAC-SHA256 of its rump (the URL up to and including the
access identifier) under that key: 256 bits, above the 128 bits RFC 4467 §7 requires.
URLFETCH recomputes it and compares in constant time (``hmac.compare_digest``); any
failure gives ``NIL`` for that URL, never a reason (RFC 4467 §6.3, §10).

Spec: RFC 4467 §3 (access identifiers), §6 (commands), §7 (INTERNAL mechanism), §10
(security); RFC 5092 §3 (URL syntax).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from postel.imap import responses as r
from postel.imap.imapurl import AccessKind, ImapUrl, ImapUrlError, parse_imap_url
from postel.imap.parse_ext import GenUrlAuth, ResetKey, UrlFetch
from postel.server.imap_urls import url_octets, url_owner
from postel.store import Account

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

__all__ = ["MECHANISM", "URLAUTH_KEY_OCTETS", "genurlauth", "resetkey", "token", "urlfetch"]

MECHANISM = "INTERNAL"
"""The one authorization mechanism offered. Spec: RFC 4467 §7."""
URLAUTH_KEY_OCTETS = 32
"""Octets of a mailbox access key (256 bits; RFC 4467 §7 asks for at least 128)."""


def token(key: bytes, rump: str) -> str:
    """The INTERNAL authorization token of ``rump``: lower-case hex HMAC-SHA256.
    Spec: RFC 4467 §7 (enc-urlauth: at least 128 bits, hex)."""
    return hmac.new(key, rump.encode("utf-8"), hashlib.sha256).hexdigest()


async def genurlauth(
    session: ImapSession,
    command: GenUrlAuth,
    new_key: Callable[[int], bytes] = secrets.token_bytes,
) -> None:
    """``* GENURLAUTH url-full ...`` for every (rump, mechanism), all or nothing.
    The URL must name a mailbox of the logged-in user and carry ``;URLAUTH=`` without
    a verifier. Spec: RFC 4467 §6.1."""
    assert session.account is not None
    full: list[bytes] = []
    for rump, mechanism in command.pairs:
        if mechanism != MECHANISM:
            await session.tagged(command.tag, r.Status.NO, f"Unsupported mechanism {mechanism}")
            return
        url = await _own_url(session, rump)
        mailbox = None
        if url is not None:
            mailbox = await session.store.get_mailbox(session.account.id, url.mailbox)
        if url is None or mailbox is None:
            await session.tagged(command.tag, r.Status.NO, "Invalid URL", r.Code("BADURL", rump))
            return
        key = await session.store.urlauth_key(mailbox.id)
        if key is None:
            key = await session.store.create_urlauth_key(
                session.account.id, mailbox.id, new_key(URLAUTH_KEY_OCTETS)
            )
        full.append(r.astring(f"{rump}:{MECHANISM.lower()}:{token(key, rump)}"))
    await session.write(b"* GENURLAUTH " + b" ".join(full) + b"\r\n")
    await session.tagged(command.tag, r.Status.OK, "GENURLAUTH completed")


async def _own_url(session: ImapSession, rump: str) -> ImapUrl | None:
    try:
        url = parse_imap_url(rump, absolute=True)
    except ImapUrlError:
        return None
    if url.access is None or url.mechanism is not None:
        return None
    owner = await url_owner(session.store, url)
    if owner is None or session.account is None or owner.id != session.account.id:
        return None
    return url


async def resetkey(session: ImapSession, command: ResetKey) -> None:
    """Forget the access key of one mailbox, or of all the user's mailboxes: every URL
    authorized with it stops working. Spec: RFC 4467 §6.2."""
    assert session.account is not None
    if any(m != MECHANISM for m in command.mechanisms):
        await session.tagged(command.tag, r.Status.NO, "Unsupported mechanism")
        return
    mailbox_id = None
    if command.mailbox is not None:
        mailbox = await session.store.get_mailbox(session.account.id, command.mailbox)
        if mailbox is None:
            await session.tagged(command.tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
            return
        mailbox_id = mailbox.id
    await session.store.reset_urlauth_keys(session.account.id, mailbox_id)
    await session.tagged(command.tag, r.Status.OK, "RESETKEY completed")


async def urlfetch(session: ImapSession, command: UrlFetch) -> None:
    """``* URLFETCH url data`` for each URL; NIL when it does not authorize this user
    or names nothing. Spec: RFC 4467 §6.3."""
    for text in command.urls:
        data = await authorized_octets(session, text)
        shown = b"NIL" if data is None else r.literal(data)
        await session.write(b"* URLFETCH " + r.astring(text) + b" " + shown + b"\r\n")
    await session.tagged(command.tag, r.Status.OK, "URLFETCH completed")


async def authorized_octets(session: ImapSession, text: str) -> bytes | None:
    """The octets a URLAUTH-authorized URL names, if the session may use it: the
    access identifier admits the user, it has not expired, and the token matches the
    mailbox access key. Spec: RFC 4467 §6.3, §3, §7."""
    assert session.account is not None
    try:
        url = parse_imap_url(text, absolute=True)
    except ImapUrlError:
        return None
    if url.mechanism is None or url.mechanism.upper() != MECHANISM or url.token is None:
        return None
    if url.expire is not None and url.expire <= session.service.clock.now():
        return None
    if not await _admitted(session, url, session.account):
        return None
    owner = await url_owner(session.store, url)
    if owner is None:
        return None
    mailbox = await session.store.get_mailbox(owner.id, url.mailbox)
    if mailbox is None:
        return None
    key = await session.store.urlauth_key(mailbox.id)
    if key is None or not hmac.compare_digest(token(key, url.rump), url.token.lower()):
        return None
    return await url_octets(session.store, owner, url)


async def _admitted(session: ImapSession, url: ImapUrl, account: Account) -> bool:
    """Does the access identifier let ``account`` use the URL? ``submit+`` names a
    submission entity, which an IMAP login is not. Spec: RFC 4467 §3."""
    if url.access in (AccessKind.AUTHUSER, AccessKind.ANONYMOUS):
        return True
    if url.access is not AccessKind.USER or url.access_user is None:
        return False
    named = await session.store.get_account(url.access_user)
    if named is None and "@" not in url.access_user and url.host:
        named = await session.store.get_account(f"{url.access_user}@{url.host}")
    return named is not None and named.id == account.id
