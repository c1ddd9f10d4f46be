"""Envelope address grammar: Path, Mailbox, Domain, address literals.

Bounds defined here (not in ``postel.limits``, which this package does not own):

* ``DOMAIN_MAX = 255`` octets. Spec: RFC 5321 §4.5.3.1.2.
* The local part has no bound of its own beyond the command line length: RFC 5321
  §4.5.3.1 asks receivers to accept longer objects where possible, and SRS/VERP senders
  exceed 64 octets in practice.

Spec: RFC 5321 §4.1.2, §4.1.3, RFC 6531 §3.3.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from postel.errors import ProtocolError
from postel.smtp.reply import Reply

DOMAIN_MAX = 255
"""Domain name length in octets. Spec: RFC 5321 §4.5.3.1.2."""

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATEXT_UTF8 = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_DOT_STRING_UTF8 = re.compile(rf"{_ATEXT_UTF8}+(?:\.{_ATEXT_UTF8}+)*")
_QUOTED = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*)"')
_QUOTED_UTF8 = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f]|\\[\x20-\x7e])*)"')
_QUOTED_PAIR = re.compile(r"\\([\x20-\x7e])")
_SUB_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_U_LABEL = re.compile(
    r"(?:[A-Za-z0-9]|[^\x00-\x7f])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f])*(?:[A-Za-z0-9]|[^\x00-\x7f]))?"
)


class SmtpSyntaxError(ProtocolError):
    """Client input that breaks the SMTP grammar; ``reply`` is the answer to give.

    Spec: RFC 5321 §4.2.4.
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.enhanced} {reply.lines[0]}")
        self.reply = reply


def _bad(code: int, enhanced: str, text: str) -> SmtpSyntaxError:
    return SmtpSyntaxError(Reply(code, enhanced, text))


def _non_ascii() -> SmtpSyntaxError:
    return _bad(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """``Local-part "@" ( Domain / address-literal )``.

    Attributes:
        local_part: the local part's value: quotes removed and quoted-pairs resolved
            (``"a\\"b"`` becomes ``a"b``). Case is kept (RFC 5321 §2.4).
        domain: the domain as received, or an address literal with its brackets
            (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``).

    Spec: RFC 5321 §4.1.2, RFC 6531 §3.3.
    """

    local_part: str
    domain: str

    @property
    def is_address_literal(self) -> bool:
        """True when the domain is ``[...]``. Spec: RFC 5321 §4.1.3."""
        return self.domain.startswith("[")

    @property
    def is_ascii(self) -> bool:
        """False when the mailbox needs SMTPUTF8 to be transmitted. Spec: RFC 6531 §3.2."""
        return self.local_part.isascii() and self.domain.isascii()

    def __str__(self) -> str:
        """The mailbox in transmittable form: a Dot-string local part when it is one,
        a Quoted-string otherwise. Spec: RFC 5321 §4.1.2."""
        local = self.local_part
        if _DOT_STRING_UTF8.fullmatch(local) is None:
            escaped = local.replace("\\", "\\\\").replace('"', '\\"')
            local = f'"{escaped}"'
        return f"{local}@{self.domain}"

    @classmethod
    def parse(cls, text: str, *, smtputf8: bool = True) -> Mailbox:
        """Parse ``Local-part "@" Domain``.

        Args:
            text: the mailbox without angle brackets.
            smtputf8: allow UTF-8 local parts and U-label domains (RFC 6531 §3.3).

        Raises:
            SmtpSyntaxError: 553 5.6.7 for non-ASCII without SMTPUTF8, 501 5.1.3 for bad
                syntax.

        Spec: RFC 5321 §4.1.2.
        """
        if not smtputf8 and not text.isascii():
            raise _non_ascii()
        local, rest = _parse_local_part(text, smtputf8)
        if not rest.startswith("@"):
            # "a..b@x": the local part ends at the bad octet, so the domain is not missing.
            what = "local part" if "@" in rest else "missing @domain"
            raise _bad(501, "5.1.3", f"Bad address syntax: {what}")
        domain = rest[1:]
        if domain.startswith("["):
            return cls(local, parse_address_literal(domain))
        return cls(local, parse_domain(domain, smtputf8=smtputf8))


def _parse_local_part(text: str, smtputf8: bool) -> tuple[str, str]:
    """Split off the Local-part; return (value, rest). Spec: RFC 5321 §4.1.2."""
    if text.startswith('"'):
        quoted = (_QUOTED_UTF8 if smtputf8 else _QUOTED).match(text)
        if quoted is None:
            raise _bad(501, "5.1.3", "Bad address syntax: quoted local part")
        return _QUOTED_PAIR.sub(r"\1", quoted.group(1)), text[quoted.end() :]
    dotted = (_DOT_STRING_UTF8 if smtputf8 else _DOT_STRING).match(text)
    if dotted is None:
        raise _bad(501, "5.1.3", "Bad address syntax: local part")
    return dotted.group(0), text[dotted.end() :]


def parse_domain(text: str, *, smtputf8: bool = True) -> str:
    """Validate ``Domain = sub-domain *("." sub-domain)`` and return it unchanged.

    With SMTPUTF8 a sub-domain may be a U-label (RFC 6531 §3.3); only its shape is
    checked here (letters, digits, hyphens, non-ASCII), IDNA2008 rules belong to
    ``postel.mail``. Raises SmtpSyntaxError (501 5.1.3, or 553 5.6.7 for non-ASCII
    without SMTPUTF8). Spec: RFC 5321 §4.1.2, §4.5.3.1.2.
    """
    if not text.isascii() and not smtputf8:
        raise _non_ascii()
    if len(text.encode("utf-8")) > DOMAIN_MAX:
        raise _bad(501, "5.1.3", "Bad address syntax: domain too long")
    label = _U_LABEL if smtputf8 else _SUB_DOMAIN
    if not text or any(label.fullmatch(part) is None for part in text.split(".")):
        raise _bad(501, "5.1.3", "Bad address syntax: domain")
    return text


def parse_address_literal(text: str) -> str:
    """Validate ``[IPv4]`` or ``[IPv6:...]`` and return it unchanged.

    General-address-literals with other tags are refused (no other tag is registered).
    Raises SmtpSyntaxError 501 5.1.3. Spec: RFC 5321 §4.1.3.
    """
    if not (text.startswith("[") and text.endswith("]")):
        raise _bad(501, "5.1.3", "Bad address syntax: address literal")
    inner = text[1:-1]
    try:
        if inner[:5].upper() == "IPV6:":
            ipaddress.IPv6Address(inner[5:])
        elif re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}", inner):
            ipaddress.IPv4Address(inner)
        else:
            raise ValueError(inner)
    except ValueError:
        raise _bad(501, "5.1.3", "Bad address syntax: address literal") from None
    return text


