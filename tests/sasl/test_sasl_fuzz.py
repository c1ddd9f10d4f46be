"""Hypothesis: arbitrary client bytes into every step of every mechanism give only Step
values; the only exceptions are the documented out-of-turn SaslStateError."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from postel.sasl import (
    MECHANISMS,
    Challenge,
    Failure,
    NeedCredentials,
    Step,
    Success,
    VerifyPassword,
    start,
)

from .conftest import FAKE_SECRET, scram_credentials

CREDENTIALS = scram_credentials("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))

SCRAM_PIECES = [
    b"n,,",
    b"y,,",
    b"p=tls-unique,,",
    b"n,a=user,",
    b"n=user",
    b"r=rOprNGfwEbeRWgbNEkqO",
    b"c=biws",
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    b"m=x",
    b",",
    b"=",
    b"=2C",
    b"\x00",
    b"\xff",
]

responses = st.one_of(
    st.none(),
    st.binary(max_size=600),
    st.lists(st.sampled_from(SCRAM_PIECES), max_size=12).map(b"".join),
)


@given(
    name=st.sampled_from(MECHANISMS),
    inputs=st.lists(responses, min_size=1, max_size=5),
    known=st.booleans(),
    ok=st.booleans(),
)
def test_arbitrary_responses_give_steps(
    name: str, inputs: list[bytes | None], known: bool, ok: bool
) -> None:
    mech = start(name, nonce_source=lambda: "srv", fake_salt_secret=FAKE_SECRET)
    for response in inputs:
        if mech.done:
            break
        step: Step = mech.step(response)
        if isinstance(step, NeedCredentials):
            step = mech.provide_credentials(CREDENTIALS if known else None)
        elif isinstance(step, VerifyPassword):
            step = mech.password_result(ok)
        assert isinstance(step, Challenge | Success | Failure)
        assert mech.done == isinstance(step, Success | Failure)
