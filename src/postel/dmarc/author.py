"""The Author Domain(s): the domains of the RFC5322.From header field.

Pure: no I/O. ``author_domains`` takes the raw values of every From: header field of a
message and says which domains they name, or why none can be used: no From: field,
more than one From: field, or a From: field without a usable domain. Several
addresses in one From: field may name several domains (DMARCbis §5.3.1, §11.5); each
distinct domain is listed once, in order of appearance. Domains are lower-cased text
without a trailing dot; U-labels stay as given (the caller converts them to A-labels,
DMARCbis §5.3.1).

Spec: RFC 9989 (draft-ietf-dmarc-dmarcbis-41 §4.2, §4.4, §5.3.1, §11.5);
RFC 5322 §3.4, §3.6.2; RFC 6532 §3.2.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from postel.mail.address import MISSING_DOMAIN, parse_address_list

DMARC_FROM_ADDRESSES_MAX = 100
"""Addresses read from one From: header field. Postel policy: RFC 5322 §3.6.2 allows
a mailbox-list; real messages carry one. Bounds the parse (RELIABILITY.md D7)."""
DMARC_FROM_FIELD_MAX = 65536
"""Octets of a From: header field value examined. Postel policy (RELIABILITY.md D7);
the header block itself is bounded by limits.HEADER_BLOCK_MAX."""
DMARC_FROM_FIELDS_MAX = 10
"""From fields read from one message (RFC 5322 §3.6 allows one; each of several is
read, as a forger could put the real author in any of them). Postel policy."""
AUTHOR_CACHE_ENTRIES = 1024
"""From field values whose Author Domains are remembered (least recently used dropped
first; only values up to ``AUTHOR_CACHE_VALUE_MAX`` octets). Postel policy: bulk
senders repeat the same From from message to message."""
AUTHOR_CACHE_VALUE_MAX = 512
"""Longest From value remembered, octets (bounds the cache at about 0.5 MB)."""
DOMAIN_NAME_MAX = 253
"""Characters of a domain name in text form. Spec: RFC 1035 §2.3.4 (255 octets on
the wire)."""
DOMAIN_LABEL_MAX = 63
"""Characters of one label. Spec: RFC 1035 §2.3.4."""

_LDH_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?")
_U_LABEL = re.compile(r"(?:[A-Za-z0-9_\-]|[^\x00-\x7f])+")


class AuthorProblem(StrEnum):
    """Why a message has no usable Author Domain. Spec: DMARCbis §4.2, §4.4, §5.3.1."""

    NO_FROM = "no_from"
    """The message has no From: header field."""
    NO_DOMAIN = "no_domain"
    """The From: field yields no address with a domain (empty, group only, unparsable)."""
    INVALID_DOMAIN = "invalid_domain"
    """An address in the From: field has a domain that is not a domain name."""


@dataclass(frozen=True, slots=True)
class AuthorDomains:
    """The Author Domain(s) of a message: ``domains`` (distinct, in order) or, when
    ``problem`` is set, the reason there is none (``domains`` empty).

    Spec: DMARCbis §3.2.2, §5.3.1.
    """

    domains: tuple[str, ...]
    problem: AuthorProblem | None = None

    @classmethod
    def of(cls, *domains: str) -> AuthorDomains:
        """Author Domains given by the caller: lower-cased, trailing dot removed,
        duplicates dropped; INVALID_DOMAIN if any is not a domain name.

        Spec: DMARCbis §5.3.1; RFC 4343 §2 (case-insensitive names).
        """
        seen: list[str] = []
        for domain in domains:
            name = normalise_domain(domain)
            if name is None:
                return cls((), AuthorProblem.INVALID_DOMAIN)
            if name not in seen:
                seen.append(name)
        if not seen:
            return cls((), AuthorProblem.NO_DOMAIN)
        return cls(tuple(seen))


def normalise_domain(domain: str) -> str | None:
    """``domain`` lower-cased without a trailing dot, or None when it is not a domain
    name (empty label, label over 63, name over 253, domain literal, bad characters).
    A non-ASCII label (a U-label to be) is only checked for characters; IDNA validity
    is the A-label conversion's business.

    Spec: RFC 1035 §2.3.1 §2.3.4, RFC 5890 §2.3.2.1, RFC 4343 §2.
    """
    name = domain[:-1] if domain.endswith(".") else domain
    if not name or len(name) > DOMAIN_NAME_MAX:
        return None
    labels = name.split(".")
    for label in labels:
        pattern = _LDH_LABEL if label.isascii() else _U_LABEL
        if len(label) > DOMAIN_LABEL_MAX or pattern.fullmatch(label) is None:
            return None
    return name.lower()


def author_domains(from_fields: Sequence[bytes]) -> AuthorDomains:
    """The Author Domain(s) named by ``from_fields``, the raw values of every From:
    header field of the message (folding kept, as ``HeaderField.value``).

    Never raises. Spec: DMARCbis §4.2, §4.4, §5.3.1, §11.5; RFC 5322 §3.6 (exactly
    one From:), §3.6.2.
    """
    if not from_fields:
        return AuthorDomains((), AuthorProblem.NO_FROM)
    if len(from_fields) > 1:  # not valid (RFC 5322 §3.6); every author is evaluated
        hosts: list[str] = []
        for field in from_fields[:DMARC_FROM_FIELDS_MAX]:
            found = author_domains([field])
            if found.problem is AuthorProblem.INVALID_DOMAIN:
                return found
            hosts.extend(found.domains)
        return AuthorDomains.of(*hosts) if hosts else AuthorDomains((), AuthorProblem.NO_DOMAIN)
    value = from_fields[0][:DMARC_FROM_FIELD_MAX]
    if len(value) <= AUTHOR_CACHE_VALUE_MAX:
        return _remembered(bytes(value))
    return _of_value(value)


@functools.lru_cache(maxsize=AUTHOR_CACHE_ENTRIES)
def _remembered(value: bytes) -> AuthorDomains:
    return _of_value(value)


def _of_value(value: bytes) -> AuthorDomains:
    """The Author Domains of one From field value."""
    hosts: list[str] = []
    for address in parse_address_list(value, max_addresses=DMARC_FROM_ADDRESSES_MAX):
        if address.mailbox is None or address.host is None:
            continue  # group start or end
        if address.host == MISSING_DOMAIN:
            return AuthorDomains((), AuthorProblem.INVALID_DOMAIN)
        hosts.append(address.host.decode("utf-8", errors="replace"))
    if not hosts:
        return AuthorDomains((), AuthorProblem.NO_DOMAIN)
    return AuthorDomains.of(*hosts)
