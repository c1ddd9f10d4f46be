"""Settings of outbound delivery and the hooks later features plug into.

Defaults defined here (the delivery package's own bounds; local policy unless cited):
``DELIVERY_PORT``, ``CONNECTIONS_MAX``, ``CONNECTIONS_PER_DOMAIN_MAX``,
``MESSAGES_PER_CONNECTION_MAX``, ``MX_HOSTS_MAX``, ``ADDRESSES_PER_ATTEMPT_MAX``,
``LEASE_SECONDS``, ``LEASE_BATCH``, ``POLL_INTERVAL_S``, ``STOP_GRACE_S`` and the
timeouts of ``SmtpTimeouts``.

Hooks: ``TlsPolicy`` (what TLS a connection to one host needs: the place for MTA-STS
and DANE) and ``MessageSigner`` (header fields put in front of a message before it is
sent: the place for DKIM signing).

Spec: RFC 5321 §4.5.3.2 (timeouts), §4.5.4.1 (retry), §5.1 (hosts); RFC 7435 (opportunistic
security); RFC 3207 (STARTTLS).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from postel.store.queue_api import DEFAULT_BACKOFF, BackoffPolicy, QueuedMessage

from .smarthost import Smarthost

DELIVERY_PORT = 25
"""The port outbound mail goes to. Spec: RFC 5321 §4.5.4 (well-known port 25)."""
CONNECTIONS_MAX = 20
"""Outbound SMTP connections open at once, over all domains (local policy; Postfix's
default_destination_concurrency_limit is 20 per destination, its process limit 100)."""
CONNECTIONS_PER_DOMAIN_MAX = 5
"""Outbound connections open at once to one destination domain (local policy; RFC 5321
§4.5.4.1 asks clients not to overload a server with parallel connections)."""
MESSAGES_PER_CONNECTION_MAX = 50
"""Transactions sent over one connection before it is closed (local policy)."""
MX_HOSTS_MAX = 10
"""MX hosts whose addresses are looked up for one attempt (local policy; RFC 5321 §5.1
asks for a configurable bound on the hosts tried)."""
ADDRESSES_PER_ATTEMPT_MAX = 5
"""IP addresses connected to for one attempt before deferring (RFC 5321 §5.1: bound the
number of alternatives tried; Postfix's smtp_mx_address_limit is 5)."""
LEASE_SECONDS = 3600.0
"""How long a worker holds leased recipients before they become due again if it never
settles them (crash). Longer than one connection's worst-case timeouts (local policy)."""
LEASE_BATCH = 500
"""Leases one worker holds at most (being delivered or waiting for a connection)."""
POLL_INTERVAL_S = 1.0
"""Seconds between looks at the queue when nobody wakes the worker."""
STOP_GRACE_S = 10.0
"""Seconds ``DeliveryWorker.stop`` lets in-flight deliveries finish by default."""


@dataclass(frozen=True, slots=True)
class SmtpTimeouts:
    """Seconds to wait for each step of an outbound session.

    Defaults are RFC 5321 §4.5.3.2's minimums: greeting 5 min (§4.5.3.2.1), MAIL 5 min
    (.2), RCPT 5 min (.3), DATA initiation 2 min (.4), each data block 3 min (.5), the
    reply after the end of data 10 min (.6). ``connect`` (30 s), ``hello`` (EHLO/HELO,
    STARTTLS, RSET: 5 min), ``tls_handshake`` (30 s) and ``quit`` (10 s) are local policy.
    Spec: RFC 5321 §4.5.3.2.
    """

    connect: float = 30.0
    greeting: float = 300.0
    hello: float = 300.0
    tls_handshake: float = 30.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0
    quit: float = 10.0


class TlsMode(enum.StrEnum):
    """What a connection does about STARTTLS.

    ``off``: never; ``opportunistic``: when offered, without verifying the certificate,
    and in plaintext if it fails (RFC 7435); ``required``: no delivery without TLS (with
    ``verify``: a certificate valid for the host name), as MTA-STS or DANE ask;
    ``refuse``: do not connect to this host at all (an MTA-STS policy in enforce mode
    does not list it).
    Spec: RFC 7435 §1.3, RFC 3207 §4, RFC 8461 §4.1, §5.
    """

    OFF = "off"
    OPPORTUNISTIC = "opportunistic"
    REQUIRED = "required"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class TlsDecision:
    """The TLS a connection to one host must use. ``verify``: check the certificate
    chain and that it names ``server_hostname`` (the MX host when None).
    Spec: RFC 7435 §1.3; RFC 8461 §4.2."""

    mode: TlsMode = TlsMode.OPPORTUNISTIC
    verify: bool = False
    server_hostname: str | None = None


class TlsPolicy(Protocol):
    """Decides the TLS for a connection to ``host`` (an MX name) for mail to ``domain``.
    Spec: RFC 7435; RFC 8461 (MTA-STS); RFC 7672 (DANE)."""

    async def decide(self, domain: str, host: str) -> TlsDecision: ...


class OpportunisticTls:
    """The default policy: STARTTLS whenever offered, certificate not verified.
    Spec: RFC 7435 §1.3 (encryption without authentication beats plaintext)."""

    async def decide(self, domain: str, host: str) -> TlsDecision:
        return TlsDecision(TlsMode.OPPORTUNISTIC)


class MessageSigner(Protocol):
    """Header fields (each ending CRLF, possibly none) sent before ``message``'s stored
    bytes, computed once per message and attempt. Spec: RFC 6376 §5 (DKIM signing)."""

    async def signature(self, message: QueuedMessage) -> bytes: ...


class NoSigning:
    """The default signer: adds nothing."""

    async def signature(self, message: QueuedMessage) -> bytes:
        return b""


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How one delivery worker sends mail.

    Args:
        hostname: our name in EHLO/HELO (an A-label FQDN). Spec: RFC 5321 §4.1.1.1.
        worker_name: who holds the leases (unique per process; at most 128 characters).
        port: the remote port (25 in production; tests use another).
        bind_address: the local source address of outbound connections (None: the
            system's choice). Only destination addresses of its family are used.
        ipv6: also connect to AAAA addresses (after the A addresses of a host).
        connections_max, connections_per_domain_max, messages_per_connection_max,
        mx_hosts_max, addresses_per_attempt_max, lease_seconds, lease_batch,
        poll_interval: see the module constants.
        use_bdat: send with BDAT when the server offers CHUNKING (the default: no
            dot-stuffing, RFC 3030 §2; BINARYMIME always
            needs it); DATA otherwise.
        timeouts: per-step timeouts (SmtpTimeouts).
        backoff: when deferred recipients are tried again (the store's policy).
        ca_file: extra PEM trust anchors, besides the system's, for connections
            whose ``TlsDecision`` asks to verify the certificate (RFC 8461 §4.2).
        smarthost: relay every message through this host instead of the MX hosts
            (None: direct delivery). Spec: RFC 6409 §3.

    Raises ValueError for a non-positive bound or port outside 1..65535.
    Spec: RFC 5321 §4.5.4.1, §5.1.
    """

    hostname: str
    worker_name: str = "delivery"
    port: int = DELIVERY_PORT
    bind_address: IpAddress | None = None
    ipv6: bool = True
    connections_max: int = CONNECTIONS_MAX
    connections_per_domain_max: int = CONNECTIONS_PER_DOMAIN_MAX
    messages_per_connection_max: int = MESSAGES_PER_CONNECTION_MAX
    mx_hosts_max: int = MX_HOSTS_MAX
    addresses_per_attempt_max: int = ADDRESSES_PER_ATTEMPT_MAX
    lease_seconds: float = LEASE_SECONDS
    lease_batch: int = LEASE_BATCH
    poll_interval: float = POLL_INTERVAL_S
    use_bdat: bool = True
    timeouts: SmtpTimeouts = field(default_factory=SmtpTimeouts)
    backoff: BackoffPolicy = DEFAULT_BACKOFF
    ca_file: Path | None = None
    smarthost: Smarthost | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"delivery port out of range: {self.port}")
        bounds = (
            self.connections_max,
            self.connections_per_domain_max,
            self.messages_per_connection_max,
            self.mx_hosts_max,
            self.addresses_per_attempt_max,
            self.lease_batch,
        )
        if min(bounds) < 1 or self.lease_seconds <= 0 or self.poll_interval <= 0:
            raise ValueError("delivery bounds must be positive")
