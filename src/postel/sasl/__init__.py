"""SASL, server side, sans-IO: PLAIN, LOGIN and SCRAM-SHA-256 for IMAP, POP3 and SMTP.

A driver starts a mechanism by name, decodes each client line with ``decode_response``,
feeds it to ``step`` and acts on the returned Step::

    mech = start("PLAIN", nonce_source=random_nonce, fake_salt_secret=secret)
    step = mech.step(decode_response(b"AHVzZXIAcGVuY2ls"))
    # VerifyPassword("user", "", "pencil") -> mech.password_result(ok) -> Success / Failure

No I/O, no clock, no store: credentials come from the driver.

Spec: RFC 4422, RFC 4616, RFC 5802, RFC 7677, RFC 4954 §4, RFC 4959, RFC 5034,
draft-murchison-sasl-login.
"""

from __future__ import annotations

from postel.sasl.codec import SASL_LINE_MAX, SASL_RESPONSE_MAX, decode_response, encode_challenge
from postel.sasl.login import Login
from postel.sasl.mechanism import AUTHCID_MAX, PASSWORD_MAX, ServerMechanism
from postel.sasl.plain import Plain
from postel.sasl.registry import MECHANISMS, mechanisms_for, start
from postel.sasl.scram import (
    SCRAM_ITERATIONS_MAX,
    SCRAM_ITERATIONS_MIN,
    ScramSha256,
    random_nonce,
)
from postel.sasl.steps import (
    CANCELLED,
    Cancelled,
    Challenge,
    Failure,
    NeedCredentials,
    SaslError,
    SaslStateError,
    ScramCredentials,
    Step,
    Success,
    UnsupportedMechanism,
    VerifyPassword,
)

__all__ = [
    "AUTHCID_MAX",
    "CANCELLED",
    "MECHANISMS",
    "PASSWORD_MAX",
    "SASL_LINE_MAX",
    "SASL_RESPONSE_MAX",
    "SCRAM_ITERATIONS_MAX",
    "SCRAM_ITERATIONS_MIN",
    "Cancelled",
    "Challenge",
    "Failure",
    "Login",
    "NeedCredentials",
    "Plain",
    "SaslError",
    "SaslStateError",
    "ScramCredentials",
    "ScramSha256",
    "ServerMechanism",
    "Step",
    "Success",
    "UnsupportedMechanism",
    "VerifyPassword",
    "decode_response",
    "encode_challenge",
    "mechanisms_for",
    "random_nonce",
    "start",
]
