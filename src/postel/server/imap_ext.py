"""Dispatch of the extension commands URLAUTH (GENURLAUTH, RESETKEY, URLFETCH),
NOTIFY and COMPRESS to their modules.

Spec: RFC 4467 §6; RFC 5465 §3; RFC 4978 §3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap import commands as cmd
from postel.imap import responses as r
from postel.server import imap_compress, imap_notify, imap_urlauth

if TYPE_CHECKING:
    from postel.server.imap_session import ImapSession

__all__ = ["run"]


async def run(session: ImapSession, command: cmd.Command) -> None:
    """Run one extension command. Spec: see the module docstring."""
    match command:
        case cmd.GenUrlAuth():
            await imap_urlauth.genurlauth(session, command)
        case cmd.ResetKey():
            await imap_urlauth.resetkey(session, command)
        case cmd.UrlFetch():
            await imap_urlauth.urlfetch(session, command)
        case cmd.Notify():
            await imap_notify.notify(session, command)
        case cmd.Compress():
            await imap_compress.compress(session, command)
        case _:
            await session.tagged(command.tag, r.Status.BAD, "Command not supported")
