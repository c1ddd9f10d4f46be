"""PLAIN (RFC 4616 §2) and LOGIN (draft-murchison-sasl-login §2) server exchanges."""

from __future__ import annotations

import pytest

from postel.sasl import (
    Challenge,
    Failure,
    SaslStateError,
    ServerMechanism,
    Success,
    VerifyPassword,
    start,
)

from .conftest import FAKE_SECRET


def _start(name: str) -> ServerMechanism:
    return start(name, nonce_source=lambda: "servernonce", fake_salt_secret=FAKE_SECRET)


# --- PLAIN --------------------------------------------------------------------------


def test_plain_initial_response_without_authzid() -> None:
    mech = _start("PLAIN")
    assert mech.step(b"\x00tim\x00tanstaaftanstaaf") == VerifyPassword(
        "tim", "", "tanstaaftanstaaf"
    )
    assert not mech.done
    assert mech.password_result(True) == Success("tim", "", None)
    assert mech.done


def test_plain_authzid_equal_to_authcid() -> None:
    mech = _start("plain")
    step = mech.step(b"tim\x00tim\x00tanstaaftanstaaf")
    assert step == VerifyPassword("tim", "tim", "tanstaaftanstaaf")
    assert mech.password_result(True) == Success("tim", "tim", None)


def test_plain_other_authzid_refused() -> None:
    mech = _start("PLAIN")
    assert mech.step(b"Ursel\x00Kurt\x00xipj3plmq") == Failure(
        "authorization identity not permitted"
    )
    assert mech.done


def test_plain_without_initial_response_sends_empty_challenge() -> None:
    mech = _start("PLAIN")
    assert mech.step(None) == Challenge(b"")
    assert mech.step(b"\x00user@example.org\x00s3cret pass") == VerifyPassword(
        "user@example.org", "", "s3cret pass"
    )


def test_plain_utf8_identities() -> None:
    mech = _start("PLAIN")
    step = mech.step("\x00jörg@bücher.example\x00pässwörd".encode())
    assert step == VerifyPassword("jörg@bücher.example", "", "pässwörd")


def test_plain_wrong_password() -> None:
    mech = _start("PLAIN")
    mech.step(b"\x00tim\x00wrong")
    assert mech.password_result(False) == Failure("authentication failed")
    assert mech.done


@pytest.mark.parametrize(
    "message",
    [
        b"",  # empty initial response
        b"tim",  # no NUL
        b"\x00tim",  # one NUL
        b"\x00tim\x00pw\x00",  # three NULs
        b"\x00\x00\x00\x00",
        b"\x00\x00password",  # empty authcid
        b"\x00tim\x00",  # empty password
        b"\x00t\xffm\x00pw",  # bad UTF-8
        b"\x00tim\x00\xc3",  # truncated UTF-8
        b"\x00t\x07im\x00pw",  # control character
        b"\x00" + b"a" * 256 + b"\x00pw",  # authcid too long
        b"\x00tim\x00" + b"p" * 4097,  # password too long
    ],
)
def test_plain_malformed(message: bytes) -> None:
    mech = _start("PLAIN")
    assert isinstance(mech.step(message), Failure)
    assert mech.done


def test_plain_second_missing_response_fails() -> None:
    mech = _start("PLAIN")
    mech.step(None)
    assert mech.step(None) == Failure("response expected")


def test_plain_out_of_turn_calls() -> None:
    mech = _start("PLAIN")
    with pytest.raises(SaslStateError):
        mech.password_result(True)
    with pytest.raises(SaslStateError):
        mech.provide_credentials(None)
    mech.step(b"\x00tim\x00pw")
    with pytest.raises(SaslStateError):
        mech.step(b"\x00tim\x00pw")
    mech.password_result(True)
    with pytest.raises(SaslStateError):
        mech.step(b"")
    with pytest.raises(SaslStateError):
        mech.password_result(True)


def test_plain_sends_password() -> None:
    assert _start("PLAIN").sends_password
    assert _start("LOGIN").sends_password
    assert not _start("SCRAM-SHA-256").sends_password


# --- LOGIN --------------------------------------------------------------------------


def test_login_exchange() -> None:
    mech = _start("LOGIN")
    assert mech.step(None) == Challenge(b"Username:")
    assert mech.step(b"tim") == Challenge(b"Password:")
    assert mech.step(b"tanstaaftanstaaf") == VerifyPassword("tim", "", "tanstaaftanstaaf")
    assert mech.password_result(True) == Success("tim", "", None)


def test_login_initial_response_is_the_user_name() -> None:
    mech = _start("login")
    assert mech.step(b"tim") == Challenge(b"Password:")
    assert mech.step(b"pw") == VerifyPassword("tim", "", "pw")
    assert mech.password_result(False) == Failure("authentication failed")


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (b"", b"pw"),
        (b"t\xffm", b"pw"),
        (b"a" * 256, b"pw"),
        (b"t\x00m", b"pw"),
        (b"tim", b""),
        (b"tim", b"p\x00w"),
        (b"tim", b"\xff"),
        (b"tim", b"p" * 4097),
    ],
)
def test_login_malformed(username: bytes, password: bytes) -> None:
    mech = _start("LOGIN")
    mech.step(None)
    step = mech.step(username)
    if isinstance(step, Challenge):
        step = mech.step(password)
    assert isinstance(step, Failure)
    assert mech.done


def test_login_missing_response() -> None:
    mech = _start("LOGIN")
    mech.step(None)
    assert isinstance(mech.step(None), Failure)
