"""Configuration: TOML to frozen dataclasses, errors located by file and line."""

from postel.config.model import (
    EMBEDDED_PORTS,
    PRODUCTION_PORTS,
    AbuseConfig,
    BareLineEndings,
    Config,
    Listen,
    Service,
    SmtpLimits,
    TlsConfig,
)

__all__ = [
    "EMBEDDED_PORTS",
    "PRODUCTION_PORTS",
    "AbuseConfig",
    "BareLineEndings",
    "Config",
    "Listen",
    "Service",
    "SmtpLimits",
    "TlsConfig",
]
