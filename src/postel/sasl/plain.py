"""The PLAIN mechanism, server side: ``[authzid] NUL authcid NUL passwd`` in one response.

Spec: RFC 4616 §2.
"""

from __future__ import annotations

from postel.sasl.mechanism import PasswordMechanism, decode_text
from postel.sasl.steps import Challenge, Step

PLAIN_MESSAGE_MAX = 255 + 1 + 255 + 1 + 4096
"""Longest PLAIN message, in octets: authzid and authcid of 255 octets (RFC 4616 §2) and a
4096-octet password (mechanism.PASSWORD_MAX), with their two NULs. Spec: RFC 4616 §2."""


class Plain(PasswordMechanism):
    """PLAIN: the client sends authzid, authcid and password at once; an exchange
    without an initial response begins with an empty challenge.
    Spec: RFC 4616 §2, RFC 4422 §3.3."""

    __slots__ = ()

    name = "PLAIN"

    def step(self, response: bytes | None) -> Step:
        """Challenge(b"") for no initial response; VerifyPassword for a well-formed
        message; Failure otherwise (wrong NUL count, empty authcid or password,
        bad UTF-8, too long, authzid naming someone else). Spec: RFC 4616 §2."""
        failure = self._check_turn(response)
        if failure is not None:
            return failure
        if response is None:
            return Challenge(b"")
        if len(response) > PLAIN_MESSAGE_MAX:
            return self._fail("PLAIN message too long")
        fields = response.split(b"\x00")
        if len(fields) != 3:
            return self._fail("PLAIN message needs exactly two NULs")
        texts = [decode_text(field) for field in fields]
        authzid, authcid, password = texts
        if authzid is None or authcid is None or password is None:
            return self._fail("PLAIN message is not UTF-8")
        return self._verify(authcid, authzid, password)
