"""SCRAM-SHA-256 server: the RFC 7677 §3 example and every refusal RFC 5802 asks for."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from postel.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslStateError,
    ScramCredentials,
    ScramSha256,
    Step,
    Success,
    random_nonce,
    start,
)

from .conftest import FAKE_SECRET, scram_credentials

# RFC 7677 §3
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC_CREDENTIALS = scram_credentials("pencil", RFC_SALT)

FULL_NONCE = "rOprNGfwEbeRWgbNEkqO" + RFC_SERVER_NONCE


def _scram() -> ScramSha256:
    mech = start(
        "SCRAM-SHA-256", nonce_source=lambda: RFC_SERVER_NONCE, fake_salt_secret=FAKE_SECRET
    )
    assert isinstance(mech, ScramSha256)
    return mech


def _client_final(
    password: str,
    client_first_bare: str,
    server_first: str,
    *,
    cbind: str = "biws",
    nonce: str = FULL_NONCE,
    extra: str = "",
) -> bytes:
    """A client-final-message computed the way RFC 5802 §3 says."""
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c={cbind},r={nonce}{extra}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def _to_final(
    client_first: bytes, credentials: ScramCredentials | None = RFC_CREDENTIALS
) -> ScramSha256:
    mech = _scram()
    assert isinstance(mech.step(client_first), NeedCredentials)
    assert isinstance(mech.provide_credentials(credentials), Challenge)
    return mech


def test_rfc7677_example() -> None:
    mech = _scram()
    assert mech.step(RFC_CLIENT_FIRST) == NeedCredentials("user", "")
    assert mech.provide_credentials(RFC_CREDENTIALS) == Challenge(RFC_SERVER_FIRST)
    assert mech.step(RFC_CLIENT_FINAL) == Success("user", "", RFC_SERVER_FINAL)
    assert mech.done


def test_rfc7677_example_without_initial_response() -> None:
    mech = _scram()
    assert mech.step(None) == Challenge(b"")
    assert mech.step(RFC_CLIENT_FIRST) == NeedCredentials("user", "")
    assert mech.provide_credentials(RFC_CREDENTIALS) == Challenge(RFC_SERVER_FIRST)
    assert mech.step(RFC_CLIENT_FINAL) == Success("user", "", RFC_SERVER_FINAL)


def test_gs2_flag_y_accepted() -> None:
    mech = _to_final(b"y,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    final = _client_final(
        "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", RFC_SERVER_FIRST.decode(), cbind="eSws"
    )
    step = mech.step(final)
    assert isinstance(step, Success)


def test_gs2_flag_y_with_n_cbind_refused() -> None:
    mech = _to_final(b"y,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert mech.step(RFC_CLIENT_FINAL) == Failure("channel binding data mismatch")


def test_channel_binding_requested_refused() -> None:
    mech = _scram()
    step = mech.step(b"p=tls-server-end-point,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert step == Failure("channel binding not supported")
    assert mech.done


def test_authzid_equal_to_user() -> None:
    mech = _scram()
    assert mech.step(b"n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO") == NeedCredentials("user", "user")
    assert mech.provide_credentials(RFC_CREDENTIALS) == Challenge(RFC_SERVER_FIRST)
    final = _client_final(
        "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", RFC_SERVER_FIRST.decode(), cbind="bixhPXVzZXIs"
    )
    assert mech.step(final) == Success("user", "user", mech_server_final(final))


def mech_server_final(final: bytes) -> bytes:
    """The v= a server with RFC_CREDENTIALS sends for ``final``."""
    without_proof = final[: final.rindex(b",p=")]
    auth_message = b"n=user,r=rOprNGfwEbeRWgbNEkqO," + RFC_SERVER_FIRST + b"," + without_proof
    return b"v=" + base64.b64encode(hmac.digest(RFC_CREDENTIALS.server_key, auth_message, "sha256"))


def test_other_authzid_refused() -> None:
    mech = _scram()
    step = mech.step(b"n,a=admin,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert step == Failure("authorization identity not permitted")


def test_saslname_escapes() -> None:
    mech = _scram()
    assert mech.step(b"n,,n=a=2Cb=3Dc,r=abc") == NeedCredentials("a,b=c", "")


@pytest.mark.parametrize(
    "client_first",
    [
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=user,r=abc",
        b"n,b=user,n=user,r=abc",
        b"n,,m=ext,n=user,r=abc",  # mandatory extension
        b"n,,n=user,r=abc,m=ext",
        b"n,,r=abc,n=user",  # out of order
        b"n,,n=user",
        b"n,,n=user,r=",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",  # bad escape
        b"n,,n=us=2cer,r=abc",  # escapes are upper case
        b"n,,n=user,r=a\x7fc",
        b"n,,n=user,r=abc,",
        b"n,,n=user,r=abc,1=x",
        b"n,,n=user,r=abc,xx=x",
        b"n,,n=user,r=" + b"a" * 257,
        b"n,,n=" + b"a" * 256 + b",r=abc",
        b"n,,n=us\x01er,r=abc",
        b"n,,n=us\x00er,r=abc",
        b"n,,n=\xff,r=abc",
        b"n,,n=user,r=abc," + b",".join([b"x=y"] * 17),
        b"n,,n=user,r=abc" + b"x" * 4096,
    ],
)
def test_malformed_client_first(client_first: bytes) -> None:
    mech = _scram()
    assert isinstance(mech.step(client_first), Failure)
    assert mech.done


def test_unknown_extension_ignored() -> None:
    mech = _scram()
    assert mech.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO,x=whatever") == NeedCredentials("user", "")


def test_wrong_cbind_refused() -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    final = RFC_CLIENT_FINAL.replace(b"c=biws", b"c=eSws")
    assert mech.step(final) == Failure("channel binding data mismatch")


def test_nonce_mismatch_refused() -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    final = _client_final(
        "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", RFC_SERVER_FIRST.decode(), nonce=FULL_NONCE + "x"
    )
    assert mech.step(final) == Failure("nonce mismatch")


def test_client_nonce_only_refused() -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    final = RFC_CLIENT_FINAL.replace(FULL_NONCE.encode(), b"rOprNGfwEbeRWgbNEkqO")
    assert mech.step(final) == Failure("nonce mismatch")


def test_wrong_proof_refused() -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    final = _client_final("pencils", "n=user,r=rOprNGfwEbeRWgbNEkqO", RFC_SERVER_FIRST.decode())
    assert mech.step(final) == Failure("authentication failed")
    assert mech.done


def test_tampered_proof_refused() -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    assert mech.step(RFC_CLIENT_FINAL.replace(b"p=dHzb", b"p=dHzc")) == Failure(
        "authentication failed"
    )


def test_extension_in_final_is_part_of_auth_message() -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    final = _client_final(
        "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", RFC_SERVER_FIRST.decode(), extra=",x=1"
    )
    assert isinstance(mech.step(final), Success)


@pytest.mark.parametrize(
    "client_final",
    [
        b"",
        b"c=biws",
        b"c=biws,r=" + FULL_NONCE.encode(),
        b"r=" + FULL_NONCE.encode() + b",c=biws,p=AAAA",
        b"c=biws,r=" + FULL_NONCE.encode() + b",m=x,p=AAAA",
        b"c=biws,r=" + FULL_NONCE.encode() + b",p=",
        b"c=biws,r=" + FULL_NONCE.encode() + b",p=AAAA",  # proof too short
        b"c=biws,r=" + FULL_NONCE.encode() + b",p=not base64!",
        b"c=biws,r=" + FULL_NONCE.encode() + b",p=" + b"A" * 44,  # bad padding
        RFC_CLIENT_FINAL + b",x=1",  # proof not last
        RFC_CLIENT_FINAL.replace(b"p=", "p=é".encode()),
        b"\xff",
    ],
)
def test_malformed_client_final(client_final: bytes) -> None:
    mech = _to_final(RFC_CLIENT_FIRST)
    assert isinstance(mech.step(client_final), Failure)
    assert mech.done


def test_missing_response_fails() -> None:
    mech = _scram()
    mech.step(None)
    assert mech.step(None) == Failure("response expected")
    mech = _to_final(RFC_CLIENT_FIRST)
    assert mech.step(None) == Failure("response expected")


def _server_first_fields(step: Step) -> dict[str, str]:
    assert isinstance(step, Challenge)
    return dict(part.split("=", 1) for part in step.data.decode().split(","))


def test_unknown_user_gets_stable_fake_challenge_then_fails() -> None:
    mech = _scram()
    mech.step(b"n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO")
    first = _server_first_fields(mech.provide_credentials(None))
    assert first["r"] == FULL_NONCE
    assert first["i"] == "4096"
    assert len(base64.b64decode(first["s"])) == 16
    again = _scram()
    again.step(b"n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO")
    assert _server_first_fields(again.provide_credentials(None))["s"] == first["s"]
    other = _scram()
    other.step(b"n,,n=somebody,r=rOprNGfwEbeRWgbNEkqO")
    assert _server_first_fields(other.provide_credentials(None))["s"] != first["s"]
    server_first = f"r={first['r']},s={first['s']},i={first['i']}"
    final = _client_final("pencil", "n=nobody,r=rOprNGfwEbeRWgbNEkqO", server_first)
    assert mech.step(final) == Failure("authentication failed")


def test_fake_salt_depends_on_secret() -> None:
    salts = []
    for secret in (FAKE_SECRET, b"another secret of 32 octets....."):
        mech = start("SCRAM-SHA-256", nonce_source=lambda: "n", fake_salt_secret=secret)
        mech.step(b"n,,n=nobody,r=abc")
        salts.append(_server_first_fields(mech.provide_credentials(None))["s"])
    assert salts[0] != salts[1]


@pytest.mark.parametrize(
    "credentials",
    [
        scram_credentials("pencil", RFC_SALT, 4095),
        ScramCredentials(
            RFC_SALT, 10_000_001, RFC_CREDENTIALS.stored_key, RFC_CREDENTIALS.server_key
        ),
        ScramCredentials(b"", 4096, RFC_CREDENTIALS.stored_key, RFC_CREDENTIALS.server_key),
        ScramCredentials(RFC_SALT, 4096, b"short", RFC_CREDENTIALS.server_key),
    ],
)
def test_unusable_stored_credentials_fail_like_unknown(credentials: ScramCredentials) -> None:
    mech = _scram()
    mech.step(RFC_CLIENT_FIRST)
    fields = _server_first_fields(mech.provide_credentials(credentials))
    assert fields["i"] == "4096"
    server_first = f"r={fields['r']},s={fields['s']},i={fields['i']}"
    final = _client_final("pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", server_first)
    assert mech.step(final) == Failure("stored SCRAM credentials unusable")


def test_out_of_turn_calls() -> None:
    mech = _scram()
    with pytest.raises(SaslStateError):
        mech.provide_credentials(RFC_CREDENTIALS)
    with pytest.raises(SaslStateError):
        mech.password_result(True)
    mech.step(RFC_CLIENT_FIRST)
    with pytest.raises(SaslStateError):
        mech.step(RFC_CLIENT_FINAL)
    mech.provide_credentials(RFC_CREDENTIALS)
    with pytest.raises(SaslStateError):
        mech.provide_credentials(RFC_CREDENTIALS)
    mech.step(RFC_CLIENT_FINAL)
    with pytest.raises(SaslStateError):
        mech.step(RFC_CLIENT_FINAL)


@pytest.mark.parametrize("nonce", ["", "a,b", "é", "a" * 257])
def test_invalid_nonce_source_is_a_local_error(nonce: str) -> None:
    mech = start("SCRAM-SHA-256", nonce_source=lambda: nonce, fake_salt_secret=FAKE_SECRET)
    mech.step(RFC_CLIENT_FIRST)
    with pytest.raises(SaslStateError):
        mech.provide_credentials(RFC_CREDENTIALS)


def test_constructor_bounds() -> None:
    with pytest.raises(ValueError):
        ScramSha256(nonce_source=random_nonce, fake_salt_secret=b"short")
    with pytest.raises(ValueError):
        ScramSha256(nonce_source=random_nonce, fake_salt_secret=FAKE_SECRET, fake_iterations=1)


def test_random_nonce() -> None:
    nonces = {random_nonce() for _ in range(10)}
    assert len(nonces) == 10
    assert all(len(n) == 24 and "," not in n for n in nonces)
