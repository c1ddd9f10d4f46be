"""Load a TOML configuration file into ``postel.config.model.Config``.

Unknown keys and wrong types are errors; every error names the file and the line of the
offending key (``ConfigError.file`` / ``.line``). ``check`` also looks at the files the
configuration points to (TLS certificate and key), as ``postel config check`` does.

Spec: TOML v1.0.0 (read with ``tomllib``); ports per ``postel.config.model.Service``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from postel.config.fields import Reader, Validator, networks, non_negative, one_of, positive
from postel.config.lines import KeyPath, LineIndex
from postel.config.listen import read_listen
from postel.config.model import (
    AbuseConfig,
    AuthConfig,
    AuthenticationConfig,
    Config,
    DeliveryConfig,
    DmarcConfig,
    DnsConfig,
    ForwardingConfig,
    ImapLimits,
    MtaStsConfig,
    Pop3Limits,
    QuotaConfig,
    SmtpLimits,
    SubmissionConfig,
    TlsConfig,
)
from postel.errors import ConfigError

DEFAULT_DATA_DIR = Path("postel-data")
"""Data directory of the embedded default when neither --data nor --config is given."""

CONFIG_FILE_MAX = 1024 * 1024
"""A configuration file larger than this is refused before parsing (local policy)."""

HOSTNAME_MAX = 253
"""Longest domain name in text form. Spec: RFC 1035 §2.3.4 (255 octets on the wire)."""

_TOP_KEYS = {
    "hostname",
    "data_dir",
    "database_url",
    "admin_address",
    "run_as",
    "listen",
    "tls",
    "smtp",
    "imap",
    "pop3",
    "dns",
    "delivery",
    "mta_sts",
    "submission",
    "quota",
    "authentication",
    "dmarc",
    "forwarding",
    "auth",
    "abuse",
}
_TLS_KEYS = {"cert_file", "key_file", "generate_self_signed"}
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://")
_TOML_POSITION = re.compile(r"\s*\(at line (?P<line>\d+), column \d+\)$")

RECIPIENTS_MAX_FLOOR = 100
"""The least ``[smtp] recipients_max`` a configuration may set: a server must accept at
least 100 recipients per message. Spec: RFC 5321 §4.5.3.1.8."""

_SMTP_CHECKS: dict[str, Validator] = {
    "message_size_max": positive,
    "recipients_max": lambda value: (
        None
        if value >= RECIPIENTS_MAX_FLOOR
        else f"must be at least {RECIPIENTS_MAX_FLOOR} (RFC 5321 §4.5.3.1.8)"
    ),
    "errors_max": positive,
    "received_max": positive,
    "command_timeout": positive,
    "data_timeout": positive,
    "send_timeout": positive,
    "processes": lambda value: (
        None if 1 <= value <= 32 else "must be 1 to 32 (processes serving port 25)"
    ),
}
_IMAP_CHECKS: dict[str, Validator] = {
    "append_limit": positive,
    "timeout_authenticated": positive,
    "timeout_not_authenticated": positive,
    "timeout_idle": positive,
    "search_text_max": positive,
}
_AUTH_CHECKS: dict[str, Validator] = {"cache_seconds": non_negative}
_QUOTA_CHECKS: dict[str, Validator] = {
    "storage_default": non_negative,
    "messages_default": non_negative,
}
_DELIVERY_CHECKS: dict[str, Validator] = {
    "port": positive,
    "connections_max": positive,
    "connections_per_domain_max": positive,
    "first_retry": positive,
    "retry_factor": lambda value: None if value >= 1 else "must be at least 1",
    "max_retry_interval": positive,
    "lifetime": positive,
    "delay_notice_after": positive,
    "smarthost_tls": one_of("starttls", "implicit", "none"),
}
_AUTHENTICATION_CHECKS: dict[str, Validator] = {
    "temperror": one_of("defer", "accept"),
    "trusted_forwarders": networks,
    "ignore_clients": networks,
}
_FORWARDING_CHECKS: dict[str, Validator] = {
    "srs_domain": lambda value: (
        None
        if value == "" or _domain_name(value)
        else "must be a domain name (letters, digits, hyphens; RFC 1123 §2.1)"
    ),
}
_DMARC_CHECKS: dict[str, Validator] = {
    "report_interval": positive,
    "history_days": positive,
    "flush_interval": positive,
}
_MTA_STS_CHECKS: dict[str, Validator] = {
    "max_age": positive,
    "mode": one_of("none", "testing", "enforce"),
}
_POP3_CHECKS: dict[str, Validator] = {
    "timeout_authenticated": positive,
    "timeout_not_authenticated": positive,
}
_ABUSE_CHECKS: dict[str, Validator] = {
    "max_connections_per_ip": positive,
    "max_connection_rate_per_ip": positive,
    "max_unknown_recipients_per_ip": positive,
    "max_errors_per_ip": positive,
    "max_auth_failures_per_ip": positive,
    "window": positive,
    "ban_seconds": positive,
    "exempt": networks,
    "max_messages_per_hour_per_account": positive,
    "max_recipients_per_hour_per_account": positive,
}


class ConfigInvalid(ConfigError):
    """A configuration file with one or more problems; ``errors`` lists them all, each
    with file and line. The exception's own message is the first one."""

    def __init__(self, errors: tuple[ConfigError, ...]) -> None:
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line)
        self.errors = errors


