"""MIME header field values: Content-Type, Content-Disposition, Content-Language.

Lenient readers of RFC 2045 §5.1 syntax. Parameter names and values stay raw octets:
quoted strings are unquoted, RFC 2231 continuations and charset tags (``name*0*``) are
kept as separate raw parameters, the way IMAP servers such as Dovecot return them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MIME_PARAMS_MAX",
    "ContentType",
    "Param",
    "join_continuations",
    "parse_content_disposition",
    "parse_content_language",
    "parse_content_type",
]

MIME_PARAMS_MAX = 100
"""Parameters kept per Content-Type / Content-Disposition field; the rest are dropped
(RELIABILITY.md D7: bounded work and output per part)."""

_CFWS = re.compile(rb"(?:[ \t\r\n]+|\((?:[^()\\]|\\.)*\))*", re.S)
_TOKEN = re.compile(rb"[^\x00-\x20()<>@,;:\\\"/\[\]?=\x7f]+")
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"?', re.S)
_LOOSE_VALUE = re.compile(rb"[^;\s]*")
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)
_LANGUAGE = re.compile(rb"[^\s,()]+")
_SECTION = re.compile(rb"(.+?)\*([0-9]{1,3})\*?")


@dataclass(frozen=True, slots=True)
class Param:
    """One MIME parameter: raw name (case kept) and value (unquoted octets).

    Spec: RFC 2045 §5.1, RFC 2231 §3-4 (kept unjoined).
    """

    name: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class ContentType:
    """A Content-Type value: lower-case type and subtype plus parameters.

    ``valid`` is False when the field was missing a type or subtype; then type/subtype
    are the RFC 2045 §5.2 default text/plain.

    Spec: RFC 2045 §5, §5.2.
    """

    type: str
    subtype: str
    params: tuple[Param, ...]
    valid: bool = True

    def param(self, name: bytes) -> bytes | None:
        """The first parameter called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for p in self.params:
            if p.name.lower() == low:
                return p.value
        return None


def _skip(value: bytes, pos: int) -> int:
    m = _CFWS.match(value, pos)
    return pos if m is None else m.end()


def _token(value: bytes, pos: int) -> tuple[bytes, int]:
    m = _TOKEN.match(value, pos)
    if m is None:
        return b"", pos
    return m.group(), m.end()


def parse_content_type(value: bytes) -> ContentType:
    """Parse a Content-Type field value. An invalid value gives text/plain (valid=False).

    Spec: RFC 2045 §5.1, §5.2.
    """
    pos = _skip(value, 0)
    mtype, pos = _token(value, pos)
    pos = _skip(value, pos)
    subtype = b""
    if value.startswith(b"/", pos):
        pos = _skip(value, pos + 1)
        subtype, pos = _token(value, pos)
    if not mtype or not subtype:
        return ContentType("text", "plain", (), valid=False)
    params = _params(value, pos)
    return ContentType(_lower(mtype), _lower(subtype), params)


def parse_content_disposition(value: bytes) -> tuple[bytes, tuple[Param, ...]] | None:
    """Parse Content-Disposition into (disposition type as written, parameters).

    None when there is no disposition type. Spec: RFC 2183 §2.
    """
    pos = _skip(value, 0)
    dtype, pos = _token(value, pos)
    if not dtype:
        return None
    return dtype, _params(value, pos)


def parse_content_language(value: bytes) -> tuple[bytes, ...]:
    """Language tags of a Content-Language field, comments dropped. Spec: RFC 3282 §2."""
    out: list[bytes] = []
    pos = 0
    n = len(value)
    while pos < n and len(out) < MIME_PARAMS_MAX:
        pos = _skip(value, pos)
        if pos >= n:
            break
        m = _LANGUAGE.match(value, pos)
        if m is None:
            pos += 1
            continue
        out.append(m.group())
        pos = m.end()
    return tuple(out)


def _params(value: bytes, pos: int) -> tuple[Param, ...]:
    """``*(";" parameter)`` from ``pos``; garbage up to the next ";" is skipped.

    Spec: RFC 2045 §5.1.
    """
    params: list[Param] = []
    n = len(value)
    while pos < n and len(params) < MIME_PARAMS_MAX:
        semi = value.find(b";", pos)
        if semi < 0:
            break
        pos = _skip(value, semi + 1)
        name, pos = _token(value, pos)
        pos = _skip(value, pos)
        if not name or not value.startswith(b"=", pos):
            continue
        pos = _skip(value, pos + 1)
        if value.startswith(b'"', pos):
            m = _QUOTED.match(value, pos)
            assert m is not None  # the pattern matches any string starting with a quote
            raw = m.group(1)
            param_value = _QUOTED_PAIR.sub(rb"\1", raw) if b"\\" in raw else raw
            pos = m.end()
        else:
            m2 = _LOOSE_VALUE.match(value, pos)
            assert m2 is not None  # the pattern matches the empty string
            param_value = m2.group()
            pos = m2.end()
        params.append(Param(name, param_value))
    return join_continuations(params)


def join_continuations(params: list[Param]) -> tuple[Param, ...]:
    """Join RFC 2231 continuations ``name*0``, ``name*1*``... into one parameter.

    The joined parameter is called ``name*`` when its first section is extended
    (``name*0*``), else ``name``; the section values are concatenated raw (charset,
    language and %XX escapes are kept), in section order up to the first missing one.
    It follows the parameters that were not continuations. This is what Dovecot returns
    in BODYSTRUCTURE.

    Spec: RFC 2231 §3, §4.1.
    """
    plain: list[Param] = []
    extended: list[Param] = []
    sections: dict[bytes, dict[int, Param]] = {}
    order: list[bytes] = []
    for p in params:
        m = _SECTION.fullmatch(p.name)
        if m is None:
            (extended if p.name.endswith(b"*") else plain).append(p)
            continue
        base = m.group(1).lower()
        if base not in sections:
            sections[base] = {}
            order.append(base)
        sections[base].setdefault(int(m.group(2)), p)
    for base in order:
        parts = sections[base]
        if 0 not in parts:
            extended.extend(parts.values())
            continue
        first = parts[0]
        values: list[bytes] = []
        i = 0
        while i in parts:
            values.append(parts[i].value)
            i += 1
        name = _SECTION.fullmatch(first.name)
        assert name is not None
        joined = name.group(1) + (b"*" if first.name.endswith(b"*") else b"")
        extended.append(Param(joined, b"".join(values)))
    extended.sort(key=lambda p: p.name.lower())
    return (*plain, *extended)


def _lower(token: bytes) -> str:
    return token.decode("latin-1").lower()
