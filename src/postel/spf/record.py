"""SPF records: selection among TXT records and parsing into mechanisms and modifiers.

Pure: no I/O. Every syntax error anywhere in a record raises ``SpfSyntaxError``
before any term is evaluated, as RFC 7208 §4.6 requires.

Spec: RFC 7208 §4.5, §4.6, §5, §6, §12.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from postel.spf.errors import SpfSyntaxError
from postel.spf.macro import MacroString, parse_domain_spec, parse_macro_string

# --- Bounds ----------------------------------------------------------------------------
SPF_RECORD_LENGTH_MAX = 4096
"""Characters of one SPF record parsed; longer is permerror. Postel policy: RFC 7208
§3.4 advises records fit a 512-octet UDP answer; large published records reach ~2 KB."""
SPF_TERMS_MAX = 256
"""Terms (mechanisms and modifiers) in one record; more is permerror. Postel policy:
only 10 of them may cause DNS lookups (RFC 7208 §4.6.4)."""

SPF_VERSION = "v=spf1"
"""The version section that starts every SPF record. Spec: RFC 7208 §4.5."""

_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)", re.DOTALL)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9]*)(.*)", re.DOTALL)
_DUAL_CIDR = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?\Z")
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4 = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}")
_IP6 = re.compile(r"[0-9A-Fa-f:.]+")
_CIDR = re.compile(r"0|[1-9][0-9]{0,2}")


class Qualifier(StrEnum):
    """A directive's qualifier, giving the result when its mechanism matches.

    Spec: RFC 7208 §4.6.2.
    """

    PASS = "+"
    FAIL = "-"
    SOFTFAIL = "~"
    NEUTRAL = "?"


class MechanismKind(StrEnum):
    """The eight mechanisms. Spec: RFC 7208 §5."""

    ALL = "all"
    INCLUDE = "include"
    A = "a"
    MX = "mx"
    PTR = "ptr"
    IP4 = "ip4"
    IP6 = "ip6"
    EXISTS = "exists"


DNS_MECHANISMS = frozenset(
    {MechanismKind.INCLUDE, MechanismKind.A, MechanismKind.MX, MechanismKind.PTR}
    | {MechanismKind.EXISTS}
)
"""Mechanisms that count against the DNS lookup limit. Spec: RFC 7208 §4.6.4."""


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One directive: ``qualifier``, ``kind``, ``text`` as written, ``target`` (the
    domain-spec; None means the current domain for a/mx/ptr, and for all/ip4/ip6),
    ``network`` for ip4/ip6, ``cidr4``/``cidr6`` prefix lengths for a/mx.

    Spec: RFC 7208 §4.6.1, §5.
    """

    qualifier: Qualifier
    kind: MechanismKind
    text: str
    target: MacroString | None = None
    network: IPv4Network | IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class Modifier:
    """An unknown modifier, kept for logs: ``name`` (lower case) and ``value``.

    Spec: RFC 7208 §6 (unknown modifiers MUST be ignored).
    """

    name: str
    value: MacroString


@dataclass(frozen=True, slots=True)
class Record:
    """A parsed SPF record: ``mechanisms`` in order, ``redirect`` and ``exp``
    domain-specs (None when absent), ``modifiers`` the unknown ones.

    Spec: RFC 7208 §4.6, §6.
    """

    text: str
    mechanisms: tuple[Mechanism, ...]
    redirect: MacroString | None
    exp: MacroString | None
    modifiers: tuple[Modifier, ...]


def is_spf_record(txt: bytes) -> bool:
    """True when the TXT record ``txt`` (its strings joined) is an SPF record: it
    starts with ``v=spf1`` (any case) followed by a space or its end.

    Spec: RFC 7208 §4.5.
    """
    head = txt[: len(SPF_VERSION)].lower()
    rest = txt[len(SPF_VERSION) : len(SPF_VERSION) + 1]
    return head == SPF_VERSION.encode() and rest in (b"", b" ")


def parse_record(txt: bytes | str) -> Record:
    """Parse one SPF record.

    Raises ``SpfSyntaxError`` when it is not ASCII, longer than
    ``SPF_RECORD_LENGTH_MAX``, holds more than ``SPF_TERMS_MAX`` terms, lacks the
    version, or has any term that does not follow the grammar (including a second
    ``redirect`` or ``exp``). Spec: RFC 7208 §3.1, §4.5, §4.6.1, §6, §12.
    """
    text = _decode(txt)
    if len(text) > SPF_RECORD_LENGTH_MAX:
        raise SpfSyntaxError(f"record longer than {SPF_RECORD_LENGTH_MAX} characters")
    if not is_spf_record(text.encode("ascii")):
        raise SpfSyntaxError("record does not start with v=spf1")
    for char in text:
        if not " " <= char <= "~":
            raise SpfSyntaxError(f"character {char!r} not allowed in an SPF record")
    terms = [term for term in text[len(SPF_VERSION) :].split(" ") if term]
    if len(terms) > SPF_TERMS_MAX:
        raise SpfSyntaxError(f"record has more than {SPF_TERMS_MAX} terms")
    return _build(text, terms)