def load(path: Path) -> Config:
    """Read and validate the configuration file at ``path``.

    Raises ``ConfigInvalid`` (a ``ConfigError``) listing every problem found, each
    located by file and line; a file that cannot be read raises ``ConfigError``.
    Relative paths in the file are taken relative to the file's directory.
    """
    config, errors = _parse(path)
    if errors:
        raise ConfigInvalid(errors)
    if config is None:
        raise ConfigError("invalid configuration", file=str(path))
    return config


def check(path: Path) -> tuple[Config | None, tuple[ConfigError, ...]]:
    """Everything ``load`` checks, plus that the TLS certificate and key files named by
    the configuration exist and are readable. Returns the configuration (None when it
    could not be built) and every problem found, in file order."""
    config, errors = _parse(path)
    if config is None:
        return None, errors
    text = path.read_text(encoding="utf-8", errors="replace")
    reader = Reader(str(path), LineIndex.scan(text))
    if not config.tls.generate_self_signed:
        cert_ok = _check_readable(reader, ("tls", "cert_file"), config.tls.cert_file)
        key_ok = _check_readable(reader, ("tls", "key_file"), config.tls.key_file)
        if cert_ok and key_ok:
            _check_key_pair(reader, config.tls.cert_file, config.tls.key_file)
    if config.run_as is not None:
        _check_user(reader, config.run_as)
    found = errors + tuple(reader.errors)
    return config, tuple(sorted(found, key=lambda e: e.line or 0))


def resolve_config(config_path: Path | None, data_dir: Path | None) -> Config:
    """The configuration the CLI and ``serve`` use: the file at ``config_path`` when
    given, else the embedded default in ``data_dir`` (default ``postel-data``).

    Raises ``ConfigError`` when both are given or the file is invalid.
    """
    if config_path is not None and data_dir is not None:
        raise ConfigError("give either --config or --data, not both")
    if config_path is not None:
        return load(config_path)
    return Config.embedded_default(data_dir or DEFAULT_DATA_DIR)


def _check_readable(reader: Reader, key: KeyPath, file: Path) -> bool:
    if not file.exists():
        reader.error(key, f"{file} does not exist")
    elif not file.is_file():
        reader.error(key, f"{file} is not a regular file")
    elif not os.access(file, os.R_OK):
        reader.error(key, f"{file} is not readable by this user")
    else:
        return True
    return False


