"""Sans-IO SMTP client core (sending side: MX delivery and smarthost): the public
surface. Drivers import from here; the ``client_*`` modules are implementation detail.

* ``ClientConnection`` / ``ClientConfig``: the connection (``client_connection``).
* Events: ``Greeting``, ``EhloDone``, ``ReplyReceived``, ``AuthChallenge``,
  ``ServiceClosing``, ``ConnectionClosed``, and ``NeedData`` (``client_events``).
* ``plan_transaction``: per message, what MAIL FROM carries or why this server cannot
  take it (``client_replies``).
* ``SmtpClientProtocolError``: the only error server input can cause.

Spec: RFC 5321, RFC 2920, RFC 3030, RFC 3207, RFC 4954, RFC 1870, RFC 6152, RFC 6531.
"""

from __future__ import annotations

from postel.smtp.client_connection import ClientConfig, ClientConnection
from postel.smtp.client_events import (
    NEED_DATA,
    AuthChallenge,
    CannotDeliver,
    ClientEvent,
    Command,
    ConnectionClosed,
    EhloDone,
    Extensions,
    Greeting,
    NeedData,
    NeedsConversion,
    Phase,
    ReplyReceived,
    ServiceClosing,
    TransactionOutcome,
    TransactionPlan,
)
from postel.smtp.client_replies import (
    REPLY_LINE_MAX,
    REPLY_LINES_MAX,
    SmtpClientProtocolError,
    plan_transaction,
)

__all__ = [
    "NEED_DATA",
    "REPLY_LINES_MAX",
    "REPLY_LINE_MAX",
    "AuthChallenge",
    "CannotDeliver",
    "ClientConfig",
    "ClientConnection",
    "ClientEvent",
    "Command",
    "ConnectionClosed",
    "EhloDone",
    "Extensions",
    "Greeting",
    "NeedData",
    "NeedsConversion",
    "Phase",
    "ReplyReceived",
    "ServiceClosing",
    "SmtpClientProtocolError",
    "TransactionOutcome",
    "TransactionPlan",
    "plan_transaction",
]
"""The client's public surface: drivers import from here."""
