"""APPEND with CATENATE: a message assembled from TEXT literals and URL parts naming
messages (or their sections) of the same user, written into one durable blob and then
stored through the same APPEND path as a plain message (blob committed and fsync'd,
then ``Store.append_many``, before the tagged OK).

A failing part (an unknown mailbox, a URL that does not resolve, a result over
APPENDLIMIT) is remembered; the next TEXT literal or message literal is refused and
the tagged NO sent at once, otherwise the NO follows the end of the command. The first
failure is reported: ``[TRYCREATE]``, ``[BADURL url]`` or ``[TOOBIG]``.

Spec: RFC 4469 §5 (CATENATE, BADURL, TOOBIG), §6 (MULTIAPPEND); RFC 5092 §5
(path-absolute URLs); RFC 4467 §6.3 (URLAUTH-authorized URL parts); RFC 3502
§6.3.11; RFC 7889.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from postel.imap import events as ev
from postel.imap import responses as r
from postel.imap.imapurl import ImapUrlError, parse_imap_url
from postel.server.imap_urlauth import authorized_octets
from postel.server.imap_urls import url_octets, url_owner
from postel.store import BlobWriter

if TYPE_CHECKING:
    from postel.server.imap_messages import Received
    from postel.server.imap_session import ImapSession

__all__ = ["Refusal", "receive", "refuse"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an APPEND fails, answered once the command can be cut short.
    Spec: RFC 4469 §5."""

    text: str
    code: r.Code | None


async def refuse(session: ImapSession, tag: str, refusal: Refusal) -> None:
    """Answer ``tag NO [code] text``."""
    await session.tagged(tag, r.Status.NO, refusal.text, refusal.code)


async def receive(
    session: ImapSession, started: ev.CatenateStarted, refusal: Refusal | None
) -> Received | Refusal | None:
    """Read the parts of one catenated message up to CatenateEnd. Returns the stored
    blob's item, the Refusal (the command goes on and is answered NO at its end), or
    None when the answer was already sent (a refused literal, BAD).
    Spec: RFC 4469 §5."""
    from postel.server.imap_messages import received_item

    assert session.account is not None
    mailbox = await session.store.get_mailbox(session.account.id, started.mailbox)
    if refusal is None and mailbox is None:
        refusal = Refusal("No such mailbox", r.TRYCREATE)
    writer: BlobWriter | None = session.store.blob_writer() if refusal is None else None
    deadline = session.loop.time() + session.command_timeout()
    try:
        while True:
            event = await session.next_event(max(deadline - session.loop.time(), 0.0))
            match event:
                case ev.CatenateUrl(url=url):
                    if refusal is None and writer is not None:
                        refusal = await _add_url(session, writer, url)
                case ev.CatenateText():
                    if refusal is not None:
                        session.conn.reject_literal()
                        await refuse(session, started.tag, refusal)
                        return None
                    continuation = session.conn.accept_literal()
                    if continuation:
                        await session.write(continuation)
                case ev.AppendData(data=data):
                    if writer is not None and refusal is None:
                        writer.write(data)
                        refusal = _over_limit(session, writer)
                case ev.CatenateEnd():
                    break
                case ev.CommandRefused(text=text, code=code):
                    await session.tagged(started.tag, r.Status.NO, text, r.Code(code or "TOOBIG"))
                    return None
                case ev.BadCommand(text=text) | ev.AppendAborted(text=text):
                    await session.tagged(started.tag, r.Status.BAD, text)
                    return None
                case _:
                    return None
        if refusal is not None or writer is None or mailbox is None:
            return refusal or Refusal("No such mailbox", r.TRYCREATE)
        ref = await writer.commit()
        writer = None
    finally:
        if writer is not None:
            writer.abort()
    return await received_item(session, mailbox.id, ref, started.flags, started.internal_date)


def _over_limit(session: ImapSession, writer: BlobWriter) -> Refusal | None:
    if writer.size > session.service.config.imap.append_limit:
        return Refusal("Message too large", r.TOOBIG)
    return None


async def _add_url(session: ImapSession, writer: BlobWriter, url_text: str) -> Refusal | None:
    """Append the octets ``url_text`` names, or the BADURL refusal. Spec: RFC 4469 §5
    (a URL that cannot be resolved fails the APPEND with BADURL)."""
    assert session.account is not None
    bad = Refusal("Bad URL in CATENATE", r.Code("BADURL", url_text))
    try:
        url = parse_imap_url(url_text, absolute=url_text[:7].lower() == "imap://")
    except ImapUrlError:
        return bad
    if url.mechanism is not None:
        octets = await authorized_octets(session, url_text)  # URLAUTH (RFC 4467 §6.3)
    elif url.user is not None:
        owner = await url_owner(session.store, url)
        if owner is None or owner.id != session.account.id or url.access is not None:
            return bad
        octets = await url_octets(session.store, owner, url)
    else:
        octets = await url_octets(session.store, session.account, url)
    if octets is None:
        return bad
    writer.write(octets)
    return _over_limit(session, writer)
