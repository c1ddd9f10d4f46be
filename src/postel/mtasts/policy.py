"""Other domains' MTA-STS policies without I/O: the ``_mta-sts`` TXT record, the policy
file and MX pattern matching.

Bounds defined here (RFC 8461 unless marked local policy): ``POLICY_SIZE_MAX`` (64 KiB,
§3.3), ``MAX_AGE_MAX`` (31557600 s, §3.2), ``POLICY_ID_MAX`` (32 characters, §3.1),
``MX_NAME_MAX`` (253 characters, RFC 1035 §2.3.4), ``POLICY_MX_MAX`` (local policy),
``TXT_RECORD_MAX`` (local policy).

Spec: RFC 8461 §3.1 (TXT record), §3.2 (policy file), §3.3 (HTTPS), §4.1 (MX matching).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from postel.errors import MtaStsError

POLICY_SIZE_MAX = 64 * 1024
"""Octets of a policy file read at most. Spec: RFC 8461 §3.3 (64 KiB limit advised)."""
MAX_AGE_MAX = 31_557_600
"""Largest ``max_age`` in seconds (about one year). Spec: RFC 8461 §3.2."""
POLICY_ID_MAX = 32
"""Characters of an ``id`` in the TXT record. Spec: RFC 8461 §3.1 (1*32 ALPHA/DIGIT)."""
MX_NAME_MAX = 253
"""Characters of an ``mx`` pattern (``*`` counting as a label), without a trailing dot:
a domain name is at most 255 octets in wire form. Spec: RFC 1035 §2.3.4; RFC 8461 §3.2
(sv-mx is a Domain)."""
POLICY_MX_MAX = 100
"""``mx`` lines kept from one policy (local policy; an MX RRset is far smaller)."""
TXT_RECORD_MAX = 1024
"""Octets of one ``_mta-sts`` TXT record considered (local policy; the record holds two
short fields)."""

STS_VERSION = "STSv1"
"""The only version. Spec: RFC 8461 §3.1, §3.2."""

_ID = re.compile(rf"[A-Za-z0-9]{{1,{POLICY_ID_MAX}}}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")  # VCHAR except ";" and "="
_POLICY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_WSP = " \t"


class PolicyMode(enum.StrEnum):
    """What a sender does with a policy. Spec: RFC 8461 §5."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class StsRecord:
    """A valid ``_mta-sts`` TXT record: ``id`` names the current policy.
    Spec: RFC 8461 §3.1."""

    id: str


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy file: ``mode``, the ``mx`` patterns (lower case, ``*.`` allowed)
    and ``max_age`` in seconds. Spec: RFC 8461 §3.2."""

    mode: PolicyMode
    mx: tuple[str, ...]
    max_age: int

    def matches(self, host: str) -> bool:
        """True when ``host`` (an MX name) matches one of the ``mx`` patterns.
        Spec: RFC 8461 §4.1."""
        return any(mx_matches(pattern, host) for pattern in self.mx)

    def to_text(self) -> str:
        """The policy file form (CRLF line ends), for a cache. Spec: RFC 8461 §3.2."""
        lines = [f"version: {STS_VERSION}", f"mode: {self.mode}"]
        lines += [f"mx: {pattern}" for pattern in self.mx]
        lines.append(f"max_age: {self.max_age}")
        return "".join(line + "\r\n" for line in lines)


def parse_sts_record(text: bytes) -> StsRecord:
    """One TXT record, e.g. ``b"v=STSv1; id=20160831085700Z"``. Unknown fields are
    ignored; ``v`` must come first. Raises MtaStsError for anything else.
    Spec: RFC 8461 §3.1."""
    if len(text) > TXT_RECORD_MAX:
        raise MtaStsError("MTA-STS TXT record too long")
    try:
        record = text.decode("ascii")
    except UnicodeDecodeError:
        raise MtaStsError("MTA-STS TXT record is not ASCII") from None
    fields = [field.strip(_WSP) for field in record.split(";")]
    if fields and fields[-1] == "":  # an optional trailing delimiter
        fields.pop()
    if not fields or fields[0] != f"v={STS_VERSION}":
        raise MtaStsError("MTA-STS TXT record does not start with v=STSv1")
    found: str | None = None
    for field in fields[1:]:
        name, eq, value = field.partition("=")
        if not eq:
            raise MtaStsError(f"MTA-STS TXT record: bad field {field!r}")
        if name == "id":
            if not _ID.fullmatch(value):
                raise MtaStsError(f"MTA-STS TXT record: bad id {value!r}")
            found = found or value
        elif not (_EXT_NAME.fullmatch(name) and _EXT_VALUE.fullmatch(value)):
            raise MtaStsError(f"MTA-STS TXT record: bad field {field!r}")
    if found is None:
        raise MtaStsError("MTA-STS TXT record has no id")
    return StsRecord(found)


def select_sts_record(records: Iterable[bytes]) -> StsRecord | None:
    """The record among a name's TXT records, or None when there is no usable one:
    records not starting with ``v=STSv1;`` are dropped; none or several left, or an
    invalid one, means no policy. Spec: RFC 8461 §3.1."""
    candidates = [r for r in records if r.startswith(b"v=" + STS_VERSION.encode() + b";")]
    if len(candidates) != 1:
        return None
    try:
        return parse_sts_record(candidates[0])
    except MtaStsError:
        return None


def parse_policy(data: bytes) -> Policy:
    """A policy file (``key: value`` lines ending CRLF or LF). Unknown keys are ignored;
    of a repeated key other than ``mx`` the first counts. ``version: STSv1``, ``mode``
    and ``max_age`` are required, and ``mx`` unless the mode is ``none``.
    Raises MtaStsError. Spec: RFC 8461 §3.2."""
    if len(data) > POLICY_SIZE_MAX:
        raise MtaStsError(f"MTA-STS policy larger than {POLICY_SIZE_MAX} octets")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MtaStsError("MTA-STS policy is not UTF-8") from None
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in _lines(text):
        key, value = _policy_line(line)
        if key == "mx":
            if len(mx) >= POLICY_MX_MAX:
                raise MtaStsError(f"MTA-STS policy lists more than {POLICY_MX_MAX} mx")
            mx.append(_mx_pattern(value))
        else:
            fields.setdefault(key, value)
    if fields.get("version") != STS_VERSION:
        raise MtaStsError("MTA-STS policy: version is not STSv1")
    try:
        mode = PolicyMode(fields.get("mode", ""))
    except ValueError:
        raise MtaStsError(f"MTA-STS policy: bad mode {fields.get('mode')!r}") from None
    max_age_text = fields.get("max_age", "")
    if not (max_age_text.isascii() and max_age_text.isdigit() and len(max_age_text) <= 10):
        raise MtaStsError(f"MTA-STS policy: bad max_age {max_age_text!r}")
    max_age = int(max_age_text)
    if max_age > MAX_AGE_MAX:
        raise MtaStsError(f"MTA-STS policy: max_age over {MAX_AGE_MAX}")
    if not mx and mode is not PolicyMode.NONE:
        raise MtaStsError("MTA-STS policy lists no mx")
    return Policy(mode, tuple(mx), max_age)


def _lines(text: str) -> list[str]:
    """Lines ended by LF or CRLF (the last one may lack its end); blank lines dropped."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return [line for line in lines if line.strip(_WSP)]


