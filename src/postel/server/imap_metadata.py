"""The IMAP METADATA commands over the store's entries: GETMETADATA and SETMETADATA.

Mailbox ``""`` names the server's entries; any other name one of the account's
mailboxes (NO [NONEXISTENT] when it does not exist). postel has no sharing between
accounts, so each account has its own server entries, and ``/shared`` entries, like
``/private`` ones, are seen by their account only; both namespaces can be written, so
``[METADATA NOPRIVATE]`` is never sent. Values are limited to METADATA_VALUE_MAX octets
(``[METADATA MAXSIZE n]``) and an account to METADATA_ENTRIES_MAX entries
(``[METADATA TOOMANY]``). GETMETADATA answers one METADATA response per entry, NIL for
a requested entry that does not exist; MAXSIZE leaves out longer values and reports the
longest as ``[METADATA LONGENTRIES n]``.

Spec: RFC 5464 §3.2 (namespaces), §4.2 (GETMETADATA), §4.3 (SETMETADATA), §4.4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.ids import MailboxId
from postel.imap import responses as r
from postel.imap.parse_metadata import (
    TOOMANY,
    GetMetadata,
    SetMetadata,
    longentries,
    maxsize,
    metadata_response,
)
from postel.store.metadata_ops import (
    METADATA_VALUE_MAX,
    MetadataDepth,
    MetadataTooMany,
    MetadataValueTooLarge,
)

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

__all__ = ["SERVER_MAILBOX", "run"]

SERVER_MAILBOX = ""
"""The mailbox name that stands for the server's entries. Spec: RFC 5464 §4.2."""


async def _scope(session: ImapSession, tag: str, name: str) -> tuple[bool, MailboxId | None]:
    """(found, mailbox id or None for the server); answers NO when not found."""
    if name == SERVER_MAILBOX:
        return True, None
    assert session.account is not None
    box = await session.store.get_mailbox(session.account.id, name)
    if box is None:
        await session.tagged(tag, r.Status.NO, "No such mailbox", r.NONEXISTENT)
        return False, None
    return True, box.id


async def run(session: ImapSession, command: GetMetadata | SetMetadata) -> None:
    """Answer one METADATA command. Spec: RFC 5464 §4.2, §4.3."""
    match command:
        case GetMetadata():
            await _get(session, command)
        case SetMetadata():
            await _set(session, command)


async def _get(session: ImapSession, command: GetMetadata) -> None:
    account = session.account
    assert account is not None
    found, mailbox_id = await _scope(session, command.tag, command.mailbox)
    if not found:
        return
    depth = MetadataDepth(command.depth.value)
    got = await session.store.get_metadata(account.id, mailbox_id, command.entries, depth)
    longest = 0
    for entry in got:
        if command.max_size is not None and len(entry.value) > command.max_size:
            longest = max(longest, len(entry.value))
            continue
        await session.write(
            metadata_response(command.mailbox, entry.name, entry.value, utf8=session.utf8)
        )
    present = {entry.name for entry in got}
    for name in command.entries:
        if name not in present:
            await session.write(metadata_response(command.mailbox, name, None, utf8=session.utf8))
    code = longentries(longest) if longest else None
    await session.tagged(command.tag, r.Status.OK, "GETMETADATA completed", code)


async def _set(session: ImapSession, command: SetMetadata) -> None:
    account = session.account
    assert account is not None
    if any(v is not None and len(v) > METADATA_VALUE_MAX for _, v in command.changes):
        await session.tagged(
            command.tag, r.Status.NO, "Value too large", maxsize(METADATA_VALUE_MAX)
        )
        return
    found, mailbox_id = await _scope(session, command.tag, command.mailbox)
    if not found:
        return
    try:
        await session.store.set_metadata(account.id, mailbox_id, command.changes)
    except MetadataValueTooLarge as exc:
        await session.tagged(command.tag, r.Status.NO, "Value too large", maxsize(exc.limit))
        return
    except MetadataTooMany:
        await session.tagged(command.tag, r.Status.NO, "Too many metadata entries", TOOMANY)
        return
    await session.tagged(command.tag, r.Status.OK, "SETMETADATA completed")
