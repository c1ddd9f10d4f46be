"""Sans-IO POP3 server core: line assembly, the state table, the maildrop listing of a
session, responses with extended codes, and the dot-stuffed RETR/TOP payload.

Never imports asyncio, socket, ssl, time or the store: a driver in ``postel.server``
feeds it bytes, answers its policy events and streams message content through
``stuff_chunks``.

Spec: RFC 1939, RFC 2449, RFC 2595 §4, RFC 3206, RFC 5034, RFC 8314 §3.
"""

from __future__ import annotations

from postel.pop3 import limits
from postel.pop3.connection import ServerConnection
from postel.pop3.events import (
    NEED_DATA,
    Answered,
    AuthMechanisms,
    AuthResponse,
    AuthStarted,
    BadCommand,
    Capa,
    ConnectionClosed,
    Dele,
    Event,
    List,
    NeedData,
    Noop,
    NoSuchMessage,
    Pass,
    Quit,
    Retr,
    Rset,
    StartTls,
    Stat,
    TooManyErrors,
    Top,
    Uidl,
    User,
)
from postel.pop3.maildrop import Maildrop
from postel.pop3.responses import (
    AUTH_CANCELLED,
    AUTH_FAILED,
    BEGIN_TLS,
    GREETING,
    IN_USE,
    SEND_PASS,
    SIGNING_OFF,
    SYS_TEMP,
    UPDATE_FAILED,
    Response,
    ResponseCode,
    render_multiline,
)
from postel.pop3.session import COMMANDS, Pop3Config, State
from postel.pop3.transparency import (
    DotStuffer,
    LineEndNormaliser,
    TopFilter,
    normalise_line_ends,
    pop3_size,
    stuff,
    stuff_chunks,
    top,
    top_chunks,
)

__all__ = [
    "AUTH_CANCELLED",
    "AUTH_FAILED",
    "BEGIN_TLS",
    "COMMANDS",
    "GREETING",
    "IN_USE",
    "NEED_DATA",
    "SEND_PASS",
    "SIGNING_OFF",
    "SYS_TEMP",
    "UPDATE_FAILED",
    "Answered",
    "AuthMechanisms",
    "AuthResponse",
    "AuthStarted",
    "BadCommand",
    "Capa",
    "ConnectionClosed",
    "Dele",
    "DotStuffer",
    "Event",
    "LineEndNormaliser",
    "List",
    "Maildrop",
    "NeedData",
    "NoSuchMessage",
    "Noop",
    "Pass",
    "Pop3Config",
    "Quit",
    "Response",
    "ResponseCode",
    "Retr",
    "Rset",
    "ServerConnection",
    "StartTls",
    "Stat",
    "State",
    "TooManyErrors",
    "Top",
    "TopFilter",
    "Uidl",
    "User",
    "limits",
    "normalise_line_ends",
    "pop3_size",
    "render_multiline",
    "stuff",
    "stuff_chunks",
    "top",
    "top_chunks",
]
