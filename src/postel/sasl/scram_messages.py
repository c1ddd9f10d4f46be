"""SCRAM messages: parsing what the client sends and formatting what the server sends.

Only the attributes SCRAM-SHA-256 without channel binding needs are interpreted; other
extension attributes are checked for shape and ignored, ``m=`` (a mandatory extension)
is refused wherever it appears.

Spec: RFC 5802 §5.1 (attributes), §7 (ABNF), RFC 7677 §3.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from postel.sasl.codec import strict_b64decode
from postel.sasl.steps import SaslError

SCRAM_NONCE_MAX = 256
"""Longest client nonce, and longest server nonce part, in characters (local policy;
RFC 5802 §5.1 sets no bound). Spec: RFC 5802 §5.1."""
SCRAM_EXTENSIONS_MAX = 16
"""Extension attributes accepted in one message (local policy). Spec: RFC 5802 §7."""

_SASLNAME = re.compile(r"(?:[^=,\x00]|=2C|=3D)+")
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_EXTENSION = re.compile(r"[A-Za-z]=[^,\x00]+")


class ScramMessageError(ValueError):
    """A client message SCRAM refuses; the text is the Failure reason. Spec: RFC 5802 §7."""


@dataclass(frozen=True, slots=True)
class ClientFirst:
    """client-first-message: ``gs2_header`` as sent (it comes back in ``c=``), the
    unescaped ``authzid`` ("" when absent) and ``username``, the client nonce, and the
    message without its GS2 header (``bare``, part of AuthMessage). Spec: RFC 5802 §7."""

    gs2_header: str
    authzid: str
    username: str
    client_nonce: str
    bare: str


@dataclass(frozen=True, slots=True)
class ClientFinal:
    """client-final-message: the ``c=`` and ``r=`` values, the decoded proof, and the
    message up to the proof (part of AuthMessage). Spec: RFC 5802 §7."""

    channel_binding: str
    nonce: str
    proof: bytes
    without_proof: str


def parse_saslname(value: str) -> str:
    """Unescape a saslname (``=2C`` is ",", ``=3D`` is "="); any other "=" is an error.
    Raises ScramMessageError. Spec: RFC 5802 §5.1 (n), §7 (saslname)."""
    if _SASLNAME.fullmatch(value) is None:
        raise ScramMessageError("malformed saslname")
    return value.replace("=2C", ",").replace("=3D", "=")


def check_nonce(nonce: str) -> None:
    """Raise ScramMessageError unless ``nonce`` is 1..SCRAM_NONCE_MAX printable ASCII
    characters other than ",". Spec: RFC 5802 §7 (printable)."""
    if len(nonce) > SCRAM_NONCE_MAX or _NONCE.fullmatch(nonce) is None:
        raise ScramMessageError("malformed nonce")


def _check_extensions(attributes: list[str]) -> None:
    """Extension attributes: ``ALPHA "=" value``, never ``m=``, at most a few.
    Spec: RFC 5802 §5.1 (m), §7 (extensions)."""
    if len(attributes) > SCRAM_EXTENSIONS_MAX:
        raise ScramMessageError("too many extension attributes")
    for attribute in attributes:
        if attribute.startswith("m="):
            raise ScramMessageError("mandatory extension not supported")
        if _EXTENSION.fullmatch(attribute) is None:
            raise ScramMessageError("malformed attribute")


def _parse_gs2_header(flag: str, authzid: str) -> str:
    """The authzid of a GS2 header whose channel-binding flag is "n" or "y".
    Spec: RFC 5802 §6 ("y": the client thinks the server has no channel binding), §7."""
    if flag.startswith("p="):
        raise ScramMessageError("channel binding not supported")
    if flag not in ("n", "y"):
        raise ScramMessageError("malformed GS2 header")
    if authzid == "":
        return ""
    if not authzid.startswith("a="):
        raise ScramMessageError("malformed GS2 header")
    return parse_saslname(authzid[2:])


def parse_client_first(text: str) -> ClientFirst:
    """Parse client-first-message. Raises ScramMessageError (channel binding requested,
    ``m=``, bad saslname or nonce, attributes out of order). Spec: RFC 5802 §7."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise ScramMessageError("malformed client-first-message")
    flag, authz, bare = parts
    authzid = _parse_gs2_header(flag, authz)
    attributes = bare.split(",")
    if attributes[0].startswith("m="):
        raise ScramMessageError("mandatory extension not supported")
    if len(attributes) < 2 or not attributes[0].startswith("n="):
        raise ScramMessageError("malformed client-first-message")
    if not attributes[1].startswith("r="):
        raise ScramMessageError("malformed client-first-message")
    username = parse_saslname(attributes[0][2:])
    client_nonce = attributes[1][2:]
    check_nonce(client_nonce)
    _check_extensions(attributes[2:])
    return ClientFirst(f"{flag},{authz},", authzid, username, client_nonce, bare)


def format_server_first(nonce: str, salt: bytes, iterations: int) -> str:
    """server-first-message ``r=<nonce>,s=<base64 salt>,i=<iterations>``.
    Spec: RFC 5802 §7."""
    return f"r={nonce},s={base64.b64encode(salt).decode('ascii')},i={iterations}"


def parse_client_final(text: str) -> ClientFinal:
    """Parse client-final-message; the proof must be the last attribute. Raises
    ScramMessageError. Spec: RFC 5802 §7."""
    cut = text.rfind(",p=")
    if cut < 0:
        raise ScramMessageError("client-final-message without proof")
    without_proof = text[:cut]
    attributes = without_proof.split(",")
    if len(attributes) < 2 or not attributes[0].startswith("c="):
        raise ScramMessageError("malformed client-final-message")
    if not attributes[1].startswith("r="):
        raise ScramMessageError("malformed client-final-message")
    _check_extensions(attributes[2:])
    try:
        proof = strict_b64decode(text[cut + 3 :].encode("ascii"))
    except (UnicodeEncodeError, SaslError):
        raise ScramMessageError("malformed proof") from None
    return ClientFinal(attributes[0][2:], attributes[1][2:], proof, without_proof)


def format_server_final(server_signature: bytes) -> bytes:
    """server-final-message ``v=<base64 ServerSignature>``. Spec: RFC 5802 §7."""
    return b"v=" + base64.b64encode(server_signature)