def _policy_line(line: str) -> tuple[str, str]:
    key, colon, value = line.partition(":")
    if not colon or not _POLICY_KEY.fullmatch(key):
        raise MtaStsError(f"MTA-STS policy: bad line {line[:80]!r}")
    value = value.strip(_WSP)
    if not value or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise MtaStsError(f"MTA-STS policy: bad value for {key}")
    return key, value


def _mx_pattern(value: str) -> str:
    """``mx.example.com`` or ``*.example.com``, lower case, without a trailing dot.
    ASCII is checked before case folding (KELVIN SIGN U+212A lower-cases to "k")."""
    if not value.isascii():
        raise MtaStsError(f"MTA-STS policy: mx {value[:80]!r} is not ASCII")
    pattern = value.lower().rstrip(".")
    if len(pattern) > MX_NAME_MAX:
        raise MtaStsError(f"MTA-STS policy: mx longer than {MX_NAME_MAX} characters")
    name = pattern.removeprefix("*.")
    labels = name.split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        raise MtaStsError(f"MTA-STS policy: bad mx {value[:80]!r}")
    return pattern


def mx_matches(pattern: str, host: str) -> bool:
    """True when MX host name ``host`` matches policy ``pattern``: equal ignoring case
    and a trailing dot, or ``*.rest`` with ``host`` being exactly one label followed by
    ``rest`` (``*.example.com`` matches ``mx.example.com``, not ``a.mx.example.com`` nor
    ``example.com``). Names that are not ASCII never match (no case folding of other
    scripts into ASCII). Spec: RFC 8461 §4.1."""
    if not (pattern.isascii() and host.isascii()):
        return False
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and first != "*" and rest == pattern[2:]
    return host == pattern
