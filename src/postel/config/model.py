"""Configuration values: frozen dataclasses built from TOML by ``postel.config.load``.

The embedded default (no config file) is ``Config.embedded(data_dir)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from postel import limits


class Service(enum.StrEnum):
    """A listening service. Ports per RFC 5321 (25), RFC 6409 (587), RFC 8314 (465, 993,
    995), RFC 9051 (143), RFC 1939 (110)."""

    SMTP = "smtp"
    SUBMISSION = "submission"
    SUBMISSIONS = "submissions"
    IMAP = "imap"
    IMAPS = "imaps"
    POP3 = "pop3"
    POP3S = "pop3s"
    WEB = "web"


PRODUCTION_PORTS: dict[Service, int] = {
    Service.SMTP: 25,
    Service.SUBMISSION: 587,
    Service.SUBMISSIONS: 465,
    Service.IMAP: 143,
    Service.IMAPS: 993,
    Service.POP3: 110,
    Service.POP3S: 995,
    Service.WEB: 443,
}

EMBEDDED_PORTS: dict[Service, int] = {
    Service.SMTP: 2525,
    Service.SUBMISSION: 2587,
    Service.SUBMISSIONS: 2465,
    Service.IMAP: 1143,
    Service.IMAPS: 1993,
    Service.POP3: 1110,
    Service.POP3S: 1995,
    Service.WEB: 8080,
}


LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
"""Exempt from the abuse tracker in the embedded default, which listens on loopback only
(RFC 6890 §2.2.2, §2.2.3)."""


class BareLineEndings(enum.StrEnum):
    """What SMTP DATA does with a bare LF or bare CR in content (RELIABILITY.md D4)."""

    NORMALIZE = "normalize"
    """Turn it into CRLF (as Postfix's smtpd_forbid_bare_newline = normalize)."""
    STRICT = "strict"
    """Refuse the message with 550 5.5.2 (and lines over 998 octets too)."""


@dataclass(frozen=True, slots=True)
class Listen:
    """One listening socket: a service on host:port."""

    service: Service
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Certificate and key (PEM). In the embedded default a self-signed pair is generated
    in ``<data>/tls/`` on first start."""

    cert_file: Path
    key_file: Path
    generate_self_signed: bool = False


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    """SMTP bounds; defaults from ``postel.limits`` (RELIABILITY.md D3)."""

    message_size_max: int = limits.SMTP_MESSAGE_SIZE_MAX
    recipients_max: int = limits.SMTP_RECIPIENTS_MAX
    errors_max: int = limits.SMTP_ERRORS_MAX
    received_max: int = limits.SMTP_RECEIVED_MAX
    command_timeout: float = limits.SMTP_TIMEOUT_COMMAND
    data_timeout: float = limits.SMTP_TIMEOUT_DATA_BLOCK
    send_timeout: float = limits.SMTP_TIMEOUT_SEND
    """Seconds a client may leave our replies unread before it is cut."""
    bare_line_endings: BareLineEndings = BareLineEndings.NORMALIZE
    processes: int = 1
    """Processes for port 25, the main one included (docs/adr/0005)."""
    main_serves: bool = True
    """With ``processes`` above 1, whether the main process (which commits every
    delivery) runs port-25 sessions too; False leaves them all to the workers, so the
    main process's event loop answers commits (and IMAP, POP3, submission) without
    waiting behind sessions (docs/adr/0005, "Where sessions run")."""


@dataclass(frozen=True, slots=True)
class ImapLimits:
    """IMAP bounds and timeouts; defaults from ``postel.limits`` (RELIABILITY.md D3, D4)."""

    append_limit: int = limits.IMAP_APPEND_LIMIT
    timeout_authenticated: float = limits.IMAP_TIMEOUT_AUTHENTICATED
    timeout_not_authenticated: float = limits.IMAP_TIMEOUT_NOT_AUTHENTICATED
    timeout_idle: float = limits.IMAP_TIMEOUT_IDLE
    search_text_max: int = limits.IMAP_SEARCH_TEXT_MAX


@dataclass(frozen=True, slots=True)
class Pop3Limits:
    """POP3 timeouts; defaults from ``postel.limits`` (RFC 1939 §3, RELIABILITY.md D4)."""

    timeout_authenticated: float = limits.POP3_TIMEOUT_AUTHENTICATED
    timeout_not_authenticated: float = limits.POP3_TIMEOUT_NOT_AUTHENTICATED


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """Where postel asks DNS questions: ``nameservers`` as ``"address:port"`` (or just
    ``"address"`` for port 53); empty means the system's resolv.conf.
    ``temperror_cache``: seconds a SERVFAIL, REFUSED or timeout is remembered (0-300).
    Spec: RFC 2308 §7.1."""

    nameservers: tuple[str, ...] = ()
    temperror_cache: float = 5.0

    def servers(self) -> list[tuple[str, int]] | None:
        """``nameservers`` as (address, port) pairs ("[v6]:port" or a bare address for
        port 53); None for the system resolver."""
        if not self.nameservers:
            return None
        out: list[tuple[str, int]] = []
        for entry in self.nameservers:
            host, sep, port = entry.rpartition(":")
            if not sep or "]" in port or (entry.count(":") > 1 and not entry.startswith("[")):
                out.append((entry.strip("[]"), 53))
            else:
                out.append((host.strip("[]"), int(port)))
        return out


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Outbound delivery (the queue worker). ``port`` is the remote SMTP port (25; tests
    use another), ``bind_address`` the local source address ("" = the system's choice).
    Spec: RFC 5321 §4.5.4, §5.1."""

    enabled: bool = True
    port: int = 25
    bind_address: str = ""
    connections_max: int = 20
    connections_per_domain_max: int = 5
    first_retry: float = 300.0
    """Seconds before the first retry of a deferred recipient; later retries wait
    ``retry_factor`` times longer each, at most ``max_retry_interval`` (RFC 5321
    §4.5.4.1)."""
    retry_factor: float = 2.0
    max_retry_interval: float = 4 * 3600.0
    lifetime: float = 5 * 86400.0
    """Seconds a message is retried before it fails and bounces (RFC 5321 §4.5.4.1:
    4-5 days)."""
    delay_notice_after: float = 4 * 3600.0
    """Seconds after queueing when a still-undelivered recipient's sender gets a delay
    notice (RFC 3464 §2.3.3, Action: delayed)."""
    ca_file: str = ""
    """Extra trust anchors (PEM) for verified TLS: MTA-STS policy fetches and
    connections whose policy demands a valid certificate. "" = the system's store."""
    smarthost: str = ""
    """Send all outbound mail through this host ("host" or "host:port", port 587 when
    omitted) instead of the recipients' MX hosts ("" = direct delivery)."""
    smarthost_tls: str = "starttls"
    """"starttls" (required, verified), "implicit" (RFC 8314 §3.3) or "none"."""
    smarthost_username: str = ""
    smarthost_password_file: str = ""
    """File holding the smarthost AUTH password (first line); with a username, AUTH
    PLAIN is used after TLS (RFC 4954, RFC 4616)."""


@dataclass(frozen=True, slots=True)
class MtaStsConfig:
    """MTA-STS (RFC 8461): ``outbound`` fetches and enforces other domains' policies;
    ``mode`` and ``max_age`` are what postel's own policy file says for our domains
    (served at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``; ``mx`` lists the
    configured hostname). Spec: RFC 8461 §3.2, §5."""

    outbound: bool = True
    mode: str = "testing"
    max_age: int = 604800


@dataclass(frozen=True, slots=True)
class AuthenticationConfig:
    """Sender authentication of mail received on port 25: SPF, DKIM, ARC, DMARC and
    iprev, recorded in Authentication-Results; DMARC's policy applied (reject: 550
    5.7.1, quarantine: Junk). ``authserv_id`` defaults to the hostname;
    ``temperror`` "defer" answers 451 4.7.5 when DMARC cannot be evaluated for DNS
    trouble, "accept" takes the message; ``trusted_forwarders`` (CIDR) and
    ``trusted_arc_sealers`` (domains) are local overrides for forwarded mail;
    ``ignore_clients`` (CIDR) are client networks whose mail is not checked at all
    (local programs submitting on port 25; loopback by default, as OpenDMARC's
    IgnoreHosts). Spec: RFC 8601; RFC 9989; RFC 8617 §7.2."""

    enabled: bool = True
    authserv_id: str = ""
    temperror: str = "defer"
    trusted_forwarders: tuple[str, ...] = ()
    trusted_arc_sealers: tuple[str, ...] = ()
    ignore_clients: tuple[str, ...] = LOOPBACK_NETWORKS


@dataclass(frozen=True, slots=True)
class ForwardingConfig:
    """Mail received on port 25 for an alias with remote targets, and bounces to our
    SRS addresses. ``enabled``: forward (queue for the remote targets, MAIL FROM
    rewritten with SRS, an ARC Set sealed with the alias domain's DKIM RSA key); when
    false such aliases reach only their local targets and SRS addresses are unknown.
    ``srs_domain``: the domain of rewritten senders (empty: the hostname); it needs an
    MX pointing here and an SPF record allowing our outbound addresses.
    Spec: RFC 5321 §3.9; RFC 7208 §3.3, Appendix D; RFC 8617 §5.1."""

    enabled: bool = True
    srs_domain: str = ""


@dataclass(frozen=True, slots=True)
class DmarcConfig:
    """DMARC aggregate reports (RFC 9990). ``reports``: count the evaluations of
    mail received on port 25 and mail a report per Policy Domain and period to the
    ``rua`` mailto: addresses of domains that ask for one; ``report_interval``:
    seconds per reporting period (86400: one UTC day); ``intake``: keep the summary
    of reports received for our domains (``postel dmarc reports``); ``org_name`` and
    ``report_from`` default to the hostname's domain and noreply-dmarc@ it;
    ``history_days``: how long report data is kept; ``flush_interval``: seconds
    between writes of the counts to the store. Spec: RFC 9990 §2.1, §2.5."""

    reports: bool = False
    report_interval: float = 86400.0
    intake: bool = True
    org_name: str = ""
    report_from: str = ""
    history_days: float = 31.0
    flush_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class SubmissionConfig:
    """The submission service (RFC 6409). ``copy_to_sent``: also file each accepted
    message (as sent, with the fields postel added) in the sender's Sent mailbox,
    marked \\Seen; off by default, since mail clients save their own copy."""

    copy_to_sent: bool = False


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Quota limits given to each account when it is created (``postel account add``);
    0 is no limit. An account's own limits are set with ``postel account quota``.
    Spec: RFC 9208 §5."""

    storage_default: int = 0
    """Octets: the sum of the sizes of all the account's messages."""
    messages_default: int = 0
    """Messages over all the account's mailboxes."""

    @property
    def storage_limit(self) -> int | None:
        """The default as the store takes it (None: no limit)."""
        return self.storage_default or None

    @property
    def message_limit(self) -> int | None:
        """The default as the store takes it (None: no limit)."""
        return self.messages_default or None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Login policy shared by IMAP, POP3 and submission."""

    plaintext_on_loopback: bool = False
    """Accept plaintext passwords without TLS from loopback clients (the embedded
    default, local tools, benchmarks). Elsewhere TLS always comes first (RFC 8314 §3)."""
    cache_seconds: float = 300.0
    """How long a verified password is remembered (as a keyed hash, in memory) so that
    clients polling every few minutes do not pay the argon2id check each time; 0 turns
    it off. A password change takes effect at once (the cache key includes the hash)."""


@dataclass(frozen=True, slots=True)
class AbuseConfig:
    """Thresholds of the shared abuse tracker (RELIABILITY.md D6). Windows in seconds."""

    enabled: bool = True
    max_connections_per_ip: int = 50
    max_connection_rate_per_ip: int = 300
    """New connections per IP per ``window``."""
    max_unknown_recipients_per_ip: int = 20
    """550 5.1.1 answers per IP per ``window`` before the IP is banned."""
    max_errors_per_ip: int = 50
    """Protocol errors per IP per ``window`` before the IP is banned."""
    max_auth_failures_per_ip: int = 10
    window: float = 60.0
    ban_seconds: float = 600.0
    exempt: tuple[str, ...] = ()
    """IP networks (CIDR) never tracked."""
    max_messages_per_hour_per_account: int = 300
    """Messages one authenticated account may submit per hour (submission refuses more
    with 450 4.7.1 until the hour's window moves on)."""
    max_recipients_per_hour_per_account: int = 1000
    """Recipients (RCPT TO) one authenticated account may submit to per hour."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. ``source`` is the file it came from, if any."""

    hostname: str
    data_dir: Path
    database_url: str
    """``sqlite:///<path>`` or ``postgresql+psycopg://...``."""
    listen: tuple[Listen, ...]
    tls: TlsConfig
    smtp: SmtpLimits = field(default_factory=SmtpLimits)
    imap: ImapLimits = field(default_factory=ImapLimits)
    pop3: Pop3Limits = field(default_factory=Pop3Limits)
    dns: DnsConfig = field(default_factory=DnsConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    mta_sts: MtaStsConfig = field(default_factory=MtaStsConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    authentication: AuthenticationConfig = field(default_factory=AuthenticationConfig)
    dmarc: DmarcConfig = field(default_factory=DmarcConfig)
    forwarding: ForwardingConfig = field(default_factory=ForwardingConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    abuse: AbuseConfig = field(default_factory=AbuseConfig)
    admin_address: str | None = None
    """Account that receives postmaster@ and abuse@ of every domain (RFC 5321 §4.5.1,
    RFC 2142) when no alias says otherwise."""
    run_as: str | None = None
    """Unprivileged user to switch to after binding ports when started as root (D5)."""
    embedded: bool = False
    """True for the no-config default: demo domain, loopback plaintext AUTH allowed."""
    source: Path | None = None

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @classmethod
    def embedded_default(cls, data_dir: Path, hostname: str = "localhost") -> Config:
        """The embedded default: SQLite in ``data_dir``, loopback, unprivileged ports."""
        data_dir = data_dir.absolute()
        return cls(
            hostname=hostname,
            data_dir=data_dir,
            database_url=f"sqlite:///{data_dir / 'postel.sqlite3'}",
            listen=tuple(Listen(s, "127.0.0.1", p) for s, p in EMBEDDED_PORTS.items()),
            tls=TlsConfig(
                cert_file=data_dir / "tls" / "cert.pem",
                key_file=data_dir / "tls" / "key.pem",
                generate_self_signed=True,
            ),
            abuse=AbuseConfig(exempt=LOOPBACK_NETWORKS),
            auth=AuthConfig(plaintext_on_loopback=True),
            embedded=True,
        )
