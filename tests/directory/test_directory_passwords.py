"""Passwords: argon2id hash, SCRAM-SHA-256 keys (RFC 7677 §3 example), generation."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from argon2 import PasswordHasher

from postel.directory import (
    PasswordRejected,
    generate_password,
    make_credentials,
    needs_rehash,
    saslprep,
    scram_keys,
    verify_password,
)
from postel.directory.passwords import GENERATED_PASSWORD_ALPHABET, GENERATED_PASSWORD_LENGTH
from postel.sasl.saslprep import SaslprepError

# RFC 7677 §3: user "user", password "pencil".
RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC7677_CLIENT_FIRST_BARE = b"n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL_NO_PROOF = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC7677_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC7677_SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
AUTH_MESSAGE = b",".join(
    [RFC7677_CLIENT_FIRST_BARE, RFC7677_SERVER_FIRST, RFC7677_CLIENT_FINAL_NO_PROOF]
)


def test_scram_keys_match_rfc7677_example() -> None:
    stored_key, server_key = scram_keys("pencil", RFC7677_SALT, 4096)
    # ServerSignature := HMAC(ServerKey, AuthMessage)  (RFC 5802 §3)
    assert hmac.digest(server_key, AUTH_MESSAGE, "sha256") == RFC7677_SERVER_SIGNATURE
    # The server verifies the proof: ClientKey = ClientProof XOR ClientSignature,
    # and H(ClientKey) must be StoredKey.
    client_signature = hmac.digest(stored_key, AUTH_MESSAGE, "sha256")
    client_key = bytes(a ^ b for a, b in zip(RFC7677_PROOF, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_make_credentials_scram_fields_are_consistent() -> None:
    credentials = make_credentials("pencil-pencil", salt=RFC7677_SALT)
    assert credentials.scram_iterations >= 4096
    assert credentials.scram_salt == RFC7677_SALT
    assert (credentials.scram_stored_key, credentials.scram_server_key) == scram_keys(
        "pencil-pencil", RFC7677_SALT, credentials.scram_iterations
    )
    assert credentials.password_hash.startswith("$argon2id$")
    assert len(make_credentials("pencil-pencil").scram_salt) == 16


def test_salts_are_random() -> None:
    a, b = make_credentials("correct horse"), make_credentials("correct horse")
    assert a.scram_salt != b.scram_salt
    assert a.scram_stored_key != b.scram_stored_key
    assert a.password_hash != b.password_hash


def test_verify_password() -> None:
    credentials = make_credentials("correct horse")
    assert verify_password(credentials, "correct horse")
    assert not verify_password(credentials, "correct horsE")
    assert not verify_password(credentials, "")
    assert not verify_password(credentials, "x" * 5000)
    assert not verify_password(credentials, "correct\x00horse")


def test_verify_tolerates_other_argon2_parameters() -> None:
    old = make_credentials("correct horse")
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse")
    credentials = type(old)(
        weaker,
        old.scram_salt,
        old.scram_iterations,
        old.scram_stored_key,
        old.scram_server_key,
    )
    assert verify_password(credentials, "correct horse")
    assert needs_rehash(credentials)
    assert not needs_rehash(old)


def test_damaged_hash_does_not_verify() -> None:
    old = make_credentials("correct horse")
    credentials = type(old)("not a hash", b"s", 4096, b"k", b"k")
    assert not verify_password(credentials, "correct horse")
    assert needs_rehash(credentials)


def test_non_ascii_password_is_saslprepped() -> None:
    # U+00A0 NO-BREAK SPACE maps to a space; U+00AD SOFT HYPHEN maps to nothing (RFC 4013 §2.1).
    credentials = make_credentials("pass\u00a0word\u00ad!")
    assert verify_password(credentials, "pass word!")
    stored_key, _ = scram_keys("pass word!", credentials.scram_salt, credentials.scram_iterations)
    assert credentials.scram_stored_key == stored_key


@pytest.mark.parametrize("password", ["short", "x" * 1025, "password\x07bell"])
def test_bad_passwords_are_rejected(password: str) -> None:
    with pytest.raises(PasswordRejected):
        make_credentials(password)


def test_saslprep_rfc4013_examples() -> None:
    # RFC 4013 §3.
    assert saslprep("I\u00adX") == "IX"
    assert saslprep("user") == "user"
    assert saslprep("USER") == "USER"
    assert saslprep("\u00aa") == "a"
    assert saslprep("\u2168") == "IX"
    with pytest.raises(SaslprepError):
        saslprep("\u0007")
    with pytest.raises(SaslprepError):
        saslprep("\u0627\u0031")  # bidi: must end with a RandALCat character


def test_generate_password() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == GENERATED_PASSWORD_LENGTH
        assert set(password) <= set(GENERATED_PASSWORD_ALPHABET)
    assert not set("0O1lI") & set(GENERATED_PASSWORD_ALPHABET)
