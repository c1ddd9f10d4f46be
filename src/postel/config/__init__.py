"""Configuration: TOML to frozen dataclasses, errors located by file and line."""

from postel.config.load import ConfigInvalid, check, load, resolve_config
from postel.config.model import (
    EMBEDDED_PORTS,
    PRODUCTION_PORTS,
    AbuseConfig,
    AuthConfig,
    BareLineEndings,
    Config,
    DeliveryConfig,
    DnsConfig,
    ImapLimits,
    Listen,
    Pop3Limits,
    Service,
    SmtpLimits,
    TlsConfig,
)

__all__ = [
    "EMBEDDED_PORTS",
    "PRODUCTION_PORTS",
    "AbuseConfig",
    "AuthConfig",
    "BareLineEndings",
    "Config",
    "ConfigInvalid",
    "DeliveryConfig",
    "DnsConfig",
    "ImapLimits",
    "Listen",
    "Pop3Limits",
    "Service",
    "SmtpLimits",
    "TlsConfig",
    "check",
    "load",
    "resolve_config",
]
