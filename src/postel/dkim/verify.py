"""Verifying the DKIM signatures of a received message with dkimpy, the key records
fetched through postel's own asynchronous DNS resolver.

Verification runs in three steps: the message is parsed and every ``DKIM-Signature``
field's tag list checked (in a worker thread), the key records of the acceptable
signatures are fetched concurrently through the injected resolver, and dkimpy verifies
each signature (in a worker thread) answering its DNS questions from what was fetched.
dkimpy never queries DNS itself.

Each evaluated signature gets one RFC 8601 §2.7.1 result:

==========  ============================================================================
result      when
==========  ============================================================================
pass        the signature verified with an acceptable key
fail        the header hash or the body hash did not verify (RFC 6376 §6.1.3)
neutral     the signature's tag list has a syntax error, misses a required tag, or a
            tag value is malformed (RFC 6376 §3.5, §6.1.1; RFC 8601: "contained syntax
            errors")
permerror   unusable signature or key: v= not 1, unsupported or SHA-1 algorithm
            (RFC 8301 §3.1), i= outside d=, From not signed, expired (x=) or future
            (t=) signature, no key record (NXDOMAIN or no TXT), key revoked, malformed
            or of the wrong type, RSA key below 1024 bits (RFC 8301 §3.2) or above
            ``DKIM_RSA_BITS_MAX``
temperror   the key lookup failed temporarily (SERVFAIL, timeout) (RFC 6376 §6.1.2)
policy      only for the one summary result standing for signatures past
            ``DkimLimits.signatures`` that were not evaluated (RFC 6376 §6.1)
==========  ============================================================================

SHA-1 and short RSA keys are ``permerror``, not ``fail``: RFC 8301 forbids treating
such signatures as valid at all, so no verification is attempted, and ``fail`` is
reserved by RFC 8601 §2.7.1 for signatures "acceptable to the ADMD" that did not verify;
a later attempt cannot produce a different answer, which is ``permerror``. An unsigned
message gives an empty list (``dkim=none``).

Spec: RFC 6376 §3.5, §3.6, §6.1; RFC 8301 §3; RFC 8463; RFC 8601 §2.7.1; RFC 6008 §4.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from dkim.canonicalization import (
    CanonicalizationPolicy,
    InvalidCanonicalizationPolicyError,
)
from dkim.util import InvalidTagValueList

import dkim
from postel.clock import Clock, SystemClock
from postel.dkim.accel import parse_tag_value
from postel.dkim.runner import VerifyRunner, WorkerLost
from postel.errors import PermanentFailure, TemporaryFailure
from postel.mail.header import HeaderBlock, split_header

# --- Bounds (owned by the dkim package) ----------------------------------------------
DKIM_SIGNATURES_MAX = 10
"""DKIM-Signature fields evaluated per message, topmost first; the rest are not
evaluated and are reported by one ``policy`` result. Spec: RFC 6376 §6.1 (verifiers
MAY limit the number of signatures they try), §8.4 (attacks by many signatures)."""
DKIM_KEY_LOOKUP_TIMEOUT_S = 12.0
"""Seconds allowed for one key record lookup; beyond it the signature is temperror.
Above the resolver's own 10 s lifetime. Spec: RFC 6376 §6.1.2 (TEMPFAIL, key
unavailable)."""
DKIM_RSA_BITS_MIN = 1024
"""Smaller RSA keys are never valid. Spec: RFC 8301 §3.2."""
DKIM_RSA_BITS_MAX = 8192
"""Larger RSA keys are permerror (verification cost). Spec: RFC 8301 §3.2 (verifiers
MUST handle 1024-4096 bits and MAY handle larger keys)."""
DKIM_FUTURE_SKEW_S = 36000
"""A ``t=`` further than this in the future is permerror; the same ten hours dkimpy
allows for signers' clocks. Spec: RFC 6376 §3.5 (t=: verifiers MAY ignore signatures
with a timestamp in the future)."""
HEADER_B_CHARS = 8
"""Characters of ``b=`` reported as ``header.b``. Spec: RFC 6008 §4 (at least 8)."""

log = logging.getLogger(__name__)

_REQUIRED_TAGS = (b"v", b"a", b"b", b"bh", b"d", b"h", b"s")
_ALGORITHMS = {b"rsa-sha256": b"rsa", b"ed25519-sha256": b"ed25519"}
_BASE64 = re.compile(rb"[A-Za-z0-9+/\s]*(?:=\s*){0,2}")
"""A base64 tag value with folding whitespace: used with ``fullmatch``, linear in the
length (no repetition can match the same octets two ways)."""
_LDH_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_DIGITS = re.compile(rb"^[0-9]{1,76}$")


class TxtResolver(Protocol):
    """What verification needs of postel's ``Resolver``: TXT lookups that raise a
    ``TemporaryFailure`` (SERVFAIL, timeout) or a ``PermanentFailure`` (NXDOMAIN, bad
    name) and return ``()`` for NODATA. Spec: RFC 1035 §3.3.14, RFC 6376 §3.6.2."""

    async def txt(self, name: str) -> tuple[bytes, ...]:
        """TXT records of ``name``, each record's strings concatenated."""
        ...


