"""ARC (Authenticated Received Chain) with dkimpy: validating the chain of a received
message, and sealing a message that postel forwards.

Validation fetches the keys named by every ARC-Seal and ARC-Message-Signature through
postel's own asynchronous resolver, then lets dkimpy validate the chain in a worker
thread, answering its DNS questions from what was fetched. Sealing adds the next ARC
Set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) for the results
postel computed. ARC signs with ``rsa-sha256`` only (RFC 8617 §4.1.3 via RFC 6376).

Spec: RFC 8617 §4, §5.1 (sealing), §5.2 (validation); RFC 8601 §2.7.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dkim.util import InvalidTagValueList

import dkim
from postel.clock import Clock, SystemClock
from postel.dkim.accel import parse_tag_value
from postel.dkim.keys import DkimKey, KeyAlgorithm
from postel.dkim.sign import OVERSIGNED, SIGNED_HEADERS
from postel.dkim.verify import (
    DKIM_KEY_LOOKUP_TIMEOUT_S,
    DKIM_RSA_BITS_MIN,
    DkimStatus,
    KeyAnswer,
    TxtResolver,
    answering_dnsfunc,
    fetch_keys,
    key_name,
)
from postel.errors import PermanentFailure
from postel.mail.header import HeaderBlock, split_header

# --- Bounds (owned by the dkim package) ----------------------------------------------
ARC_INSTANCES_MAX = 50
"""ARC Sets a chain may have; more is a failed chain. Spec: RFC 8617 §4.2.1 (i= is
1 to 50), §5.1.1 (a sealer does not go past 50)."""
ARC_FIELDS_MAX = 3 * ARC_INSTANCES_MAX
"""ARC header fields examined; a message with more has a failed chain.
Spec: RFC 8617 §4.1 (three fields per ARC Set), §4.2.1."""
ARC_KEY_LOOKUPS_MAX = 10
"""Distinct key records fetched per chain (a chain usually reuses a few keys); a
signature whose key is past the bound does not validate. Postel policy; spec:
RFC 6376 §8.4 (bounded work per message), RFC 8617 §9.4 (DNS load)."""
ARC_KEY_LOOKUP_TIMEOUT_S = DKIM_KEY_LOOKUP_TIMEOUT_S
"""Seconds allowed for one key record lookup. Spec: RFC 6376 §6.1.2."""

log = logging.getLogger(__name__)

_ARC_FIELDS = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")
_SIGNED_FIELDS = (b"arc-seal", b"arc-message-signature")
_CONTROL = re.compile(r"[\x00\r\n]")
_AUTHENTICATION_RESULTS = b"authentication-results"


class ChainValidation(StrEnum):
    """The chain validation status ``cv``, also the Authentication-Results ``arc``
    result. Spec: RFC 8617 §4.1.3, §5.2, §7.2."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"


class ArcSealError(PermanentFailure):
    """No ARC Set can be added: the key is not RSA, the results text is unusable, the
    chain is at its 50th instance, or the results carry no ``arc=`` result for a
    message that has a chain. Spec: RFC 8617 §5.1."""


