"""Sans-IO SMTP server core: replies, envelope grammar, events and the connection.

Import from here; the submodules are implementation detail.

Spec: RFC 5321, RFC 2920, RFC 3030, RFC 3207, RFC 1870, RFC 6152, RFC 6531, RFC 3461.
"""

from __future__ import annotations

from postel.smtp.events import (
    NEED_DATA,
    AuthLine,
    AuthRequested,
    AutoReply,
    ChunkReceived,
    ConnectionClosed,
    DataStarted,
    Event,
    Hello,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRejected,
    NeedData,
    Quit,
    RcptTo,
    Reset,
    StartTls,
    TooManyErrors,
)
from postel.smtp.grammar import DOMAIN_MAX, Mailbox, Path, SmtpSyntaxError
from postel.smtp.params import (
    DEFAULT_NOTIFY,
    Body,
    MailParams,
    Notify,
    Orcpt,
    RcptParams,
    Ret,
    asks_for,
    decode_utf8_addr,
    decode_xtext,
    encode_utf8_addr,
)
from postel.smtp.reply import (
    OK,
    READY_TO_START_TLS,
    START_MAIL_INPUT,
    TLS_NOT_AVAILABLE,
    Reply,
)
from postel.smtp.server import ServerConnection
from postel.smtp.session import COMMANDS, ServerConfig, State
from postel.smtp.transparency import BareLineEndings, DotReader

__all__ = [
    "COMMANDS",
    "DEFAULT_NOTIFY",
    "DOMAIN_MAX",
    "NEED_DATA",
    "OK",
    "READY_TO_START_TLS",
    "START_MAIL_INPUT",
    "TLS_NOT_AVAILABLE",
    "AuthLine",
    "AuthRequested",
    "AutoReply",
    "BareLineEndings",
    "Body",
    "ChunkReceived",
    "ConnectionClosed",
    "DataStarted",
    "DotReader",
    "Event",
    "Hello",
    "MailFrom",
    "MailParams",
    "Mailbox",
    "MessageComplete",
    "MessageData",
    "MessageRejected",
    "NeedData",
    "Notify",
    "Orcpt",
    "Path",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Reply",
    "Reset",
    "Ret",
    "ServerConfig",
    "ServerConnection",
    "SmtpSyntaxError",
    "StartTls",
    "State",
    "TooManyErrors",
    "asks_for",
    "decode_utf8_addr",
    "decode_xtext",
    "encode_utf8_addr",
]