def _check_key_pair(reader: Reader, cert_file: Path, key_file: Path) -> None:
    """The certificate chain's first certificate and the private key parse as PEM and
    belong together (what the TLS listeners will load). Spec: RFC 7468 (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except ValueError:
        reader.error(("tls", "cert_file"), f"{cert_file} holds no PEM certificate")
        return
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, TypeError):
        reader.error(("tls", "key_file"), f"{key_file} holds no unencrypted PEM private key")
        return
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, public)
    theirs = certs[0].public_key().public_bytes(serialization.Encoding.DER, public)
    if ours != theirs:
        reader.error(("tls", "key_file"), f"{key_file} is not the key of {cert_file}")


def _check_user(reader: Reader, user: str) -> None:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        reader.error(("run_as",), f"no user {user!r} on this machine")


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > CONFIG_FILE_MAX:
            raise ConfigError(
                f"file is larger than {CONFIG_FILE_MAX} octets", file=str(path), line=None
            )
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None


def _parse(path: Path) -> tuple[Config | None, tuple[ConfigError, ...]]:
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        line = int(position.group("line")) if position else None
        message = _TOML_POSITION.sub("", message)
        return None, (ConfigError(f"TOML syntax: {message}", file=str(path), line=line),)
    reader = Reader(str(path), LineIndex.scan(text))
    config = _build(reader, data, path.absolute().parent)
    config = _with_source(config, path)
    return config, tuple(reader.errors)


def _with_source(config: Config | None, path: Path) -> Config | None:
    if config is None:
        return None
    return dataclasses.replace(config, source=path.absolute())


def _build(reader: Reader, data: Mapping[str, object], base: Path) -> Config | None:
    reader.check_keys(data, (), _TOP_KEYS)
    hostname = _hostname(reader, data)
    data_dir = _path(reader, data, ("data_dir",), base)
    if data_dir is None and "data_dir" not in data:
        reader.error((), "data_dir is required (the directory for the database and messages)")
    database_url = _database_url(reader, data, data_dir)
    admin_address = _admin_address(reader, data)
    run_as = reader.typed(data, ("run_as",), str)
    listen = read_listen(reader, reader.table(data, ("listen",)))
    tls = _tls(reader, data, base, data_dir)
    smtp = reader.section(data, ("smtp",), SmtpLimits, _SMTP_CHECKS)
    if not smtp.main_serves and smtp.processes < 2:
        reader.error(
            ("smtp", "main_serves"),
            "false needs processes = 2 or more (no process would serve port 25)",
        )
    imap = reader.section(data, ("imap",), ImapLimits, _IMAP_CHECKS)
    auth = reader.section(data, ("auth",), AuthConfig, _AUTH_CHECKS)
    pop3 = reader.section(data, ("pop3",), Pop3Limits, _POP3_CHECKS)
    dns = reader.section(
        data,
        ("dns",),
        DnsConfig,
        {
            "temperror_cache": lambda value: (
                None
                if 0 <= value <= 300
                else "must be 0 to 300 seconds (RFC 2308 §7.1: at most five minutes)"
            )
        },
    )
    delivery = reader.section(data, ("delivery",), DeliveryConfig, _DELIVERY_CHECKS)
    mta_sts = reader.section(data, ("mta_sts",), MtaStsConfig, _MTA_STS_CHECKS)
    submission = reader.section(data, ("submission",), SubmissionConfig, {})
    quota = reader.section(data, ("quota",), QuotaConfig, _QUOTA_CHECKS)
    authentication = reader.section(
        data, ("authentication",), AuthenticationConfig, _AUTHENTICATION_CHECKS
    )
    forwarding = reader.section(data, ("forwarding",), ForwardingConfig, _FORWARDING_CHECKS)
    abuse = reader.section(data, ("abuse",), AbuseConfig, _ABUSE_CHECKS)
    dmarc = reader.section(data, ("dmarc",), DmarcConfig, _DMARC_CHECKS)
    if hostname is None or data_dir is None or database_url is None or tls is None:
        return None
    return Config(
        hostname=hostname,
        data_dir=data_dir,
        database_url=database_url,
        listen=listen,
        tls=tls,
        smtp=smtp,
        imap=imap,
        pop3=pop3,
        dns=dns,
        delivery=delivery,
        mta_sts=mta_sts,
        submission=submission,
        quota=quota,
        authentication=authentication,
        dmarc=dmarc,
        forwarding=forwarding,
        auth=auth,
        abuse=abuse,
        admin_address=admin_address,
        run_as=run_as or None,
        embedded=False,
    )


def _domain_name(value: object) -> bool:
    """Host-name syntax, as the hostname is checked. Spec: RFC 1123 §2.1."""
    if not isinstance(value, str):
        return False
    labels = value.rstrip(".").split(".")
    return len(value) <= HOSTNAME_MAX and all(_LABEL.match(label) for label in labels)


def _hostname(reader: Reader, data: Mapping[str, object]) -> str | None:
    hostname = reader.typed(data, ("hostname",), str)
    if hostname is None:
        if "hostname" not in data:
            reader.error((), "hostname is required (the name this server greets with)")
        return None
    labels = hostname.rstrip(".").split(".")
    if len(hostname) > HOSTNAME_MAX or not all(_LABEL.match(label) for label in labels):
        reader.error(("hostname",), f'"{hostname}" is not a valid host name (RFC 1123 §2.1)')
        return None
    return hostname.rstrip(".").lower()


def _path(reader: Reader, table: Mapping[str, object], key: KeyPath, base: Path) -> Path | None:
    value = reader.typed(table, key, str)
    if value is None:
        return None
    if not value:
        reader.error(key, "must not be empty")
        return None
    return base / Path(value).expanduser()


def _database_url(reader: Reader, data: Mapping[str, object], data_dir: Path | None) -> str | None:
    url = reader.typed(data, ("database_url",), str)
    if url is None:
        if "database_url" in data or data_dir is None:
            return None
        return f"sqlite:///{data_dir / 'postel.sqlite3'}"
    if not url.startswith(_DATABASE_SCHEMES):
        schemes = ", ".join(_DATABASE_SCHEMES)
        reader.error(("database_url",), f"must start with one of {schemes}")
        return None
    return url


def _admin_address(reader: Reader, data: Mapping[str, object]) -> str | None:
    address = reader.typed(data, ("admin_address",), str)
    if address is None:
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        reader.error(("admin_address",), f'"{address}" is not an address (local@domain)')
        return None
    return address


def _tls(
    reader: Reader, data: Mapping[str, object], base: Path, data_dir: Path | None
) -> TlsConfig | None:
    table = reader.table(data, ("tls",))
    reader.check_keys(table, ("tls",), _TLS_KEYS)
    generate = reader.typed(table, ("tls", "generate_self_signed"), bool) or False
    cert = _path(reader, table, ("tls", "cert_file"), base)
    key = _path(reader, table, ("tls", "key_file"), base)
    if generate and data_dir is not None:
        cert = cert or data_dir / "tls" / "cert.pem"
        key = key or data_dir / "tls" / "key.pem"
    missing = [
        name
        for name, value in (("cert_file", cert), ("key_file", key))
        if value is None and name not in table
    ]
    if missing and "tls" not in data:
        reader.error(
            ("tls",),
            "missing: add a [tls] table with cert_file and key_file (PEM files), "
            "or with generate_self_signed = true for a self-signed pair in data_dir",
        )
    else:
        for name in missing:
            reader.error(
                ("tls", name),
                "required (a PEM file), unless generate_self_signed = true",
            )
    if cert is None or key is None:
        return None
    return TlsConfig(cert_file=cert, key_file=key, generate_self_signed=generate)
