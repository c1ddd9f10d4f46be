"""Full SCRAM-SHA-256 exchanges against an independent client (scramp), through the
base64 framing a driver uses. Spec: RFC 5802 §5, RFC 7677 §3, RFC 4954 §4."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from scramp import ScramClient, ScramException

from postel.directory.passwords import make_credentials
from postel.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    ScramCredentials,
    Step,
    Success,
    decode_response,
    encode_challenge,
    random_nonce,
    start,
)

from .conftest import FAKE_SECRET


def _stored(password: str) -> ScramCredentials:
    credentials = make_credentials(password)
    return ScramCredentials(
        credentials.scram_salt,
        credentials.scram_iterations,
        credentials.scram_stored_key,
        credentials.scram_server_key,
    )


ACCOUNTS = {
    "user@example.org": _stored("correct horse"),
    "jörg@bücher.example": _stored("Pässwörd\u00a0mit Umlaut"),
    "odd,name=x": _stored("comma and equals"),
}


@dataclass
class Transcript:
    """What the client saw: the decoded server challenges, and the outcome."""

    challenges: list[bytes]
    outcome: Step


def _wire(data: str) -> bytes:
    """What a client line carries: base64 of the message, decoded again by the driver."""
    decoded = decode_response(encode_challenge(data.encode()))
    assert isinstance(decoded, bytes)
    return decoded


def _exchange(client: ScramClient, *, initial_response: bool = True) -> Transcript:
    mech = start("SCRAM-SHA-256", nonce_source=random_nonce, fake_salt_secret=FAKE_SECRET)
    challenges: list[bytes] = []
    if not initial_response:
        step = mech.step(None)
        assert step == Challenge(b"")
    step = mech.step(_wire(client.get_client_first()))
    assert isinstance(step, NeedCredentials)
    step = mech.provide_credentials(ACCOUNTS.get(step.authcid))
    assert isinstance(step, Challenge)
    challenges.append(step.data)
    client.set_server_first(step.data.decode())
    outcome = mech.step(_wire(client.get_client_final()))
    assert mech.done
    return Transcript(challenges, outcome)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("user@example.org", "correct horse"),
        ("jörg@bücher.example", "Pässwörd mit Umlaut"),
        ("odd,name=x", "comma and equals"),
    ],
)
@pytest.mark.parametrize("initial_response", [True, False])
def test_success(username: str, password: str, initial_response: bool) -> None:
    client = ScramClient(["SCRAM-SHA-256"], username, password)
    transcript = _exchange(client, initial_response=initial_response)
    outcome = transcript.outcome
    assert isinstance(outcome, Success)
    assert outcome.authcid == username
    assert outcome.authzid == ""
    assert outcome.server_final is not None
    client.set_server_final(outcome.server_final.decode())  # raises on a bad v=


def test_wrong_password() -> None:
    client = ScramClient(["SCRAM-SHA-256"], "user@example.org", "wrong horse")
    assert _exchange(client).outcome == Failure("authentication failed")


def test_server_signature_checked_by_client() -> None:
    """A server without the right ServerKey cannot fool the client (RFC 5802 §9)."""
    client = ScramClient(["SCRAM-SHA-256"], "user@example.org", "correct horse")
    outcome = _exchange(client).outcome
    assert isinstance(outcome, Success) and outcome.server_final is not None
    with pytest.raises(ScramException):
        client.set_server_final("v=" + "A" * 43 + "=")


def _shape(challenge: bytes) -> list[tuple[str, int]]:
    """Attribute names and value lengths of a server-first-message."""
    return [(part[:1].decode(), len(part)) for part in challenge.split(b",")]


def test_unknown_user_looks_like_wrong_password() -> None:
    wrong = _exchange(ScramClient(["SCRAM-SHA-256"], "user@example.org", "wrong horse"))
    unknown = _exchange(ScramClient(["SCRAM-SHA-256"], "nobody@example.org", "wrong horse"))
    assert _shape(unknown.challenges[0]) == _shape(wrong.challenges[0])
    assert unknown.challenges[0].endswith(b",i=4096")
    assert unknown.outcome == wrong.outcome == Failure("authentication failed")


def test_unknown_user_salt_is_stable() -> None:
    first = _exchange(ScramClient(["SCRAM-SHA-256"], "nobody@example.org", "x"))
    second = _exchange(ScramClient(["SCRAM-SHA-256"], "nobody@example.org", "y"))
    salt = [t.challenges[0].split(b",")[1] for t in (first, second)]
    assert salt[0] == salt[1]
