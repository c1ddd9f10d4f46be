"""SCRAM-SHA-256, server side, without channel binding.

The exchange: client-first -> NeedCredentials -> (provide_credentials) server-first ->
client-final -> Success with ``v=ServerSignature`` or Failure. An unknown account gets a
server-first built from a salt and keys derived from ``fake_salt_secret`` and the user
name, so it looks like a real one, and fails at the end exactly like a wrong password.

Spec: RFC 5802 §3, §5, §6, §7, §9; RFC 7677 §3, §4.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from enum import StrEnum

from postel.sasl.mechanism import (
    AUTH_FAILED,
    AUTHCID_MAX,
    AUTHZID_MAX,
    ServerMechanism,
    authorization_problem,
    decode_text,
    identity_problem,
)
from postel.sasl.scram_messages import (
    ClientFirst,
    ScramMessageError,
    check_nonce,
    format_server_final,
    format_server_first,
    parse_client_final,
    parse_client_first,
)
from postel.sasl.steps import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslStateError,
    ScramCredentials,
    Step,
    Success,
)

SCRAM_ITERATIONS_MIN = 4096
"""Fewest PBKDF2 iterations accepted from storage. Spec: RFC 7677 §4."""
SCRAM_ITERATIONS_MAX = 10_000_000
"""Most PBKDF2 iterations accepted from storage: bounds the work asked of clients
(local policy). Spec: RFC 5802 §5.1 (i)."""
SCRAM_SALT_MAX = 1024
"""Longest stored salt accepted, in octets (local policy). Spec: RFC 5802 §5.1 (s)."""
SCRAM_KEY_LENGTH = 32
"""Length of StoredKey, ServerKey and the client proof: SHA-256 output. Spec: RFC 7677 §3."""
SCRAM_MESSAGE_MAX = 4096
"""Longest client message, in octets: room for the longest user name, nonce and proof
with escapes and a few extensions (local policy). Spec: RFC 5802 §7."""
FAKE_SALT_LENGTH = 16
"""Salt length for unknown accounts: the length the directory gives real ones."""
FAKE_SALT_SECRET_MIN = 16
"""Shortest ``fake_salt_secret`` accepted, in octets (128 bits)."""
RANDOM_NONCE_OCTETS = 18
"""Random octets in a server nonce (24 base64 characters). Spec: RFC 5802 §5.1 (r)."""


def random_nonce() -> str:
    """A fresh server nonce part: RANDOM_NONCE_OCTETS from ``secrets``, in base64 (which
    holds no ","). The default ``nonce_source`` for drivers. Spec: RFC 5802 §5.1 (r)."""
    return base64.b64encode(secrets.token_bytes(RANDOM_NONCE_OCTETS)).decode("ascii")


def _usable(credentials: ScramCredentials) -> bool:
    """True when stored credentials are within the bounds above. Spec: RFC 7677 §4."""
    return (
        SCRAM_ITERATIONS_MIN <= credentials.iterations <= SCRAM_ITERATIONS_MAX
        and 0 < len(credentials.salt) <= SCRAM_SALT_MAX
        and len(credentials.stored_key) == SCRAM_KEY_LENGTH
        and len(credentials.server_key) == SCRAM_KEY_LENGTH
    )


def fake_credentials(secret: bytes, username: str, iterations: int) -> ScramCredentials:
    """Deterministic credentials for an unknown ``username``: the same salt on every
    attempt, as a real account has, and keys no password matches in practice.
    Spec: RFC 5802 §9 (user enumeration)."""
    name = username.encode("utf-8")

    def derive(label: bytes) -> bytes:
        return hmac.digest(secret, b"SCRAM-SHA-256 " + label + b"\x00" + name, "sha256")

    return ScramCredentials(
        salt=derive(b"fake salt")[:FAKE_SALT_LENGTH],
        iterations=iterations,
        stored_key=derive(b"fake StoredKey"),
        server_key=derive(b"fake ServerKey"),
    )


class _State(StrEnum):
    START = "start"
    CLIENT_FIRST = "client-first"
    CREDENTIALS = "credentials"
    CLIENT_FINAL = "client-final"
    DONE = "done"


class ScramSha256(ServerMechanism):
    """SCRAM-SHA-256 server. ``nonce_source()`` returns the server's part of the nonce
    (printable ASCII without ","); ``fake_salt_secret`` (at least 16 octets, stable
    across restarts) keys the fake salts of unknown accounts, which use
    ``fake_iterations``. Raises ValueError for a short secret or iterations out of bounds.
    Spec: RFC 5802 §5, RFC 7677 §3.
    """

    __slots__ = (
        "_credentials",
        "_fake_iterations",
        "_fake_reason",
        "_fake_secret",
        "_first",
        "_nonce",
        "_nonce_source",
        "_server_first",
        "_state",
    )

    name = "SCRAM-SHA-256"
    sends_password = False

    def __init__(
        self,
        *,
        nonce_source: Callable[[], str],
        fake_salt_secret: bytes,
        fake_iterations: int = SCRAM_ITERATIONS_MIN,
    ) -> None:
        if len(fake_salt_secret) < FAKE_SALT_SECRET_MIN:
            raise ValueError(f"fake_salt_secret needs at least {FAKE_SALT_SECRET_MIN} octets")
        if not SCRAM_ITERATIONS_MIN <= fake_iterations <= SCRAM_ITERATIONS_MAX:
            raise ValueError("fake_iterations out of bounds")
        self._nonce_source = nonce_source
        self._fake_secret = fake_salt_secret
        self._fake_iterations = fake_iterations
        self._state = _State.START
        self._first: ClientFirst | None = None
        self._credentials: ScramCredentials | None = None
        self._fake_reason: str | None = None
        self._nonce = ""
        self._server_first = ""

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def _fail(self, reason: str) -> Failure:
        self._state = _State.DONE
        return Failure(reason)

    def step(self, response: bytes | None) -> Step:
        """Challenge(b"") for no initial response; NeedCredentials after
        client-first-message; Success(server_final=b"v=...") or Failure after
        client-final-message. Raises SaslStateError while credentials are awaited or
        after the outcome. Spec: RFC 5802 §5, RFC 4422 §3.3."""
        if self._state in (_State.CREDENTIALS, _State.DONE):
            raise SaslStateError(f"{self.name}: step() called out of turn")
        if response is None:
            if self._state is _State.START:
                self._state = _State.CLIENT_FIRST
                return Challenge(b"")
            return self._fail("response expected")
        if len(response) > SCRAM_MESSAGE_MAX:
            return self._fail("SCRAM message too long")
        text = decode_text(response)
        if text is None:
            return self._fail("SCRAM message is not UTF-8")
        try:
            if self._state is _State.CLIENT_FINAL:
                return self._client_final(text)
            return self._client_first(text)
        except ScramMessageError as exc:
            return self._fail(str(exc))

    def _client_first(self, text: str) -> Step:
        first = parse_client_first(text)
        problem = (
            identity_problem(first.username, AUTHCID_MAX)
            or (identity_problem(first.authzid, AUTHZID_MAX) if first.authzid else None)
            or authorization_problem(first.username, first.authzid)
        )
        if problem is not None:
            return self._fail(problem)
        self._first = first
        self._state = _State.CREDENTIALS
        return NeedCredentials(first.username, first.authzid)

    def provide_credentials(self, credentials: ScramCredentials | None) -> Step:
        """Challenge(server-first-message) for the account's credentials, or for fake
        ones when ``credentials`` is None (unknown account) or unusable (out of the
        bounds above; the final Failure says so). Raises SaslStateError when no
        credentials were asked for or ``nonce_source`` returned an invalid nonce.
        Spec: RFC 5802 §5, §9."""
        first = self._first
        if self._state is not _State.CREDENTIALS or first is None:
            raise SaslStateError(f"{self.name}: no credentials were asked for")
        if credentials is None:
            self._fake_reason = AUTH_FAILED
        elif not _usable(credentials):
            self._fake_reason = "stored SCRAM credentials unusable"
        if self._fake_reason is not None or credentials is None:
            credentials = fake_credentials(self._fake_secret, first.username, self._fake_iterations)
        server_nonce = self._nonce_source()
        try:
            check_nonce(server_nonce)
        except ScramMessageError:
            raise SaslStateError(f"{self.name}: nonce_source gave an invalid nonce") from None
        self._credentials = credentials
        self._nonce = first.client_nonce + server_nonce
        self._server_first = format_server_first(
            self._nonce, credentials.salt, credentials.iterations
        )
        self._state = _State.CLIENT_FINAL
        return Challenge(self._server_first.encode("ascii"))

    def _client_final(self, text: str) -> Step:
        first, credentials = self._first, self._credentials
        if first is None or credentials is None:  # pragma: no cover - guarded by state
            raise SaslStateError(f"{self.name}: client-final before server-first")
        final = parse_client_final(text)
        expected_cbind = base64.b64encode(first.gs2_header.encode("utf-8")).decode("ascii")
        if final.channel_binding != expected_cbind:
            return self._fail("channel binding data mismatch")
        if not hmac.compare_digest(final.nonce.encode("utf-8"), self._nonce.encode("ascii")):
            return self._fail("nonce mismatch")
        if len(final.proof) != SCRAM_KEY_LENGTH:
            return self._fail("malformed proof")
        auth_message = f"{first.bare},{self._server_first},{final.without_proof}".encode()
        signature = hmac.digest(credentials.stored_key, auth_message, "sha256")
        client_key = bytes(p ^ s for p, s in zip(final.proof, signature, strict=True))
        matches = hmac.compare_digest(hashlib.sha256(client_key).digest(), credentials.stored_key)
        if not matches or self._fake_reason is not None:
            return self._fail(self._fake_reason or AUTH_FAILED)
        server_signature = hmac.digest(credentials.server_key, auth_message, "sha256")
        self._state = _State.DONE
        return Success(first.username, first.authzid, format_server_final(server_signature))
