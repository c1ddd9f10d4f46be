"""Which mechanisms the server offers, and starting one by name.

Spec: RFC 4422 §3.1 (mechanism names), §3.2 (advertising); RFC 4954 §4, RFC 9051
§6.2.2, RFC 5034 §4 (AUTH / AUTHENTICATE).
"""

from __future__ import annotations

from collections.abc import Callable

from postel.sasl.login import Login
from postel.sasl.mechanism import ServerMechanism
from postel.sasl.plain import Plain
from postel.sasl.scram import SCRAM_ITERATIONS_MIN, ScramSha256
from postel.sasl.steps import UnsupportedMechanism

MECHANISMS: tuple[str, ...] = (ScramSha256.name, Plain.name, Login.name)
"""Supported mechanism names, in the order to advertise them (strongest first)."""

MECHANISM_NAME_MAX = 20
"""Longest SASL mechanism name. Spec: RFC 4422 §3.1."""

_PASSWORD_MECHANISMS = frozenset(name for name in MECHANISMS if name in (Plain.name, Login.name))


def mechanisms_for(*, tls: bool) -> tuple[str, ...]:
    """The names to advertise on a connection: all of MECHANISMS under TLS, without the
    ones that send the password in the clear otherwise.
    Spec: RFC 4616 §6, RFC 4954 §4, RFC 9051 §6.2.2 (LOGINDISABLED)."""
    if tls:
        return MECHANISMS
    return tuple(name for name in MECHANISMS if name not in _PASSWORD_MECHANISMS)


def start(
    name: str,
    *,
    nonce_source: Callable[[], str],
    fake_salt_secret: bytes,
    fake_iterations: int = SCRAM_ITERATIONS_MIN,
) -> ServerMechanism:
    """A fresh server mechanism for ``name`` (case-insensitive). ``nonce_source`` and
    ``fake_salt_secret``/``fake_iterations`` are used by SCRAM-SHA-256 (see
    ``ScramSha256``); pass ``scram.random_nonce`` outside tests.

    Raises UnsupportedMechanism for a name not in MECHANISMS, ValueError for a
    ``fake_salt_secret`` shorter than 16 octets. Spec: RFC 4422 §3.1, §3.3.
    """
    upper = name.upper() if len(name) <= MECHANISM_NAME_MAX else ""
    if upper == Plain.name:
        return Plain()
    if upper == Login.name:
        return Login()
    if upper == ScramSha256.name:
        return ScramSha256(
            nonce_source=nonce_source,
            fake_salt_secret=fake_salt_secret,
            fake_iterations=fake_iterations,
        )
    raise UnsupportedMechanism(f"unsupported SASL mechanism {name[:MECHANISM_NAME_MAX]!r}")