@dataclass(frozen=True, slots=True)
class Path:
    """A reverse-path or forward-path.

    ``mailbox`` is None for the null reverse-path ``<>`` and for the bare
    ``<postmaster>`` recipient (then ``postmaster`` is True). A source route
    (``<@a,@b:user@example.org>``) is parsed and discarded.

    Spec: RFC 5321 §4.1.2, §4.5.1, §4.1.1.3, Appendix C.
    """

    mailbox: Mailbox | None
    postmaster: bool = False

    @property
    def is_null(self) -> bool:
        """True for ``<>``. Spec: RFC 5321 §4.5.5."""
        return self.mailbox is None and not self.postmaster

    def __str__(self) -> str:
        if self.postmaster:
            return "<postmaster>"
        return f"<{self.mailbox}>" if self.mailbox is not None else "<>"

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        smtputf8: bool = True,
        allow_null: bool = True,
        allow_postmaster: bool = True,
    ) -> Path:
        """Parse ``<...>`` (or a bare mailbox, for convenience in tests and config).

        Args:
            text: ``<mailbox>``, ``<@route:mailbox>``, ``<>``, ``<postmaster>`` or a bare
                mailbox.
            smtputf8: allow UTF-8 (RFC 6531 §3.3).
            allow_null: accept ``<>`` (reverse-path only).
            allow_postmaster: accept ``<postmaster>`` without domain (forward-path only).

        Raises:
            SmtpSyntaxError: 501 5.1.3 (syntax), 553 5.6.7 (non-ASCII without SMTPUTF8).

        Spec: RFC 5321 §4.1.2, §4.5.1.
        """
        inner = text[1:-1] if text.startswith("<") and text.endswith(">") else text
        if inner == "":
            if not allow_null:
                raise _bad(501, "5.1.3", "Null path not allowed here")
            return cls(None)
        if inner.lower() == "postmaster":
            if not allow_postmaster:
                raise _bad(501, "5.1.3", "Bad address syntax: missing @domain")
            return cls(None, postmaster=True)
        if inner.startswith("@"):
            inner = _strip_source_route(inner, smtputf8)
        return cls(Mailbox.parse(inner, smtputf8=smtputf8))


def _strip_source_route(text: str, smtputf8: bool) -> str:
    """Parse ``A-d-l ":"`` and return what follows it. Spec: RFC 5321 §4.1.2, App. C."""
    route, colon, rest = text.partition(":")
    if not colon:
        raise _bad(501, "5.1.3", "Bad address syntax: source route")
    for hop in route.split(","):
        if not hop.startswith("@"):
            raise _bad(501, "5.1.3", "Bad address syntax: source route")
        domain = hop[1:]
        if domain.startswith("["):
            parse_address_literal(domain)
        else:
            parse_domain(domain, smtputf8=smtputf8)
    return rest


def split_path(arg: str) -> tuple[str, str]:
    """Split ``<path> params`` at the ``>`` that closes the path, honouring quoted
    strings and quoted-pairs inside it. Returns (``<path>``, rest after it).

    Raises SmtpSyntaxError 501 5.5.2 when the angle brackets are missing: RFC 5321
    requires them, and guessing where a bare address ends (spaces, parameters) is
    exactly the kind of leniency that lets two parsers disagree about an envelope.
    Spec: RFC 5321 §4.1.1.2, §4.1.2.
    """
    if not arg.startswith("<"):
        raise _bad(501, "5.5.2", "Syntax: address must be enclosed in <>")
    quoted = False
    index = 1
    while index < len(arg):
        char = arg[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return arg[: index + 1], arg[index + 1 :]
        index += 1
    raise _bad(501, "5.5.2", "Syntax: address must be enclosed in <>")
