"""Values a server mechanism hands to its driver, and the errors of the package.

A driver feeds each decoded client response to ``ServerMechanism.step`` and acts on the
``Step`` it gets back:

* ``Challenge``: encode ``data`` (``encode_challenge``) and send it; pass the next
  response to ``step``.
* ``NeedCredentials`` (SCRAM): look the account up and call
  ``provide_credentials(ScramCredentials | None)``, which returns the next step.
* ``VerifyPassword`` (PLAIN, LOGIN): check the password against the stored hash and call
  ``password_result(ok)``, which returns the next step.
* ``Success`` / ``Failure``: the exchange is over.

Spec: RFC 4422 §3 (the authentication exchange), §5 (mechanism profile).
"""

from __future__ import annotations

from dataclasses import dataclass

from postel.errors import LocalProtocolError, ProtocolError


class SaslError(ProtocolError):
    """A SASL framing error: a response that is not valid base64 or too long.

    Drivers answer it as a syntax error (IMAP ``BAD``, SMTP 501 5.5.2 or, for a line
    over SASL_LINE_MAX, 500 5.5.6; POP3 ``-ERR``).
    Spec: RFC 4954 §4, RFC 4959 §3, RFC 5034 §4.
    """


class UnsupportedMechanism(SaslError):
    """The client asked for a mechanism this server does not offer (SMTP 504 5.5.4,
    IMAP ``NO``, POP3 ``-ERR``). Spec: RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4."""


class SaslStateError(LocalProtocolError):
    """The driver called a mechanism method the exchange's state does not allow (for
    example ``step`` while credentials are awaited, or anything after the outcome).
    Spec: RFC 4422 §3."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The client sent ``*``: it cancels the exchange. Spec: RFC 4422 §3.5, RFC 4954 §4."""


CANCELLED = Cancelled()
"""The one Cancelled value."""


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What the store keeps for SCRAM-SHA-256: salt, iteration count, StoredKey and
    ServerKey (32 octets each). Spec: RFC 5802 §3, RFC 7677 §3."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True, slots=True)
class Step:
    """Base of every value ``ServerMechanism`` returns. Spec: RFC 4422 §3."""


@dataclass(frozen=True, slots=True)
class Challenge(Step):
    """Send ``data`` (raw octets, not yet base64) to the client and wait for its
    response. Spec: RFC 4422 §3.3."""

    data: bytes


@dataclass(frozen=True, slots=True)
class NeedCredentials(Step):
    """Look up the SCRAM credentials of ``authcid`` (UTF-8 text, as the client named it)
    and call ``provide_credentials`` with them, or with None for an unknown account.
    ``authzid`` is "" when the client sent none. Spec: RFC 5802 §5."""

    authcid: str
    authzid: str


@dataclass(frozen=True, slots=True)
class VerifyPassword(Step):
    """Check ``password`` of ``authcid`` against the stored hash (SASLprep is applied by
    the check) and call ``password_result``. ``authzid`` is "" when the client sent none.
    Spec: RFC 4616 §2, draft-murchison-sasl-login §2."""

    authcid: str
    authzid: str
    password: str


@dataclass(frozen=True, slots=True)
class Success(Step):
    """The client is authenticated as ``authcid``. ``authzid`` is "" or equal to
    ``authcid`` (proxy authorization is refused).

    ``server_final`` is additional data with success (SCRAM's ``v=...``), or None. A
    driver whose protocol cannot carry it in the success reply (SMTP: RFC 4954 §4) sends
    it as one more challenge, expects an empty response and then reports success.
    Spec: RFC 4422 §3.6, §4 item 5, RFC 5802 §5.
    """

    authcid: str
    authzid: str
    server_final: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure(Step):
    """The exchange failed. ``reason`` is for the log: drivers send a generic failure
    reply (SMTP 535 5.7.8, IMAP ``NO [AUTHENTICATIONFAILED]``, POP3 ``-ERR``), so that
    an unknown account and a wrong password look the same. Spec: RFC 4422 §3.6."""

    reason: str