class DkimStatus(StrEnum):
    """The result of one signature's evaluation. Spec: RFC 8601 §2.7.1."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"
    POLICY = "policy"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class DkimLimits:
    """Bounds of one verification: ``signatures`` evaluated (count) and the time
    budget of one key lookup ``timeout_s`` (seconds). Spec: RFC 6376 §6.1, §6.1.2."""

    signatures: int = DKIM_SIGNATURES_MAX
    timeout_s: float = DKIM_KEY_LOOKUP_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class DkimResult:
    """The outcome of one DKIM-Signature.

    ``domain`` (d=), ``selector`` (s=), ``algorithm`` (a=), ``header_i`` (i=, or
    ``@`` + d= when absent) and ``header_b`` (the first 8 characters of b=) are what
    Authentication-Results reports as header.d, header.s, header.a, header.i and
    header.b; each is ``""`` when the signature did not say. ``key_bits`` is the size
    of the public key (256 for Ed25519), None when no key was loaded.
    ``body_length_limited`` is True when the signature has ``l=``;
    ``unsigned_body_content`` then says whether the body goes on past the signed
    length: that content is not covered and must not be trusted (RFC 6376 §8.2).
    ``reason`` is a short text for logs and the A-R ``reason=`` property.

    Spec: RFC 8601 §2.7.1, §2.3; RFC 6008 §4; RFC 6376 §3.5, §8.2.
    """

    result: DkimStatus
    domain: str
    selector: str
    algorithm: str
    header_i: str
    header_b: str
    key_bits: int | None
    body_length_limited: bool
    unsigned_body_content: bool
    reason: str

    @property
    def header_d(self) -> str:
        """The ``header.d`` value (d=). Spec: RFC 8601 §2.7.1."""
        return self.domain

    @property
    def header_s(self) -> str:
        """The ``header.s`` value (s=). Spec: RFC 8601 §2.7.1."""
        return self.selector

    @property
    def header_a(self) -> str:
        """The ``header.a`` value (a=). Spec: RFC 8601 §2.7.1."""
        return self.algorithm

    def __reduce__(self) -> tuple[type[DkimResult], tuple[Any, ...]]:
        """Pickled as a constructor call (results come back from the DKIM worker
        process; the generic dataclass state costs a field lookup per object)."""
        return DkimResult, (
            self.result,
            self.domain,
            self.selector,
            self.algorithm,
            self.header_i,
            self.header_b,
            self.key_bits,
            self.body_length_limited,
            self.unsigned_body_content,
            self.reason,
        )


@dataclass(frozen=True, slots=True)
class _Signature:
    """One DKIM-Signature after the tag checks: ``problem`` set when it is not to be
    verified; ``key_name`` the ``<s>._domainkey.<d>`` to look up otherwise."""

    index: int
    tags: Mapping[bytes, bytes]
    domain: str
    selector: str
    algorithm: str
    header_i: str
    header_b: str
    problem: tuple[DkimStatus, str] | None
    key_name: str


@dataclass(frozen=True, slots=True)
class KeyAnswer:
    """The TXT records found at a key name, or why there are none (``status`` is
    temperror or permerror then). Spec: RFC 6376 §6.1.2."""

    records: tuple[bytes, ...]
    status: DkimStatus | None
    reason: str

    def __reduce__(self) -> tuple[type[KeyAnswer], tuple[Any, ...]]:
        """Pickled as a constructor call (sent to the DKIM worker with each job)."""
        return KeyAnswer, (self.records, self.status, self.reason)


# --- Shared with ARC: key record lookups and the dnsfunc given to dkimpy -------------
async def fetch_keys(
    resolver: TxtResolver, names: list[str], timeout_s: float
) -> dict[str, KeyAnswer]:
    """Look up the TXT records of every name in ``names`` concurrently, each within
    ``timeout_s`` seconds. Never raises for DNS trouble: it is in the answers.
    Spec: RFC 6376 §3.6.2.2, §6.1.2."""
    answers: dict[str, KeyAnswer] = {}
    unique = list(dict.fromkeys(names))
    if len(unique) == 1:  # the usual case needs no task
        return {unique[0]: await _fetch_key(resolver, unique[0], timeout_s)}

    async def one(name: str) -> None:
        answers[name] = await _fetch_key(resolver, name, timeout_s)

    async with asyncio.TaskGroup() as group:
        for name in unique:
            group.create_task(one(name))
    return answers


async def _fetch_key(resolver: TxtResolver, name: str, timeout_s: float) -> KeyAnswer:
    expires_at = getattr(resolver, "expires_at", None)  # a caching resolver (postel.resolver)
    try:
        if expires_at is not None and expires_at("TXT", name) is not None:
            records = await resolver.txt(name)  # cached: no wait to bound
        else:
            async with asyncio.timeout(timeout_s):
                records = await resolver.txt(name)
    except TimeoutError:
        return KeyAnswer((), DkimStatus.TEMPERROR, f"key lookup of {name} timed out")
    except TemporaryFailure as exc:
        return KeyAnswer((), DkimStatus.TEMPERROR, f"key lookup of {name}: {exc}")
    except PermanentFailure as exc:
        return KeyAnswer((), DkimStatus.PERMERROR, f"no key record at {name}: {exc}")
    if not records:
        return KeyAnswer((), DkimStatus.PERMERROR, f"no key record at {name}")
    return KeyAnswer(tuple(records), None, "")


def answering_dnsfunc(records: Mapping[str, bytes]) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` answering from ``records`` (key name without the trailing
    dot -> TXT value); any other name has no record."""

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        del timeout
        return records.get(name.decode("utf-8", "replace").rstrip(".").lower())

    return dnsfunc


