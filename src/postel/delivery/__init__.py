"""Outbound delivery: the worker that sends queued mail to other domains' servers.

Build one ``DeliveryWorker`` in the composition root with a ``DeliveryConfig``; run
``worker.run()`` as a task, call ``worker.wake()`` after enqueueing and
``await worker.stop()`` at shutdown. ``find_route`` (MX selection) and
``OutboundSession`` (one SMTP connection) are usable on their own.

Spec: RFC 5321 §4.5.4.1, §5.1; RFC 7505; RFC 3207; RFC 7435.
"""

from postel.delivery.mx import NoRoute, Route, Target, find_route, order_hosts
from postel.delivery.session import Envelope, OutboundSession, SessionError, format_reply
from postel.delivery.settings import (
    ADDRESSES_PER_ATTEMPT_MAX,
    CONNECTIONS_MAX,
    CONNECTIONS_PER_DOMAIN_MAX,
    DELIVERY_PORT,
    LEASE_BATCH,
    LEASE_SECONDS,
    MESSAGES_PER_CONNECTION_MAX,
    MX_HOSTS_MAX,
    POLL_INTERVAL_S,
    STOP_GRACE_S,
    DeliveryConfig,
    MessageSigner,
    NoSigning,
    OpportunisticTls,
    SmtpTimeouts,
    TlsDecision,
    TlsMode,
    TlsPolicy,
)
from postel.delivery.worker import DeliveryWorker, outcome_of

__all__ = [
    "ADDRESSES_PER_ATTEMPT_MAX",
    "CONNECTIONS_MAX",
    "CONNECTIONS_PER_DOMAIN_MAX",
    "DELIVERY_PORT",
    "LEASE_BATCH",
    "LEASE_SECONDS",
    "MESSAGES_PER_CONNECTION_MAX",
    "MX_HOSTS_MAX",
    "POLL_INTERVAL_S",
    "STOP_GRACE_S",
    "DeliveryConfig",
    "DeliveryWorker",
    "Envelope",
    "MessageSigner",
    "NoRoute",
    "NoSigning",
    "OpportunisticTls",
    "OutboundSession",
    "Route",
    "SessionError",
    "SmtpTimeouts",
    "Target",
    "TlsDecision",
    "TlsMode",
    "TlsPolicy",
    "find_route",
    "format_reply",
    "order_hosts",
    "outcome_of",
]
