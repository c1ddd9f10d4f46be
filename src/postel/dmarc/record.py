"""DMARC Policy Records: recognising one among TXT records and parsing its tags.

Pure: no I/O. A record is a DMARC Policy Record when its first tag is ``v=DMARC1``;
anything else is not one and ``parse_record`` raises ``DmarcRecordError`` for it, as it
does for a record beyond the length bound. Inside a DMARC record, unknown tags are
ignored and a tag whose value does not follow its rule falls back to its default (or
is ignored), as DMARCbis §4.8 requires. An invalid ``p``, ``sp`` or ``np`` follows
§4.10.1: with at least one valid ``rua`` URI the record acts as ``p=none``, otherwise
the record applies no DMARC processing (``DmarcRecord.p`` is None).

The RFC 7489 tags that DMARCbis removed (``pct``, ``rf``, ``ri``; §C.5.2) are still
read: ``pct=0`` in a record without a ``t`` tag means ``t=y`` (§A.6 calls ``t=y``/``t=n``
the analogues of ``pct=0``/``pct=100``); other ``pct`` values are kept but not applied.

Section numbers are those of draft-ietf-dmarc-dmarcbis-41, the text that became
RFC 9989 (RFC 9989 replaces RFC 7489 and RFC 9091).

Spec: RFC 9989 (draft-ietf-dmarc-dmarcbis-41 §4.7, §4.8, §4.10.1, §A.6, §C.5);
RFC 7489 §6.3 (pct, rf, ri).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from postel.errors import PostelError, ProtocolError

# --- Bounds ----------------------------------------------------------------------------
DMARC_RECORD_LENGTH_MAX = 4096
"""Characters of one DMARC Policy Record parsed; a longer one raises ``DmarcRecordError``.
Postel policy: DMARCbis sets no limit; real records stay under 1 KB and one 1232-octet
EDNS answer (RFC 6891 §6.2.5) holds about 1 KB of TXT data. Spec: DMARCbis §4.5."""
DMARC_REPORT_URIS_MAX = 16
"""Reporting URIs kept per ``rua``/``ruf`` tag; later ones are ignored. Postel policy:
RFC 7489 §6.2 required support for at least two; DMARCbis §C.7 asks for a report to
each listed URI without a bound."""
DMARC_TAGS_MAX = 64
"""Tags read from one record; later ones are ignored. Postel policy: DMARCbis defines
eleven tags (§4.7) and unknown tags are ignored (§4.8)."""

DMARC_VERSION = "DMARC1"
"""The only value of the ``v`` tag, compared case-sensitively. Spec: DMARCbis §4.7."""


class DmarcError(PostelError):
    """Root of DMARC errors; ``reason`` is a short text for logs. Spec: DMARCbis §5.3.6."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DmarcRecordError(DmarcError, ProtocolError):
    """Text that is not a DMARC Policy Record (no leading ``v=DMARC1``) or that exceeds
    ``DMARC_RECORD_LENGTH_MAX``. Spec: DMARCbis §4.7 (the ``v`` tag), §4.10 step 2."""