def key_name(selector: str, domain: str) -> str:
    """``<selector>._domainkey.<domain>``, lower case. Spec: RFC 6376 §3.6.2.1."""
    return f"{selector}._domainkey.{domain}".lower()


def is_domain_name(domain: str) -> bool:
    """True for a dotted name of LDH labels (non-ASCII labels allowed, RFC 8616 §4).
    Spec: RFC 6376 §3.5 (d= is a domain-name), RFC 5890 §2.3.1."""
    if not domain or len(domain) > 253:
        return False
    return all(not label.isascii() or _LDH_LABEL.match(label) for label in domain.split("."))


def is_selector(selector: str) -> bool:
    """True for a dotted selector of LDH labels (underscore allowed).
    Spec: RFC 6376 §3.1 (selector = sub-domain *("." sub-domain))."""
    return bool(selector) and all(_LDH_LABEL.match(label) for label in selector.split("."))


# --- Verification ----------------------------------------------------------------------
async def verify_message(
    message: bytes,
    resolver: TxtResolver,
    *,
    clock: Clock | None = None,
    limits: DkimLimits | None = None,
    header: HeaderBlock | None = None,
    runner: VerifyRunner | None = None,
) -> list[DkimResult]:
    """Verify every DKIM-Signature of ``message`` (the whole message as received, CRLF
    line ends), topmost first, at most ``limits.signatures`` of them.

    Returns one ``DkimResult`` per evaluated signature in header order, plus one
    ``policy`` result standing for all signatures past the bound; ``[]`` when the
    message carries no DKIM-Signature. Key records are looked up through ``resolver``
    only (fetched before the full parse, from a quick scan of the fields); parsing and
    the cryptography run in one worker thread call. ``clock`` decides the
    x= and t= checks (default: the system clock); ``header`` is ``message``'s
    header section when the caller has already split it; ``runner`` the thread
    that verifies (default: asyncio's pool). Never raises for bad input or DNS
    trouble: that is in the results.

    Spec: RFC 6376 §6.1; RFC 8301 §3; RFC 8463 §3; RFC 8601 §2.7.1.
    """
    limits = limits or DkimLimits()
    now = int((clock or SystemClock()).now().timestamp())
    header = header or split_header(message)
    fields = [f.value for f in header.get_all(b"dkim-signature")]
    if not fields:
        return []
    names = [name for name in map(_usable_key_name, fields[: limits.signatures]) if name]
    answers = await fetch_keys(resolver, names, limits.timeout_s)
    off_loop = runner.run if runner is not None else asyncio.to_thread
    verify = functools.partial(_parse_and_verify, message, limits.signatures, now)
    try:
        outcome = await off_loop(functools.partial(verify, answers))
        if isinstance(outcome, list):  # names the quick scan missed: fetch, then verify
            answers |= await fetch_keys(resolver, outcome, limits.timeout_s)
            outcome = await off_loop(functools.partial(verify, answers))
            assert not isinstance(outcome, list)
    except TimeoutError:  # the verification itself got stuck (postel.dkim.runner)
        log.error("dkim.verify.timeout")
        return [_failed_result("verification did not finish in time")]
    except WorkerLost:  # the message ended two verification workers
        log.error("dkim.verify.worker_lost")
        return [_failed_result("verification failed")]
    results, ignored = outcome
    if ignored:
        log.info("dkim.signatures.ignored", extra={"ignored": ignored})
        results.append(_ignored_result(ignored, limits.signatures))
    return results


