"""TLS for every listener: server contexts and the embedded default's self-signed pair.

Contexts follow Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only, forward-secret
AEAD ciphers for TLS 1.2, no compression, no renegotiation.

Spec: RFC 8314 §3 (implicit TLS), RFC 3207 (STARTTLS), RFC 7525 (BCP 195).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from postel.errors import ConfigError

log = logging.getLogger(__name__)

INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
"""TLS 1.2 cipher list of Mozilla's intermediate profile (version 5.7)."""

SELF_SIGNED_DAYS = 825
"""Validity of the generated self-signed certificate (days)."""


def ensure_self_signed(cert_file: Path, key_file: Path, hostname: str) -> bool:
    """Create a self-signed ECDSA P-256 certificate for ``hostname`` (and localhost,
    127.0.0.1, ::1) when neither file exists. Returns True if it created them, False
    if both exist.

    The key file is written with mode 0600. Raises ConfigError when only one of the two
    exists: an existing certificate or key (perhaps a real one) is never overwritten.
    """
    cert_there, key_there = cert_file.exists(), key_file.exists()
    if cert_there and key_there:
        return False
    if cert_there or key_there:
        present, missing = (cert_file, key_file) if cert_there else (key_file, cert_file)
        raise ConfigError(
            f"tls.generate_self_signed: {present} exists but {missing} does not; a "
            "self-signed pair is only made when neither exists (restore the missing "
            "file, or remove both to have a new pair made)"
        )
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname != "localhost":
        alt_names.append(x509.DNSName("localhost"))
    alt_names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("tls.self_signed.created", extra={"cert": str(cert_file)})
    return True


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server SSLContext with the intermediate profile.

    Raises:
        ConfigError: naming the file and the config key when it cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if hasattr(ssl, "OP_NO_RENEGOTIATION"):
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    for path, key in ((cert_file, "tls.cert_file"), (key_file, "tls.key_file")):
        if not os.access(path, os.R_OK):
            raise ConfigError(f"cannot read {path} (set {key} in the config)")
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"cannot load certificate {cert_file} with key {key_file}: {exc} "
            "(check tls.cert_file and tls.key_file)"
        ) from exc
    return ctx


def describe(obj: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """``'TLSv1.3 TLS_AES_256_GCM_SHA384'`` for a Received: field, or None."""
    if obj is None:
        return None
    cipher = obj.cipher()
    version = obj.version()
    if cipher is None or version is None:
        return None
    return f"{version} {cipher[0]}"
