"""Passwords: what is stored (argon2id hash + SCRAM-SHA-256 keys) and how it is checked.

The password itself is never stored. ``make_credentials`` derives both forms at once so
that every account can use PLAIN/LOGIN (checked against the argon2id hash) and
SCRAM-SHA-256 (checked against StoredKey/ServerKey) from the day it is created.

Spec: RFC 9106 (Argon2id), RFC 5802 §3 (SCRAM keys), RFC 7677 (SCRAM-SHA-256),
RFC 4013 (SASLprep).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from postel.sasl.saslprep import SaslprepError, saslprep
from postel.store.api import Credentials

SCRAM_ITERATIONS = 4096
"""PBKDF2 iteration count for new SCRAM keys: the minimum RFC 7677 §4 allows, which
every client computes on each login. Spec: RFC 7677 §4, RFC 5802 §5.1."""
SCRAM_SALT_LENGTH = 16
"""Random salt octets for SCRAM keys (local policy; RFC 5802 §5.1 sets no length)."""

PASSWORD_LENGTH_MIN = 8
"""Shortest password accepted when one is set. Spec: NIST SP 800-63B §5.1.1.2."""
PASSWORD_LENGTH_MAX = 1024
"""Longest password accepted (bounds hashing work per attempt; NIST SP 800-63B §5.1.1.2
asks for at least 64)."""

GENERATED_PASSWORD_LENGTH = 20
"""Characters in a generated password: 20 from the 56-symbol alphabet is about 116 bits."""
GENERATED_PASSWORD_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
"""Letters and digits without the easily confused 0 O o 1 l I."""


class PasswordRejected(ValueError):
    """A password that cannot be set: too short, too long, or prohibited characters."""


def check_new_password(password: str) -> str:
    """The SASLprep form of a password about to be set; raises PasswordRejected.
    Spec: RFC 4013 §2 (stored strings: unassigned code points prohibited)."""
    if len(password) < PASSWORD_LENGTH_MIN:
        raise PasswordRejected(f"password is shorter than {PASSWORD_LENGTH_MIN} characters")
    if len(password) > PASSWORD_LENGTH_MAX:
        raise PasswordRejected(f"password is longer than {PASSWORD_LENGTH_MAX} characters")
    try:
        return saslprep(password)
    except SaslprepError as exc:
        raise PasswordRejected(f"password contains a character not allowed: {exc}") from None


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """``(StoredKey, ServerKey)`` for SCRAM-SHA-256 from an already SASLprep'd password.

    SaltedPassword = Hi(password, salt, i) (PBKDF2-HMAC-SHA-256);
    ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey);
    ServerKey = HMAC(SaltedPassword, "Server Key").
    Spec: RFC 5802 §3, RFC 7677 §3.
    """
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return hashlib.sha256(client_key).digest(), server_key


def make_credentials(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> Credentials:
    """Everything stored for ``password``: an argon2id PHC string (argon2-cffi's
    RFC 9106 low-memory defaults) and SCRAM-SHA-256 StoredKey/ServerKey with a random
    salt (``salt`` only for tests).

    Raises PasswordRejected. Spec: RFC 9106 §4, RFC 5802 §3, RFC 7677.
    """
    prepared = check_new_password(password)
    scram_salt = salt if salt is not None else secrets.token_bytes(SCRAM_SALT_LENGTH)
    stored_key, server_key = scram_keys(prepared, scram_salt, iterations)
    return Credentials(
        password_hash=PasswordHasher().hash(prepared),
        scram_salt=scram_salt,
        scram_iterations=iterations,
        scram_stored_key=stored_key,
        scram_server_key=server_key,
    )


def verify_password(credentials: Credentials, password: str) -> bool:
    """True when ``password`` matches the stored argon2id hash.

    The comparison is constant-time (argon2's verify); hashes made with other argon2
    parameters still verify (see ``needs_rehash``). A password SASLprep refuses, or a
    damaged hash, is simply False. Spec: RFC 9106, RFC 4616 §2 (SASLprep on check).
    """
    if len(password) > PASSWORD_LENGTH_MAX:
        return False
    try:
        prepared = saslprep(password, allow_unassigned=True)
    except SaslprepError:
        return False
    try:
        return PasswordHasher().verify(credentials.password_hash, prepared)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(credentials: Credentials) -> bool:
    """True when the stored hash uses weaker parameters than current defaults; the
    caller may then store ``make_credentials(password)`` after a successful login."""
    try:
        return PasswordHasher().check_needs_rehash(credentials.password_hash)
    except InvalidHashError:
        return True


def generate_password() -> str:
    """A fresh random password: GENERATED_PASSWORD_LENGTH characters from an alphabet
    without ambiguous symbols, drawn with ``secrets``."""
    return "".join(
        secrets.choice(GENERATED_PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH)
    )