@dataclass(frozen=True, slots=True)
class ArcSetResult:
    """What validating one ARC Set found: its ``instance`` (i=), the ARC-Seal's
    ``seal_domain``/``seal_selector`` and whether it validated (``seal_valid``), its
    ``cv`` (None when not one of none/pass/fail), and the same for the
    ARC-Message-Signature (``ams_*``). Spec: RFC 8617 §4.1, §5.2."""

    instance: int
    seal_domain: str
    seal_selector: str
    seal_valid: bool
    cv: ChainValidation | None
    ams_domain: str
    ams_selector: str
    ams_valid: bool


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The chain validation of one message.

    ``cv`` none (no ARC Set), pass or fail; ``instances`` the highest instance found
    (0 when none); ``oldest_pass`` when ``cv`` is pass: 0 if every
    ARC-Message-Signature validates, else the instance of the oldest one that still
    does, with ``oldest_pass_domain`` the d= of that instance's ARC-Message-Signature
    (instance 1 when ``oldest_pass`` is 0); ``sets`` per-instance detail, newest first
    (empty when dkimpy stopped before validating). ``dns_temporary_failure`` is True
    when a key lookup failed temporarily, so a ``fail`` may be worth retrying later
    (ARC has no temperror result). ``reason`` is a short text for logs.

    Spec: RFC 8617 §5.2, §7.2 (arc.oldest-pass); RFC 8601 §2.7.
    """

    cv: ChainValidation
    instances: int
    oldest_pass: int | None
    oldest_pass_domain: str | None
    sets: tuple[ArcSetResult, ...]
    dns_temporary_failure: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Chain:
    """The parsed message (a dkimpy ARC object) and the key names to fetch."""

    arc: Any
    key_names: tuple[str, ...]


# --- Validation ------------------------------------------------------------------------
async def verify_arc(
    message: bytes, resolver: TxtResolver, header: HeaderBlock | None = None
) -> ArcResult:
    """Validate the ARC chain of ``message`` (the whole message as received).

    Key records come only from ``resolver`` (at most ``ARC_KEY_LOOKUPS_MAX`` distinct
    names, each within ``ARC_KEY_LOOKUP_TIMEOUT_S``); parsing and cryptography run in
    worker threads (``header``: ``message``'s header section when the caller has
    already split it). A chain whose newest ARC-Seal says ``cv=fail`` is ``fail``. Never
    raises for bad input or DNS trouble: that is in the result.

    Spec: RFC 8617 §5.2; RFC 8301 §3.2 (keys of at least 1024 bits).
    """
    header = header or split_header(message)
    if not carries_arc_fields(header):
        return _result(ChainValidation.NONE, "message has no ARC Set")
    chain = await asyncio.to_thread(_parse_chain, message)
    if isinstance(chain, ArcResult):
        return chain
    answers = await fetch_keys(resolver, list(chain.key_names), ARC_KEY_LOOKUP_TIMEOUT_S)
    temporary = any(answer.status is DkimStatus.TEMPERROR for answer in answers.values())
    records = {name: _first_record(answer) for name, answer in answers.items()}
    usable = {name: record for name, record in records.items() if record is not None}
    result = await asyncio.to_thread(_validate, chain.arc, usable, temporary)
    log.debug("arc.validated", extra={"cv": result.cv.value, "instances": result.instances})
    return result


def carries_arc_fields(header: HeaderBlock) -> bool:
    """Whether ``header`` has any ARC field (else the chain is ``none`` without any
    work). Spec: RFC 8617 §4.1, §5.2 step 1."""
    return any(f.name.lower() in _ARC_FIELDS for f in header.fields)


def _result(cv: ChainValidation, reason: str, instances: int = 0) -> ArcResult:
    return ArcResult(cv, instances, None, None, (), False, reason)


def _parse_chain(message: bytes) -> _Chain | ArcResult:
    """Parse the message and name the keys to fetch (thread). Spec: RFC 8617 §4.1."""
    try:
        arc = dkim.ARC(message, minkey=DKIM_RSA_BITS_MIN)
    except dkim.DKIMException as exc:
        if b"arc-" in message.lower().split(b"\r\n\r\n", 1)[0]:
            return _result(ChainValidation.FAIL, f"message: {exc}")
        return _result(ChainValidation.NONE, "message has no ARC Set")
    fields = [(bytes(n).lower(), bytes(v)) for n, v in arc.headers if n.lower() in _ARC_FIELDS]
    if not fields:
        return _result(ChainValidation.NONE, "message has no ARC Set")
    if len(fields) > ARC_FIELDS_MAX:
        return _result(ChainValidation.FAIL, f"more than {ARC_FIELDS_MAX} ARC header fields")
    names: list[str] = []
    for name, value in fields:
        if name not in _SIGNED_FIELDS:
            continue
        try:
            tags: dict[bytes, bytes] = parse_tag_value(value)
        except InvalidTagValueList:
            continue
        selector = tags.get(b"s", b"").strip().decode("utf-8", "replace")
        domain = tags.get(b"d", b"").strip().decode("utf-8", "replace")
        if selector and domain and key_name(selector, domain) not in names:
            names.append(key_name(selector, domain))
    if len(names) > ARC_KEY_LOOKUPS_MAX:
        log.info("arc.key_lookups.bounded", extra={"names": len(names)})
    return _Chain(arc, tuple(names[:ARC_KEY_LOOKUPS_MAX]))


def _first_record(answer: KeyAnswer) -> bytes | None:
    """The first record that is an RSA key dkimpy can load, else the first record
    (which then fails to load). Spec: RFC 6376 §3.6.2.2."""
    for record in answer.records:
        try:
            _pk, _bits, ktag, _tlsrpt = dkim.evaluate_pk("", record)
        except (dkim.DKIMException, ValueError, TypeError):
            continue
        if ktag == b"rsa":
            return record
    return answer.records[0] if answer.records else None


def _validate(arc: Any, records: dict[str, bytes], temporary: bool) -> ArcResult:
    """dkimpy's chain validation (thread). Spec: RFC 8617 §5.2."""
    try:
        cv, data, reason = arc.verify(dnsfunc=answering_dnsfunc(records))
    except (dkim.DKIMException, ValueError, TypeError, IndexError, KeyError) as exc:
        return ArcResult(ChainValidation.FAIL, 0, None, None, (), temporary, str(exc))
    sets = tuple(_set_result(item) for item in data)
    instances = max((item.instance for item in sets), default=0)
    # cv None: a seal said cv=fail, so the chain is terminated and failed.
    status = ChainValidation.FAIL if cv is None else ChainValidation(bytes(cv).decode("ascii"))
    oldest, domain = _oldest_pass(sets) if status is ChainValidation.PASS else (None, None)
    return ArcResult(status, instances, oldest, domain, sets, temporary, str(reason))


