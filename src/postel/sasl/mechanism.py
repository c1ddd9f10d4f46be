"""The server mechanism interface and what every mechanism checks the same way.

Spec: RFC 4422 §3 (exchange), §3.4.1 (authorization identity), §5 (profile);
RFC 4616 §2 (identity lengths).
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from typing import ClassVar

from postel.sasl.steps import (
    Failure,
    SaslStateError,
    ScramCredentials,
    Step,
    Success,
    VerifyPassword,
)

AUTHCID_MAX = 255
"""Longest authentication identity, in UTF-8 octets: what RFC 4616 §2 requires servers to
accept, and room for any address (RFC 5321 §4.5.3.1.3: 254 octets).
Spec: RFC 4616 §2."""
AUTHZID_MAX = AUTHCID_MAX
"""Longest authorization identity, in UTF-8 octets. Spec: RFC 4616 §2."""
PASSWORD_MAX = 4096
"""Longest password, in UTF-8 octets: the directory's 1024 characters at up to four
octets each (RFC 3629 §3); RFC 4616 §2 asks for at least 255."""

AUTHZ_REFUSED = "authorization identity not permitted"
"""Failure reason when authzid names someone else. Spec: RFC 4422 §3.4.1."""
AUTH_FAILED = "authentication failed"
"""Failure reason for a wrong password or proof, and for an unknown account."""


def decode_text(data: bytes) -> str | None:
    """``data`` as UTF-8 text, or None when it is not well-formed UTF-8.
    Spec: RFC 3629 §4, RFC 4422 §3.4 (identities are UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def identity_problem(identity: str, limit: int) -> str | None:
    """Why ``identity`` is not acceptable as an authcid/authzid, or None when it is:
    empty, longer than ``limit`` UTF-8 octets, or containing control characters (NUL
    included). Spec: RFC 4616 §2, RFC 4013 §2.3 (control characters prohibited)."""
    if not identity:
        return "empty identity"
    if len(identity.encode("utf-8")) > limit:
        return f"identity longer than {limit} octets"
    if any(unicodedata.category(char) == "Cc" for char in identity):
        return "control character in identity"
    return None


def authorization_problem(authcid: str, authzid: str) -> str | None:
    """None when ``authzid`` is empty or equal to ``authcid``; otherwise a reason:
    proxy authorization is not offered. Spec: RFC 4422 §3.4.1, RFC 4616 §2."""
    if authzid == "" or authzid == authcid:
        return None
    return AUTHZ_REFUSED


class ServerMechanism(ABC):
    """One server side of one authentication exchange (sans-IO).

    Call ``step(None)`` when the client sent no initial response, else ``step(data)``
    with each decoded response; act on the returned Step (see ``postel.sasl.steps``).
    ``done`` is True once Success or Failure has been returned. Methods called in a
    state that does not allow them raise SaslStateError; bad client input never raises.
    Spec: RFC 4422 §3, §5.
    """

    __slots__ = ()

    name: ClassVar[str]
    """The registered mechanism name, upper case. Spec: RFC 4422 §3.1."""
    sends_password: ClassVar[bool]
    """True when the client sends the password itself: offer only over TLS.
    Spec: RFC 4616 §6, RFC 4954 §4."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once the outcome (Success or Failure) has been returned."""

    @abstractmethod
    def step(self, response: bytes | None) -> Step:
        """The next Step for the client's decoded ``response`` (None: no initial
        response). Raises SaslStateError only for a call out of turn. Spec: RFC 4422 §3."""

    def provide_credentials(self, credentials: ScramCredentials | None) -> Step:
        """Answer a NeedCredentials step. Raises SaslStateError for mechanisms or states
        that did not ask. Spec: RFC 5802 §5."""
        raise SaslStateError(f"{self.name}: no credentials were asked for")

    def password_result(self, ok: bool) -> Step:
        """Answer a VerifyPassword step. Raises SaslStateError for mechanisms or states
        that did not ask. Spec: RFC 4616 §2."""
        raise SaslStateError(f"{self.name}: no password check was asked for")


class PasswordMechanism(ServerMechanism):
    """Shared end of PLAIN and LOGIN: the driver checks the password and reports.
    Spec: RFC 4616 §2, draft-murchison-sasl-login §2."""

    __slots__ = ("_asked", "_done", "_started")

    sends_password = True

    def __init__(self) -> None:
        self._started = False
        self._asked: VerifyPassword | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _check_turn(self, response: bytes | None) -> Failure | None:
        """Raise when the exchange is over or waits for password_result; a Failure
        when ``response`` is None after the first step."""
        if self._done or self._asked is not None:
            raise SaslStateError(f"{self.name}: step() called out of turn")
        first = not self._started
        self._started = True
        if response is None and not first:
            return self._fail("response expected")
        return None

    def _fail(self, reason: str) -> Failure:
        self._done = True
        return Failure(reason)

    def _verify(self, authcid: str, authzid: str, password: str) -> Step:
        """VerifyPassword after the checks every password mechanism makes."""
        problem = (
            identity_problem(authcid, AUTHCID_MAX)
            or (identity_problem(authzid, AUTHZID_MAX) if authzid else None)
            or authorization_problem(authcid, authzid)
        )
        if problem is not None:
            return self._fail(problem)
        if not password or len(password.encode("utf-8")) > PASSWORD_MAX or "\x00" in password:
            return self._fail("unusable password")
        self._asked = VerifyPassword(authcid, authzid, password)
        return self._asked

    def password_result(self, ok: bool) -> Step:
        asked = self._asked
        if asked is None or self._done:
            raise SaslStateError(f"{self.name}: no password check was asked for")
        self._done = True
        if not ok:
            return Failure(AUTH_FAILED)
        return Success(asked.authcid, asked.authzid)
