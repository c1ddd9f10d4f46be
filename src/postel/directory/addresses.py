"""Address and domain forms used by the directory: how names are compared and stored.

Domains are compared in their lower-case A-label (ASCII) form. A domain given with
U-labels (``bücher.example``) is converted with Python's built-in ``idna`` codec, which
implements IDNA 2003 (RFC 3490 ToASCII with Nameprep, RFC 3491): it maps case and a few
characters (``ß`` → ``ss``, final sigma) where IDNA 2008 (RFC 5891) would keep or refuse
them. The store always holds the A-label form, so lookups with either form agree.

Local parts are compared case-insensitively (``str.lower``), a local policy that
RFC 5321 §2.4 allows the receiving host to choose. A local part is never interpreted:
``%``, ``!`` and a quoted ``@`` are ordinary characters of an unknown local part, so they
cannot be used to relay (RFC 5321 §3.6.1, RFC 2505 §2.6.6).

Spec: RFC 5321 §2.4, §4.5.3.1.1-2; RFC 5322 §3.2.3 (atext); RFC 3490 §4.1 (ToASCII).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postel.errors import PostelError

LOCAL_PART_MAX = 64
"""Octets in a local part. Spec: RFC 5321 §4.5.3.1.1."""
DOMAIN_MAX = 253
"""Characters in a domain name in text form (255 octets on the wire). Spec: RFC 5321
§4.5.3.1.2, RFC 1035 §2.3.4."""
LABEL_MAX = 63
"""Octets in one DNS label. Spec: RFC 1035 §2.3.4."""

SUBADDRESS_SEPARATOR = "+"
"""Separates ``user`` from ``detail`` in ``user+detail@domain``. Spec: RFC 5233 §1."""

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_BAD_DOMAIN_CHAR = re.compile(r"[\x00-\x20\x7f@]")
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+$")


class InvalidAddress(PostelError, ValueError):
    """A domain or address that cannot be one of ours (syntax, length, IDNA)."""


@dataclass(frozen=True, slots=True)
class Address:
    """``local@domain`` with the domain in lower-case A-label form."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The lookup form: local part lower-cased."""
        return f"{self.local.lower()}@{self.domain}"


def to_a_label(domain: str) -> str:
    """The lower-case A-label form of ``domain`` (ASCII input is only lower-cased).

    Raises InvalidAddress when the name is empty, too long, has an empty label (so no
    trailing dot), whitespace, a control character or ``@``, or is not valid IDNA 2003.
    Spec: RFC 3490 §4.1 (ToASCII), RFC 1035 §2.3.4.
    """
    name = domain.lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidAddress(f"{domain!r} is not a valid internationalized domain") from None
    if len(name) > DOMAIN_MAX or "" in name.split(".") or _BAD_DOMAIN_CHAR.search(name):
        raise InvalidAddress(f"{domain!r} is not a valid domain name")
    return name


def normalize_domain(domain: str) -> str:
    """``to_a_label`` plus host-name syntax: letters, digits and hyphens in labels of
    1-63 octets, no trailing dot. For names we create (``postel domain add``).
    Spec: RFC 1123 §2.1, RFC 5321 §4.1.2 (Domain)."""
    name = to_a_label(domain)
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise InvalidAddress(f"{domain!r} is not a valid domain name")
    return name


def parse_address(text: str) -> Address:
    """Split ``local@domain`` at its last ``@`` and validate it for creating an account
    or alias: the local part is a dot-atom (RFC 5322 §3.2.3; UTF-8 allowed per RFC 6531
    §3.3) of at most 64 octets, the domain a host name. Raises InvalidAddress."""
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise InvalidAddress(f"{text!r} is not an address of the form local@domain")
    check_local_part(local)
    return Address(local, normalize_domain(domain))


def check_local_part(local: str) -> None:
    """Raise InvalidAddress unless ``local`` is a dot-atom of at most 64 octets.
    Spec: RFC 5322 §3.2.3, RFC 5321 §4.5.3.1.1."""
    if len(local.encode("utf-8")) > LOCAL_PART_MAX:
        raise InvalidAddress(f"local part {local!r} is longer than {LOCAL_PART_MAX} octets")
    if not all(_ATEXT.match(atom) for atom in local.split(".")):
        raise InvalidAddress(
            f"local part {local!r} must be letters, digits and !#$%&'*+-/=?^_`{{|}}~ "
            "with single dots between them"
        )


def split_recipient(text: str) -> tuple[str, str] | None:
    """Split a recipient for lookup: ``(local, a-label domain)``, or None when there is
    no ``@`` or the domain is not valid IDNA. The local part is returned as received and
    is never interpreted (see the module docstring)."""
    local, at, domain = text.rpartition("@")
    if not at:
        return None
    try:
        return local, to_a_label(domain)
    except InvalidAddress:
        return None