def _set_result(item: dict[str, Any]) -> ArcSetResult:
    cv_value = item.get("cv")
    cv: ChainValidation | None = None
    if isinstance(cv_value, bytes) and cv_value.decode("ascii", "replace") in set(ChainValidation):
        cv = ChainValidation(cv_value.decode("ascii"))
    return ArcSetResult(
        instance=int(item["instance"]),
        seal_domain=_decode(item.get("as-domain")),
        seal_selector=_decode(item.get("as-selector")),
        seal_valid=bool(item.get("as-valid", False)),
        cv=cv,
        ams_domain=_decode(item.get("ams-domain")),
        ams_selector=_decode(item.get("ams-selector")),
        ams_valid=bool(item.get("ams-valid", False)),
    )


def _decode(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _oldest_pass(sets: tuple[ArcSetResult, ...]) -> tuple[int, str | None]:
    """From the newest AMS down: 0 if all validate, else the oldest instance of the
    unbroken run that does. Spec: RFC 8617 §5.2 step 5."""
    oldest = 0
    for item in sets:  # newest first
        if not item.ams_valid:
            oldest = item.instance + 1
            break
    wanted = max(oldest, 1)
    domain = next((item.ams_domain for item in sets if item.instance == wanted), None)
    return oldest, domain


# --- Sealing ---------------------------------------------------------------------------
def seal_message(
    message: bytes,
    key: DkimKey,
    *,
    authserv_id: str,
    results: str,
    clock: Clock | None = None,
    signed_headers: Sequence[bytes] | None = None,
    canonical_layout: bool = False,
) -> bytes:
    """The next ARC Set for ``message``: ``ARC-Seal``, ``ARC-Message-Signature`` and
    ``ARC-Authentication-Results`` header fields, in that order, each CRLF-terminated,
    to prepend to the message as it will be forwarded.

    ``results`` is the Authentication-Results text after the authserv-id (e.g.
    ``"arc=pass; spf=pass smtp.mailfrom=a.example; dkim=pass header.d=a.example"``);
    its ``arc=`` result (from ``verify_arc``) becomes the seal's cv, none when absent.
    Authentication-Results fields already in the message are not consolidated.
    ``signed_headers`` the AMS h= list (default: postel's signing list, over-signed);
    ``clock`` gives t= (default: the system clock); ``canonical_layout`` writes the tags
    sorted and unfolded as the ARC test suite expects. CPU-bound (RSA): run it in a
    worker thread. Raises ``ArcSealError``.

    Spec: RFC 8617 §4.1, §5.1; RFC 8601 §2.2 (results syntax).
    """
    if key.algorithm is not KeyAlgorithm.RSA:
        raise ArcSealError("ARC seals with rsa-sha256 only (RFC 8617 §4.1.3)")
    if _CONTROL.search(authserv_id) or _CONTROL.search(results) or not authserv_id.strip():
        raise ArcSealError("authserv-id and results must be non-empty single-line text")
    arc = dkim.ARC(message, linesep=b"\r\n")
    arc.headers = [
        [b"Authentication-Results", f" {authserv_id}; {results}\r\n".encode()],
        *(field for field in arc.headers if field[0].lower() != _AUTHENTICATION_RESULTS),
    ]
    include = list(signed_headers or (*SIGNED_HEADERS, *OVERSIGNED))
    timestamp = int((clock or SystemClock()).now().timestamp())
    try:
        fields = arc.sign(
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.private_pem,
            authserv_id.encode(),
            include_headers=include,
            timestamp=timestamp,
            standardize=canonical_layout,
        )
    except (dkim.DKIMException, ValueError, UnicodeError) as exc:
        raise ArcSealError(f"ARC sealing failed: {exc}") from exc
    if not fields:
        raise ArcSealError(
            "no ARC Set added: the results do not parse, or carry no arc= result for a "
            "message with an ARC chain"
        )
    return b"".join(bytes(field) for field in fields)
