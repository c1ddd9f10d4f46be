"""Domain names from callers to dnspython: IDNA conversion and validation.

A name given with non-ASCII characters (U-labels) is converted to A-labels with the
``idna`` package (IDNA 2008 with UTS #46 mapping) when it is installed, else with
Python's built-in ``idna`` codec (IDNA 2003). ASCII names are only lower-cased. Names
are always absolute: a trailing dot is optional.

Spec: RFC 5890 §2.3.2.1, RFC 5891 §5, RFC 1035 §2.3.4, UTS #46 §4.
"""

from __future__ import annotations

import dns.exception
import dns.name

from postel.resolver.api import DnsPermError


def to_alabels(name: str) -> str:
    """``name`` in lower-case A-label form, without a trailing dot.

    Raises ``DnsPermError`` for an empty name or one IDNA cannot convert.
    Spec: RFC 5891 §5.
    """
    text = name[:-1] if name.endswith(".") else name
    if not text:
        raise DnsPermError("empty domain name")
    if text.isascii():
        return text.lower()
    try:
        return _idna_encode(text).lower()
    except UnicodeError as exc:
        raise DnsPermError(f"not a valid IDNA name: {name!r}") from exc


def _idna_encode(text: str) -> str:
    try:
        import idna
    except ImportError:
        return text.encode("idna").decode("ascii")
    return str(idna.encode(text, uts46=True).decode("ascii"))


def to_dns_name(name: str) -> dns.name.Name:
    """``name`` as an absolute dnspython name (labels <= 63, name <= 255 octets).

    Raises ``DnsPermError`` when it is not a valid domain name. Spec: RFC 1035 §2.3.4.
    """
    try:
        return dns.name.from_text(to_alabels(name), origin=dns.name.root)
    except dns.exception.DNSException as exc:
        raise DnsPermError(f"not a valid domain name: {name!r}") from exc


def to_text(name: dns.name.Name) -> str:
    """``name`` as lower-case text without the trailing dot ("" for the root).

    Spec: RFC 1035 §5.1.
    """
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True).lower()