def _decode(txt: bytes | str) -> str:
    if isinstance(txt, str):
        if not txt.isascii():
            raise SpfSyntaxError("SPF record is not ASCII")
        return txt
    try:
        return txt.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SpfSyntaxError("SPF record is not ASCII") from exc


def _build(text: str, terms: list[str]) -> Record:
    mechanisms: list[Mechanism] = []
    modifiers: list[Modifier] = []
    redirect: MacroString | None = None
    exp: MacroString | None = None
    for term in terms:
        modifier = _MODIFIER.fullmatch(term)
        if modifier is None:
            mechanisms.append(parse_mechanism(term))
            continue
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name == "redirect":
            if redirect is not None:
                raise SpfSyntaxError("more than one redirect modifier")
            redirect = parse_domain_spec(value)
        elif name == "exp":
            if exp is not None:
                raise SpfSyntaxError("more than one exp modifier")
            exp = parse_domain_spec(value)
        else:
            modifiers.append(Modifier(name, parse_macro_string(value)))
    return Record(text, tuple(mechanisms), redirect, exp, tuple(modifiers))


def parse_mechanism(term: str) -> Mechanism:
    """Parse one directive (``[qualifier] mechanism``).

    Raises ``SpfSyntaxError`` for an unknown mechanism or bad arguments.
    Spec: RFC 7208 §4.6.1, §5.1-§5.7.
    """
    match = _MECHANISM.fullmatch(term)
    if match is None:
        raise SpfSyntaxError(f"not a mechanism or modifier: {term!r}")
    qualifier = Qualifier(match.group(1) or "+")
    try:
        kind = MechanismKind(match.group(2).lower())
    except ValueError:
        raise SpfSyntaxError(f"unknown mechanism: {term!r}") from None
    rest = match.group(3)
    if kind is MechanismKind.ALL:
        if rest:
            raise SpfSyntaxError(f"'all' takes no argument: {term!r}")
        return Mechanism(qualifier, kind, term)
    if kind in (MechanismKind.INCLUDE, MechanismKind.EXISTS):
        return Mechanism(qualifier, kind, term, target=_required_target(rest, term))
    if kind is MechanismKind.PTR:
        target = _required_target(rest, term) if rest else None
        return Mechanism(qualifier, kind, term, target=target)
    if kind in (MechanismKind.A, MechanismKind.MX):
        return _host_mechanism(qualifier, kind, term, rest)
    return _ip_mechanism(qualifier, kind, term, rest)


def _required_target(rest: str, term: str) -> MacroString:
    if not rest.startswith(":"):
        raise SpfSyntaxError(f"':' and a domain-spec expected: {term!r}")
    return parse_domain_spec(rest[1:])


def _host_mechanism(qualifier: Qualifier, kind: MechanismKind, term: str, rest: str) -> Mechanism:
    cidr = _DUAL_CIDR.search(rest)
    assert cidr is not None  # the pattern matches the empty string at the end
    head = rest[: cidr.start()]
    cidr4 = _cidr(cidr.group(1), 32, term) if cidr.group(1) is not None else 32
    cidr6 = _cidr(cidr.group(2), 128, term) if cidr.group(2) is not None else 128
    target = _required_target(head, term) if head else None
    return Mechanism(qualifier, kind, term, target=target, cidr4=cidr4, cidr6=cidr6)


def _cidr(digits: str, maximum: int, term: str) -> int:
    if _CIDR.fullmatch(digits) is None or int(digits) > maximum:
        raise SpfSyntaxError(f"bad CIDR length in {term!r}")
    return int(digits)


def _ip_mechanism(qualifier: Qualifier, kind: MechanismKind, term: str, rest: str) -> Mechanism:
    if not rest.startswith(":"):
        raise SpfSyntaxError(f"':' and a network expected: {term!r}")
    address, slash, length = rest[1:].partition("/")
    network: IPv4Network | IPv6Network
    if kind is MechanismKind.IP4:
        if _IP4.fullmatch(address) is None:
            raise SpfSyntaxError(f"bad IPv4 network: {term!r}")
        prefix = _cidr(length, 32, term) if slash else 32
        network = IPv4Network((IPv4Address(address), prefix), strict=False)
    else:
        address, slash, length = rest[1:].rpartition("/") if "/" in rest else (rest[1:], "", "")
        if _IP6.fullmatch(address) is None:
            raise SpfSyntaxError(f"bad IPv6 network: {term!r}")
        try:
            ip6 = IPv6Address(address)
        except ValueError:
            raise SpfSyntaxError(f"bad IPv6 network: {term!r}") from None
        prefix = _cidr(length, 128, term) if slash else 128
        network = IPv6Network((ip6, prefix), strict=False)
    return Mechanism(qualifier, kind, term, network=network)