def _usable_key_name(value: bytes) -> str | None:
    """The key name of a DKIM-Signature field value whose tags name a key that could
    verify it (required tags present, v=1, a supported algorithm, a well-formed d= and
    s=), else None: a signature with such a problem is never looked up. The full
    checks run with the verification. Spec: RFC 6376 §3.5, §6.1.1; RFC 8301 §3.1."""
    try:
        tags = parse_tag_value(value)
    except InvalidTagValueList:
        return None
    if any(tag not in tags for tag in _REQUIRED_TAGS) or tags[b"v"] != b"1":
        return None
    if tags[b"a"] not in _ALGORITHMS or tags.get(b"q", b"dns/txt") != b"dns/txt":
        return None
    domain, selector = _text(tags[b"d"]), _text(tags[b"s"])
    if not is_domain_name(domain):
        return None
    if not is_selector(selector):
        return None
    return key_name(selector, domain)


def _parse_and_verify(
    message: bytes, bound: int, now: int, answers: Mapping[str, KeyAnswer]
) -> tuple[list[DkimResult], int] | list[str]:
    """Parse, check and verify (worker): the results and the count of signatures past
    ``bound``, or the key names missing from ``answers``."""
    parsed = _parse(message, bound, now)
    if isinstance(parsed, DkimResult):
        return [parsed], 0
    verifier, signatures, ignored = parsed
    missing = [s.key_name for s in signatures if s.problem is None and s.key_name not in answers]
    if missing:
        return missing
    return _verify_all(verifier, signatures, answers), ignored


def _failed_result(reason: str) -> DkimResult:
    return DkimResult(DkimStatus.TEMPERROR, "", "", "", "", "", None, False, False, reason)


def _ignored_result(ignored: int, bound: int) -> DkimResult:
    return DkimResult(
        DkimStatus.POLICY,
        "",
        "",
        "",
        "",
        "",
        None,
        False,
        False,
        f"{ignored} more DKIM-Signature field(s) not evaluated (at most {bound})",
    )


