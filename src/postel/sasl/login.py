"""The LOGIN mechanism, server side: challenges ``Username:`` then ``Password:``.

Obsolete but still used by many clients; offered only where PLAIN is (over TLS).

Spec: draft-murchison-sasl-login-00 §2.
"""

from __future__ import annotations

from postel.sasl.mechanism import AUTHCID_MAX, PASSWORD_MAX, PasswordMechanism, decode_text
from postel.sasl.steps import Challenge, Step

USERNAME_CHALLENGE = b"Username:"
"""First server challenge. Spec: draft-murchison-sasl-login-00 §2."""
PASSWORD_CHALLENGE = b"Password:"
"""Second server challenge. Spec: draft-murchison-sasl-login-00 §2."""


class Login(PasswordMechanism):
    """LOGIN: user name, then password, each in answer to a fixed challenge. An initial
    response, when sent, is the user name. There is no authzid.
    Spec: draft-murchison-sasl-login-00 §2."""

    __slots__ = ("_username",)

    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._username: str | None = None

    def step(self, response: bytes | None) -> Step:
        """Challenge(b"Username:") for no initial response, Challenge(b"Password:") after
        the user name, VerifyPassword after the password; Failure for an empty, too long
        or non-UTF-8 value. Spec: draft-murchison-sasl-login-00 §2."""
        failure = self._check_turn(response)
        if failure is not None:
            return failure
        if response is None:
            return Challenge(USERNAME_CHALLENGE)
        if self._username is None:
            if len(response) > AUTHCID_MAX:
                return self._fail("LOGIN user name too long")
            username = decode_text(response)
            if not username:
                return self._fail("LOGIN user name empty or not UTF-8")
            self._username = username
            return Challenge(PASSWORD_CHALLENGE)
        if len(response) > PASSWORD_MAX:
            return self._fail("LOGIN password too long")
        password = decode_text(response)
        if password is None:
            return self._fail("LOGIN password is not UTF-8")
        return self._verify(self._username, "", password)
