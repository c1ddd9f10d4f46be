"""dkimpy's per-signature hot spots, done by compiled code with the same results.

dkimpy verifies an RSA signature in Python (``dkim.crypto.RSASSA_PKCS1_v1_5_verify``:
byte-by-byte integer conversions around ``pow``) and parses the key record, with the
public key's ASN.1, again for every signature it checks (``dkim.evaluate_pk``).
``install`` replaces the names dkimpy's verifier calls with:

- ``verify_rsa``: RSASSA-PKCS1-v1_5 verification by ``cryptography`` (OpenSSL), the
  public key object built once per (modulus, exponent) and kept in a bounded cache;
  a digest ``cryptography`` cannot name falls back to dkimpy's own function;
- ``evaluate_key``: ``dkim.evaluate_pk`` with its successful results kept per key
  record (bounded); records that fail are evaluated afresh, so every error text stays
  dkimpy's.

and six text steps that run for every signature, each the same function of its input
with the pattern compiled once instead of looked up in ``re``'s cache per call, and
without nested quantifiers:

- ``B_VALUE``: the pattern that empties ``b=`` before the signature field is hashed
  (``dkim.RE_BTAG``; dkimpy's nests its folding-whitespace groups inside a repetition
  and spends tens of microseconds on one 2048-bit signature);
- ``parse_tag_value``: a tag=value list (``dkim.util.parse_tag_value``), same dict and
  same exceptions; a signature field is parsed by postel and again by dkimpy, and a
  key record for every signature, so recent parses are kept (``TAG_LISTS_KEPT``);
- ``rfc822_parse``: the header fields and body (``dkim.rfc822_parse``); when every
  line ends in CRLF the body is sliced off, not split into lines and joined again;
- ``relaxed_headers``: relaxed header canonicalization
  (``dkim.canonicalization.Relaxed.canonicalize_headers``), skipping the whitespace
  substitution for a value with no tab and no two spaces in a row;
- ``select_headers``: the fields named by ``h=``, bottom-up (``dkim.select_headers``);
- ``relaxed_body``: relaxed body canonicalization
  (``dkim.canonicalization.Relaxed.canonicalize_body``). dkimpy substitutes every run of
  spaces and tabs, a single space between two words included, so a body of prose costs
  one match per word (about 40 us for 700 octets, 25% of a whole verification); here
  each substitution runs only when a plain search finds something it would change.

The verifiers return what the replaced functions return, with one deliberate difference:
dkimpy reads the signature as an integer, so it also accepts a signature padded with
leading zero octets (longer than the modulus) or one plus the modulus; RFC 8017
§8.2.2 step 1 and §5.2.2 step 1 call both invalid, and so does this verifier. The DKIM
and ARC vectors run through both replacements. Why replacing names is acceptable here, and not a
fork: docs/adr/0004-dkimpy-hot-spots.md.

Spec: RFC 8017 §8.2.2 (RSASSA-PKCS1-v1_5 verification); RFC 6376 §3.6.1, §6.1.2.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import dkim.canonicalization
import dkim.crypto
import dkim.util
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

import dkim

__all__ = [
    "B_VALUE",
    "DKIM_KEY_CACHE_ENTRIES",
    "TAG_LISTS_KEPT",
    "evaluate_key",
    "install",
    "parse_tag_value",
    "relaxed_body",
    "relaxed_headers",
    "rfc822_parse",
    "select_headers",
    "verify_rsa",
]

DKIM_KEY_CACHE_ENTRIES = 512
"""Parsed public keys (and key records) kept; least recently used dropped first.
Postel policy: a busy receiver sees a few hundred signing keys a day."""

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha1": hashes.SHA1,
}
_dkimpy_verify = dkim.crypto.RSASSA_PKCS1_v1_5_verify
_dkimpy_evaluate_pk = dkim.evaluate_pk
_dkimpy_b_tag = dkim.RE_BTAG
_dkimpy_parse_tag_value = dkim.util.parse_tag_value
_dkimpy_rfc822_parse = dkim.rfc822_parse
_dkimpy_relaxed_headers = dkim.canonicalization.Relaxed.canonicalize_headers
_dkimpy_select_headers = dkim.select_headers
_dkimpy_relaxed_body = dkim.canonicalization.Relaxed.canonicalize_body

B_VALUE = re.compile(rb"([;\s]b\s*=)(?:[\sA-Za-z0-9+/=]*[A-Za-z0-9+/=])?(?:\r?\n\Z)?")
"""``dkim.RE_BTAG``: ``sub(rb"\\1", value)`` leaves ``b=`` and drops its value. dkimpy's
folding whitespace ``(?:(?:\\s*\\r?\\n)?\\s+)?`` matches exactly the runs of ``\\s``, so
"b, FWS, =, then any run of FWS-separated base64 characters" is "b, ``\\s*``, =, then
the longest run of whitespace and base64 characters that ends in a base64 character".
Spec: RFC 6376 §3.5 (b=), §3.7 (the signature field hashed with an empty b=)."""
_LINE_END = re.compile(rb"\r?\n")
_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")
_WSP_RUN = re.compile(rb"[\t ]+")
_WSP_BEFORE_CRLF = re.compile(rb"[\t ]+\r\n")
_WSP_TO_SPACE = re.compile(rb"[\t ]{2,}|\t")
"""The runs of ``_WSP_RUN`` that are not already one space: a match starts only at the
start of a run (a lone space never matches, so the scan never enters a run midway)."""


@functools.lru_cache(maxsize=DKIM_KEY_CACHE_ENTRIES)
def _public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey | None:
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def verify_rsa(hash: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """Whether ``signature`` is a valid RSASSA-PKCS1-v1_5 signature of the digest held
    by ``hash`` (a dkimpy ``HashThrough``) under ``public_key`` (dkimpy's dict with
    ``modulus`` and ``publicExponent``). dkimpy's contract, except that a signature
    that is not exactly as long as the modulus is invalid. Spec: RFC 8017 §8.2.2."""
    digest = _DIGESTS.get(str(getattr(hash, "name", "")).lower())
    key = _public_key(public_key["modulus"], public_key["publicExponent"])
    if digest is None or key is None:
        return bool(_dkimpy_verify(hash, signature, public_key))
    try:
        key.verify(signature, hash.digest(), padding.PKCS1v15(), utils.Prehashed(digest()))
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=DKIM_KEY_CACHE_ENTRIES)
def _evaluate_cached(record: bytes) -> tuple[Any, int, bytes, bool]:
    result: tuple[Any, int, bytes, bool] = _dkimpy_evaluate_pk("", record)
    return result


def evaluate_key(name: Any, record: Any) -> tuple[Any, int, bytes, bool]:
    """``dkim.evaluate_pk(name, record)``: (public key, bits, key type, tlsrpt) of a key
    record; raises what dkimpy raises (``dkim.KeyFormatError``...). Successful results
    are cached per record. Spec: RFC 6376 §3.6.1."""
    if isinstance(record, str):
        record = record.encode("ascii")
    if not isinstance(record, bytes) or not record:
        result: tuple[Any, int, bytes, bool] = _dkimpy_evaluate_pk(name, record)
        return result
    try:
        return _evaluate_cached(record)
    except Exception:
        result = _dkimpy_evaluate_pk(name, record)  # the error with dkimpy's own text
        return result


TAG_LISTS_KEPT = 4
"""Parsed tag=value lists kept (least recently used dropped first). Within one
message's verification a signature field is parsed by postel's checks and again by
dkimpy, and the signing domain's key record once per signature; a few entries keep
those, and a signature seen in an earlier message (a replay) is parsed afresh."""


def parse_tag_value(tag_list: bytes) -> dict[bytes, bytes]:
    """``dkim.util.parse_tag_value``: the tags of a tag=value list, in order; raises
    ``dkim.util.InvalidTagSpec`` (no ``=``, or a name not starting with a letter) or
    ``dkim.util.DuplicateTag``. Like dkimpy, only a name's first octet is checked.
    Each call returns a new dict (the parse of a recent list is reused).
    Spec: RFC 6376 §3.2."""
    return dict(_parsed_tag_list(tag_list))


@functools.lru_cache(maxsize=TAG_LISTS_KEPT)
def _parsed_tag_list(tag_list: bytes) -> dict[bytes, bytes]:
    tags: dict[bytes, bytes] = {}
    specs = tag_list.strip().split(b";")
    if not specs[-1]:
        specs.pop()
    for spec in specs:
        key, sep, value = spec.partition(b"=")
        if not sep:
            raise dkim.util.InvalidTagSpec(spec)
        key = key.strip()
        if not key[:1].isalpha():
            raise dkim.util.InvalidTagSpec(spec)
        if key in tags:
            raise dkim.util.DuplicateTag(key)
        tags[key] = value.strip()
    return tags


def rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """``dkim.rfc822_parse``: ([name, value] fields, body) with CRLF line ends; raises
    ``dkim.MessageFormatError`` for a header line that is neither a field, a
    continuation nor an mbox ``From `` line. A message whose every line ends in CRLF
    (what postel stores) has its body taken as it is, not split and joined again.
    Spec: RFC 5322 §2.2, §2.2.3."""
    if message.count(b"\n") == message.count(b"\r\n"):
        if message.startswith(b"\r\n"):
            return [], message[2:]
        end = message.find(b"\r\n\r\n")
        if end >= 0:
            return _header_fields(message[:end].split(b"\r\n")), message[end + 4 :]
    lines = _LINE_END.split(message)
    count = len(lines)
    i = 0
    while i < count and lines[i]:
        i += 1
    return _header_fields(lines[:i]), b"\r\n".join(lines[i + 1 :])


def _header_fields(lines: list[bytes]) -> list[list[bytes]]:
    headers: list[list[bytes]] = []
    for line in lines:
        if line[0] in (0x09, 0x20):
            headers[-1][1] += line + b"\r\n"
        else:
            m = _FIELD_NAME.match(line)
            if m is not None:
                headers.append([m.group(1), line[m.end(0) :] + b"\r\n"])
            elif not line.startswith(b"From "):
                raise dkim.MessageFormatError(f"Unexpected characters in RFC822 header: {line!r}")
    return headers


def relaxed_headers(headers: Sequence[Sequence[bytes]]) -> list[tuple[bytes, bytes]]:
    """``dkim.canonicalization.Relaxed.canonicalize_headers``: names lowercased,
    values unfolded, whitespace runs made one space, trimmed, CRLF-terminated.
    Spec: RFC 6376 §3.4.2."""
    canonical: list[tuple[bytes, bytes]] = []
    for field in headers:
        value = field[1].replace(b"\r\n", b"").replace(b"\n", b"")
        if b"\t" in value or b"  " in value:
            value = _WSP_RUN.sub(b" ", value)
        canonical.append((field[0].lower().rstrip(), value.strip() + b"\r\n"))
    return canonical


def select_headers(
    headers: Sequence[Sequence[bytes]], include_headers: Sequence[bytes]
) -> list[Sequence[bytes]]:
    """``dkim.select_headers``: for each name of ``include_headers`` (lowercase), the
    next field of that name not yet taken, from the bottom up; a name with none
    left takes nothing. Spec: RFC 6376 §5.4.2."""
    below: dict[bytes, list[int]] = {}
    for index, field in enumerate(headers):
        below.setdefault(field[0].lower(), []).append(index)
    selected: list[Sequence[bytes]] = []
    for name in include_headers:
        assert name == name.lower()
        found = below.get(name)
        if found:
            selected.append(headers[found.pop()])
    return selected


def relaxed_body(body: bytes) -> bytes:
    """``dkim.canonicalization.Relaxed.canonicalize_body``: spaces and tabs before each
    CRLF removed, every other run of them made one space, empty lines at the end
    removed (an empty body stays empty, a body without a final CRLF gets one).
    Spec: RFC 6376 §3.4.4."""
    if b" \r\n" in body or b"\t\r\n" in body:
        body = _WSP_BEFORE_CRLF.sub(b"\r\n", body)
    if b"\t" in body or b"  " in body:
        body = _WSP_TO_SPACE.sub(b" ", body)
    canonical: bytes = dkim.canonicalization.correct_empty_body(
        dkim.canonicalization.strip_trailing_lines(body)
    )
    return canonical


def install() -> None:
    """Point dkimpy at the replacements above; idempotent."""
    dkim.RSASSA_PKCS1_v1_5_verify = verify_rsa
    dkim.evaluate_pk = evaluate_key
    dkim.RE_BTAG = B_VALUE
    dkim.util.parse_tag_value = parse_tag_value
    dkim.parse_tag_value = parse_tag_value
    dkim.rfc822_parse = rfc822_parse
    dkim.canonicalization.Relaxed.canonicalize_headers = staticmethod(relaxed_headers)
    dkim.select_headers = select_headers
    dkim.canonicalization.Relaxed.canonicalize_body = staticmethod(relaxed_body)