class Policy(StrEnum):
    """A Domain Owner Assessment Policy (``p``, ``sp``, ``np``). Spec: DMARCbis §4.7."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class AlignmentMode(StrEnum):
    """Identifier Alignment mode (``adkim``, ``aspf``). Spec: DMARCbis §4.4, §4.7."""

    RELAXED = "r"
    STRICT = "s"


class PsdFlag(StrEnum):
    """The ``psd`` tag: a Public Suffix Domain (y), an Organizational Domain (n) or
    unknown (u, the default). Spec: DMARCbis §4.7, §4.10."""

    YES = "y"
    NO = "n"
    UNKNOWN = "u"


class FailureOption(StrEnum):
    """One ``fo`` value: failure report when all (0) or any (1) mechanism fails to give
    an aligned pass, on DKIM (d) or SPF (s) failure. Spec: DMARCbis §4.7."""

    ALL = "0"
    ANY = "1"
    DKIM = "d"
    SPF = "s"


@dataclass(frozen=True, slots=True)
class ReportUri:
    """One DMARC Reporting URI: ``uri`` as published without the obsolete ``!size``
    suffix, ``scheme`` lower-cased (``mailto``, ``https`` ...).

    Spec: DMARCbis §4.6, §4.8 (dmarc-uri, obs-dmarc-uri); RFC 3986 §3.
    """

    uri: str
    scheme: str


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """A parsed DMARC Policy Record.

    ``p`` is the Domain Owner Assessment Policy (``Policy.NONE`` when the tag is
    absent; None when an invalid ``p``/``sp``/``np`` leaves the record without a usable
    policy, so DMARC does not apply). ``sp``/``np`` are None when absent (or dropped by
    the ``policy_fallback``). ``testing`` is ``t=y`` (or ``pct=0`` without ``t``).
    ``policy_fallback`` is True when an invalid policy tag was replaced by ``p=none``
    because ``rua`` holds a valid URI. ``pct``, ``rf`` and ``ri`` are the RFC 7489 tags,
    None when absent or invalid.

    Spec: DMARCbis §4.7, §4.10.1, §A.6; RFC 7489 §6.3.
    """

    p: Policy | None
    sp: Policy | None = None
    np: Policy | None = None
    adkim: AlignmentMode = AlignmentMode.RELAXED
    aspf: AlignmentMode = AlignmentMode.RELAXED
    testing: bool = False
    psd: PsdFlag = PsdFlag.UNKNOWN
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    fo: frozenset[FailureOption] = frozenset({FailureOption.ALL})
    policy_fallback: bool = False
    pct: int | None = None
    rf: tuple[str, ...] | None = None
    ri: int | None = None

    @property
    def applies(self) -> bool:
        """True when the record carries a usable policy. Spec: DMARCbis §4.10.1."""
        return self.p is not None


_VERSION = re.compile(r"[ \t]*[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|\Z)")
_TAG = re.compile(r"([A-Za-z]+)[ \t]*=[ \t]*(.*)", re.DOTALL)
_URI_SEP = re.compile(r"[ \t]*,[ \t]*")
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):[\x21-\x7e]+")
_OBS_SIZE = re.compile(r"!\d+[kmgtKMGT]?\Z")
_PCT = re.compile(r"\d{1,3}")
_RI = re.compile(r"\d{1,10}")
_RF = re.compile(r"[A-Za-z0-9\-]+(?::[A-Za-z0-9\-]+)*")
_UINT32_MAX = 2**32 - 1
_POLICY_TAGS = ("p", "sp", "np")


def is_dmarc_record(text: str | bytes) -> bool:
    """True when ``text`` starts with the ``v=DMARC1`` tag (WSP around ``=`` allowed).

    Spec: DMARCbis §4.7 (``v`` MUST be the first tag), §4.8 (dmarc-version), §4.10 step 2.
    """
    return _VERSION.match(_text(text)) is not None


def parse_record(text: str | bytes) -> DmarcRecord:
    """Parse one DMARC Policy Record (a TXT record's strings already concatenated).

    Raises ``DmarcRecordError`` when the text does not start with ``v=DMARC1`` or is
    longer than ``DMARC_RECORD_LENGTH_MAX``; never for anything inside the record.

    Spec: DMARCbis §4.7, §4.8, §4.10.1, §A.6; RFC 7489 §6.3.
    """
    value = _text(text)
    if len(value) > DMARC_RECORD_LENGTH_MAX:
        raise DmarcRecordError(f"DMARC record longer than {DMARC_RECORD_LENGTH_MAX} characters")
    if not is_dmarc_record(value):
        raise DmarcRecordError("not a DMARC record: the first tag is not v=DMARC1")
    tags = _tags(value)
    return _build(tags)


def _text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    return text


def _tags(value: str) -> dict[str, str]:
    """Tag name (lower case) -> raw value for every ``name=value`` after ``v``; the first
    occurrence of a repeated tag wins. Values are checked by each tag's own rule."""
    tags: dict[str, str] = {}
    for part in value.split(";", DMARC_TAGS_MAX + 1)[1 : DMARC_TAGS_MAX + 1]:
        match = _TAG.fullmatch(part.strip(" \t"))
        if match is None:
            continue
        name, tag_value = match.group(1).lower(), match.group(2)
        if name not in tags:
            tags[name] = tag_value
    return tags


def _build(tags: dict[str, str]) -> DmarcRecord:
    rua = _uri_list(tags.get("rua"))
    policies = {name: _policy(tags.get(name)) for name in _POLICY_TAGS}
    invalid = any(name in tags and policies[name] is None for name in _POLICY_TAGS)
    fallback = invalid and bool(rua)
    if invalid:
        p: Policy | None = Policy.NONE if fallback else None
        sp = np = None
    else:
        p = policies["p"] if "p" in tags else Policy.NONE
        sp, np = policies["sp"], policies["np"]
    pct = _pct(tags.get("pct"))
    testing_tag = _choice(tags.get("t"), {"y": True, "n": False})
    testing = testing_tag if testing_tag is not None else pct == 0
    return DmarcRecord(
        p=p,
        sp=sp,
        np=np,
        adkim=_choice(tags.get("adkim"), _MODES) or AlignmentMode.RELAXED,
        aspf=_choice(tags.get("aspf"), _MODES) or AlignmentMode.RELAXED,
        testing=testing,
        psd=_choice(tags.get("psd"), _PSD) or PsdFlag.UNKNOWN,
        rua=rua,
        ruf=_uri_list(tags.get("ruf")),
        fo=_failure_options(tags.get("fo")),
        policy_fallback=fallback,
        pct=pct,
        rf=_rf(tags.get("rf")),
        ri=_ri(tags.get("ri")),
    )


_MODES = {"r": AlignmentMode.RELAXED, "s": AlignmentMode.STRICT}
_PSD = {"y": PsdFlag.YES, "n": PsdFlag.NO, "u": PsdFlag.UNKNOWN}


_T = TypeVar("_T")


def _choice(value: str | None, table: dict[str, _T]) -> _T | None:
    if value is None:
        return None
    return table.get(value.strip(" \t").lower())


def _policy(value: str | None) -> Policy | None:
    """dmarc-request, case-insensitive as ABNF literals are. Spec: DMARCbis §4.8."""
    return _choice(value, {member.value: member for member in Policy})


def _uri_list(value: str | None) -> tuple[ReportUri, ...]:
    """Valid URIs of a dmarc-urilist; invalid ones are ignored. Spec: DMARCbis §4.7, §4.8."""
    if value is None:
        return ()
    uris: list[ReportUri] = []
    for item in _URI_SEP.split(value.strip(" \t")):
        uri = _OBS_SIZE.sub("", item)
        match = _URI.fullmatch(uri)
        if match is None or "," in uri or "!" in uri:
            continue
        uris.append(ReportUri(uri=uri, scheme=match.group(1).lower()))
        if len(uris) == DMARC_REPORT_URIS_MAX:
            break
    return tuple(uris)


def _failure_options(value: str | None) -> frozenset[FailureOption]:
    """dmarc-fo: 0 and 1 exclusive, each value at most once; otherwise the default 0.

    Spec: DMARCbis §4.7, §4.8.
    """
    default = frozenset({FailureOption.ALL})
    if value is None:
        return default
    items = [item.strip(" \t").lower() for item in value.split(":")]
    known = {member.value: member for member in FailureOption}
    if any(item not in known for item in items) or len(set(items)) != len(items):
        return default
    options = frozenset(known[item] for item in items)
    if {FailureOption.ALL, FailureOption.ANY} <= options:
        return default
    return options


def _pct(value: str | None) -> int | None:
    """RFC 7489 pct: an integer 0-100, else ignored. Spec: RFC 7489 §6.3; DMARCbis §A.6."""
    if value is None or _PCT.fullmatch(value.strip(" \t")) is None:
        return None
    number = int(value)
    return number if number <= 100 else None


def _ri(value: str | None) -> int | None:
    """RFC 7489 ri: a 32-bit unsigned integer of seconds. Spec: RFC 7489 §6.3."""
    if value is None or _RI.fullmatch(value.strip(" \t")) is None:
        return None
    number = int(value)
    return number if number <= _UINT32_MAX else None


def _rf(value: str | None) -> tuple[str, ...] | None:
    """RFC 7489 rf: colon-separated report format keywords. Spec: RFC 7489 §6.3."""
    if value is None or _RF.fullmatch(value.strip(" \t")) is None:
        return None
    return tuple(item.lower() for item in value.strip(" \t").split(":"))