def _parse(message: bytes, bound: int, now: int) -> tuple[Any, list[_Signature], int] | DkimResult:
    """Parse the message and check the first ``bound`` signatures' tags (thread)."""
    try:
        verifier = dkim.DKIM(message, minkey=DKIM_RSA_BITS_MIN)
    except dkim.DKIMException as exc:
        if b"dkim-signature" not in message.lower().split(b"\r\n\r\n", 1)[0]:
            return DkimResult(DkimStatus.NONE, "", "", "", "", "", None, False, False, "not signed")
        return DkimResult(
            DkimStatus.PERMERROR, "", "", "", "", "", None, False, False, f"message: {exc}"
        )
    fields = [bytes(value) for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    signatures = [_check_signature(index, value, now) for index, value in enumerate(fields[:bound])]
    return verifier, signatures, max(0, len(fields) - bound)


def _unspaced(value: bytes) -> bytes:
    """``value`` without its whitespace (``bytes.split`` splits on exactly ``\\s``)."""
    return b"".join(value.split())


def _text(value: bytes) -> str:
    return _unspaced(value).decode("utf-8", "replace")


def _check_signature(index: int, value: bytes, now: int) -> _Signature:
    """Tag checks of one DKIM-Signature. Spec: RFC 6376 §3.5, §6.1.1; RFC 8301 §3.1."""
    try:
        tags: dict[bytes, bytes] = parse_tag_value(value)
    except InvalidTagValueList as exc:
        syntax = (DkimStatus.NEUTRAL, f"tag list syntax error: {exc}")
        return _Signature(index, {}, "", "", "", "", "", syntax, "")
    domain = _text(tags.get(b"d", b""))
    selector = _text(tags.get(b"s", b""))
    identity = _text(tags[b"i"]) if b"i" in tags else (f"@{domain}" if domain else "")
    header_b = _text(tags.get(b"b", b""))[:HEADER_B_CHARS]
    problem = _tag_problem(tags, domain, selector, identity, now)
    return _Signature(
        index,
        tags,
        domain,
        selector,
        _text(tags.get(b"a", b"")),
        identity,
        header_b,
        problem,
        key_name(selector, domain),
    )


def _tag_problem(
    tags: Mapping[bytes, bytes], domain: str, selector: str, identity: str, now: int
) -> tuple[DkimStatus, str] | None:
    missing = [tag.decode() for tag in _REQUIRED_TAGS if tag not in tags]
    if missing:
        return DkimStatus.NEUTRAL, f"missing required tag(s) {', '.join(missing)}="
    syntax = _syntax_problem(tags, domain, selector)
    if syntax is not None:
        return DkimStatus.NEUTRAL, syntax
    policy = _policy_problem(tags, domain, identity, now)
    if policy is not None:
        return DkimStatus.PERMERROR, policy
    return None


def _syntax_problem(tags: Mapping[bytes, bytes], domain: str, selector: str) -> str | None:
    """Malformed tag values. Spec: RFC 6376 §3.5."""
    if not _BASE64.fullmatch(tags[b"b"]) or not _BASE64.fullmatch(tags[b"bh"]):
        return "b= or bh= is not base64"
    b, bh = _unspaced(tags[b"b"]), _unspaced(tags[b"bh"])
    if not b or not bh:
        return "b= or bh= is empty"
    try:
        base64.b64decode(b, validate=True)
        base64.b64decode(bh, validate=True)
    except (binascii.Error, ValueError):
        return "b= or bh= is not base64"
    if not is_domain_name(domain):
        return "d= is not a domain name"
    if not is_selector(selector):
        return "s= is not a selector"
    try:
        CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    except InvalidCanonicalizationPolicyError:
        return "c= is not a known canonicalization"
    for tag in (b"l", b"t", b"x"):
        if tag in tags and not _DIGITS.match(tags[tag]):
            return f"{tag.decode()}= is not a decimal number"
    return None


def _policy_problem(
    tags: Mapping[bytes, bytes], domain: str, identity: str, now: int
) -> str | None:
    """Well-formed but unusable signatures. Spec: RFC 6376 §3.5, §6.1.1; RFC 8301 §3.1."""
    if tags[b"v"] != b"1":
        return "incompatible version (v= is not 1)"
    if tags[b"a"] == b"rsa-sha1":
        return "rsa-sha1 signatures are not valid (RFC 8301 §3.1)"
    if tags[b"a"] not in _ALGORITHMS:
        return f"unsupported algorithm {_text(tags[b'a'])}"
    if b"q" in tags and tags[b"q"] != b"dns/txt":
        return "unsupported query method (q= is not dns/txt)"
    signed = [name.strip().lower() for name in tags[b"h"].split(b":")]
    if b"from" not in signed:
        return "From field not signed"
    i_domain = identity.rpartition("@")[2]
    if b"i" in tags and not (
        i_domain.lower() == domain.lower() or i_domain.lower().endswith("." + domain.lower())
    ):
        return "i= domain is not d= or below it"
    t_sign = int(tags[b"t"]) if b"t" in tags else None
    if t_sign is not None and t_sign > now + DKIM_FUTURE_SKEW_S:
        return "signature timestamp (t=) in the future"
    if b"x" in tags:
        expires = int(tags[b"x"])
        if t_sign is not None and expires < t_sign:
            return "x= is before t="
        if expires < now:
            return "signature expired (x=)"
    return None


def _verify_all(
    verifier: Any, signatures: list[_Signature], answers: Mapping[str, KeyAnswer]
) -> list[DkimResult]:
    """Evaluate every checked signature (thread)."""
    return [_verify_one(verifier, sig, answers.get(sig.key_name)) for sig in signatures]


def _verify_one(verifier: Any, sig: _Signature, answer: KeyAnswer | None) -> DkimResult:
    limited = b"l" in sig.tags
    beyond = limited and sig.problem is None and _content_beyond_l(verifier, sig.tags)
    key_bits: int | None = None
    if sig.problem is not None:
        status, reason = sig.problem
    elif answer is None:
        status, reason = DkimStatus.PERMERROR, "no key record"
    elif answer.status is not None:
        status, reason = answer.status, answer.reason
    else:
        key = _select_key(sig, answer.records)
        if isinstance(key, str):
            status, reason = DkimStatus.PERMERROR, key
        else:
            record, key_bits = key
            status, reason = _run_dkimpy(verifier, sig, record)
    return DkimResult(
        status,
        sig.domain,
        sig.selector,
        sig.algorithm,
        sig.header_i,
        sig.header_b,
        key_bits,
        limited,
        beyond,
        reason,
    )


def _content_beyond_l(verifier: Any, tags: Mapping[bytes, bytes]) -> bool:
    """Whether the canonicalized body is longer than l=. Spec: RFC 6376 §3.4.5, §8.2."""
    policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    body: bytes = policy.canonicalize_body(verifier.body)
    return len(body) > int(tags[b"l"])


def _select_key(sig: _Signature, records: tuple[bytes, ...]) -> tuple[bytes, int] | str:
    """The first record that is a usable key for ``sig``, with its size in bits, or why
    none is. Spec: RFC 6376 §3.6.1, §3.6.2.2, §6.1.2; RFC 8301 §3.2; RFC 8463 §4."""
    problem = "no key record"
    for record in records:
        found = check_key(record, _ALGORITHMS[sig.tags[b"a"]], sig.domain, sig.header_i)
        if not isinstance(found, str):
            return record, found
        problem = found
    return problem


def check_key(record: bytes, key_type: bytes, domain: str, identity: str) -> int | str:
    """The size in bits of the key in ``record`` (a key record's TXT value) if it can
    verify a ``key_type`` (``rsa`` or ``ed25519``) signature of ``domain`` for
    ``identity``, else why not. Spec: RFC 6376 §3.6.1, §6.1.2; RFC 8301 §3.2."""
    try:
        tags: dict[bytes, bytes] = parse_tag_value(record)
    except InvalidTagValueList as exc:
        return f"key record syntax error: {exc}"
    if not tags.get(b"p", b"").strip():
        return "key revoked (empty p=)"
    if tags.get(b"k", b"rsa") != key_type:
        return f"key type {_text(tags.get(b'k', b'rsa'))} does not match the algorithm"
    if b"h" in tags and b"sha256" not in [h.strip() for h in tags[b"h"].split(b":")]:
        return "key does not allow sha256 (h=)"
    flags = [flag.strip() for flag in tags.get(b"t", b"").split(b":")]
    if b"s" in flags and identity.rpartition("@")[2].lower() != domain.lower():
        return "key requires i= domain to equal d= (t=s)"
    try:
        _pk, bits, _ktag, tlsrpt = dkim.evaluate_pk("", record)
    except (dkim.DKIMException, binascii.Error, ValueError, TypeError) as exc:
        return f"key record unusable: {exc}"
    if tlsrpt:
        return "key is for TLS reports only (s=tlsrpt)"
    if key_type == b"rsa" and int(bits) < DKIM_RSA_BITS_MIN:
        return f"RSA key of {bits} bits is below {DKIM_RSA_BITS_MIN} (RFC 8301 §3.2)"
    if key_type == b"rsa" and int(bits) > DKIM_RSA_BITS_MAX:
        return f"RSA key of {bits} bits is above {DKIM_RSA_BITS_MAX}"
    return int(bits)


def _run_dkimpy(verifier: Any, sig: _Signature, record: bytes) -> tuple[DkimStatus, str]:
    """dkimpy's verification of signature ``sig.index`` with ``record`` as its key.
    Spec: RFC 6376 §6.1.3."""
    dnsfunc = answering_dnsfunc({sig.key_name: record})
    try:
        valid = verifier.verify(idx=sig.index, dnsfunc=dnsfunc)
    except dkim.DKIMException as exc:
        text = str(exc)
        if text.startswith("body hash mismatch"):
            return DkimStatus.FAIL, "body hash did not verify"
        return DkimStatus.PERMERROR, text
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        return DkimStatus.PERMERROR, f"signature unusable: {exc}"
    if valid:
        return DkimStatus.PASS, "signature verified"
    return DkimStatus.FAIL, "signature did not verify"
