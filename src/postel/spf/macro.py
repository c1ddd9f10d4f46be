"""SPF macro strings: parsing (``domain-spec``, ``explain-string``) and expansion.

Pure: no I/O. The ``p`` macro needs a validated domain name, which takes DNS lookups;
the caller computes it (``MacroString.uses_p`` says when) and passes it in the
``MacroContext``.

Spec: RFC 7208 §7 (macros), §6.2 (explanation strings), §12 (grammar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import quote

from postel.spf.errors import SpfSyntaxError

# --- Bounds ----------------------------------------------------------------------------
SPF_DOMAIN_NAME_MAX = 253
"""Characters of an expanded domain name used in a query; longer names lose labels on
the left until they fit. Spec: RFC 7208 §7.3 (last paragraph), RFC 1035 §2.3.4."""
SPF_LABEL_MAX = 63
"""Octets of one DNS label. Spec: RFC 1035 §2.3.4, RFC 7208 §4.3."""
SPF_EXPLANATION_MAX = 512
"""Characters of an expanded explanation kept (the rest is cut): it ends up in an SMTP
reply line. Postel policy, after RFC 5321 §4.5.3.1.5."""

DOMAIN_LETTERS = frozenset("slodiphv")
"""Macro letters allowed in a ``domain-spec``. Spec: RFC 7208 §7.1."""
EXPLAIN_LETTERS = DOMAIN_LETTERS | frozenset("crt")
"""Macro letters allowed in ``exp`` text (adds c, r, t). Spec: RFC 7208 §7.1, §7.3."""
DELIMITERS = ".-+,/_="
"""Characters a macro may name as delimiters. Spec: RFC 7208 §7.1."""

_MACRO_EXPAND = re.compile(r"\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}")
_TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
_ESCAPES = {"%": "%", "_": " ", "-": "%20"}


@dataclass(frozen=True, slots=True)
class MacroExpand:
    """One ``%{...}`` macro: ``letter`` lower case, ``upper`` when written in capitals
    (URL-escape the value), ``digits`` the right-hand parts kept (None: all),
    ``reverse`` for the ``r`` transformer, ``delimiters`` to split on ("" means ".").

    Spec: RFC 7208 §7.1, §7.3.
    """

    letter: str
    upper: bool
    digits: int | None
    reverse: bool
    delimiters: str


MacroToken = str | MacroExpand
"""A literal run (escapes ``%%``, ``%_``, ``%-`` already replaced) or a macro."""


@dataclass(frozen=True, slots=True)
class MacroString:
    """A parsed ``macro-string``: ``tokens`` in order and the ``text`` it came from.

    Spec: RFC 7208 §7.1.
    """

    tokens: tuple[MacroToken, ...]
    text: str

    @property
    def uses_p(self) -> bool:
        """True when expansion needs the validated domain name. Spec: RFC 7208 §7.3."""
        return any(isinstance(t, MacroExpand) and t.letter == "p" for t in self.tokens)

    @property
    def uses_t(self) -> bool:
        """True when expansion reads the current time. Spec: RFC 7208 §7.3."""
        return any(isinstance(t, MacroExpand) and t.letter == "t" for t in self.tokens)


@dataclass(frozen=True, slots=True)
class MacroContext:
    """The values macros expand to.

    ``sender`` is the full <sender> (local-part already defaulted to "postmaster"),
    ``local_part`` and ``sender_domain`` its parts, ``domain`` the current <domain>,
    ``ip`` the client address (IPv4-mapped addresses already unmapped), ``helo`` the
    HELO/EHLO name, ``validated_domain`` the ``p`` value (None until computed),
    ``receiver`` the receiving host's name, ``timestamp`` seconds since the epoch.

    Spec: RFC 7208 §7.3.
    """

    sender: str
    local_part: str
    sender_domain: str
    domain: str
    ip: IPv4Address | IPv6Address
    helo: str
    validated_domain: str | None = None
    receiver: str = "unknown"
    timestamp: int = 0


# --- Parsing -----------------------------------------------------------------------------
def parse_macro_string(text: str, *, explain: bool = False) -> MacroString:
    """Parse ``text`` as a ``macro-string`` (``explain``: an ``explain-string``, which
    also allows spaces and the letters c, r, t).

    Raises ``SpfSyntaxError`` for a character outside %x21-7E (and SP when
    ``explain``), a bad ``%`` escape, an unknown letter or a zero digit transformer.
    Spec: RFC 7208 §7.1, §6.2.
    """
    return _parse(text, explain=explain)[0]


def parse_domain_spec(text: str) -> MacroString:
    """Parse ``text`` as a ``domain-spec``: a macro-string ending in a macro or in
    ``"." toplabel ["."]``.

    Raises ``SpfSyntaxError`` when it is empty or does not match. Spec: RFC 7208 §7.1.
    """
    if not text:
        raise SpfSyntaxError("empty domain-spec")
    parsed, tail = _parse(text, explain=False)
    if tail is not None and not _valid_domain_end(tail):
        raise SpfSyntaxError(f"domain-spec must end in a macro or a valid top label: {text!r}")
    return parsed


def _valid_domain_end(tail: str) -> bool:
    body = tail[:-1] if tail.endswith(".") else tail
    _, dot, toplabel = body.rpartition(".")
    return bool(dot) and _TOPLABEL.fullmatch(toplabel) is not None


def _parse(text: str, *, explain: bool) -> tuple[MacroString, str | None]:
    """The macro string and the raw literal text after its last macro (None when it
    ends with a macro)."""
    letters = EXPLAIN_LETTERS if explain else DOMAIN_LETTERS
    tokens: list[MacroToken] = []
    literal: list[str] = []
    tail_start = 0
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char != "%":
            if not ("!" <= char <= "~" or (explain and char == " ")):
                raise SpfSyntaxError(f"character {char!r} not allowed in {text!r}")
            literal.append(char)
            pos += 1
            continue
        nxt = text[pos + 1 : pos + 2]
        if nxt in _ESCAPES:
            literal.append(_ESCAPES[nxt])
            pos += 2
        elif nxt == "{":
            expand, pos = _parse_expand(text, pos + 1, letters)
            if literal:
                tokens.append("".join(literal))
                literal = []
            tokens.append(expand)
        else:
            raise SpfSyntaxError(f"'%' must be followed by '{{', '%', '_' or '-' in {text!r}")
        tail_start = pos
    if literal:
        tokens.append("".join(literal))
    tail = text[tail_start:] if tail_start < len(text) else None
    return MacroString(tuple(tokens), text), tail


def _parse_expand(text: str, pos: int, letters: frozenset[str]) -> tuple[MacroExpand, int]:
    match = _MACRO_EXPAND.match(text, pos)
    if match is None:
        raise SpfSyntaxError(f"malformed macro in {text!r}")
    letter, digits, reverse, delimiters = match.groups()
    if letter.lower() not in letters:
        raise SpfSyntaxError(f"macro letter {letter!r} not allowed here")
    keep: int | None = None
    if digits:
        keep = int(digits[:4]) if len(digits) <= 4 else 9999
        if keep == 0:
            raise SpfSyntaxError("macro digit transformer must not be zero")
    return (
        MacroExpand(letter.lower(), letter.isupper(), keep, bool(reverse), delimiters),
        match.end(),
    )


# --- Expansion ---------------------------------------------------------------------------
def expand(macro: MacroString, ctx: MacroContext) -> str:
    """The text of ``macro`` with every macro replaced. Spec: RFC 7208 §7.3."""
    out: list[str] = []
    for token in macro.tokens:
        out.append(token if isinstance(token, str) else _expand_one(token, ctx))
    return "".join(out)


def expand_domain(macro: MacroString, ctx: MacroContext) -> str:
    """``macro`` expanded for use as a query name: trailing dot removed, then labels
    dropped from the left while longer than ``SPF_DOMAIN_NAME_MAX``.

    Spec: RFC 7208 §7.3 (truncation), §4.8.
    """
    name = expand(macro, ctx)
    if name.endswith("."):
        name = name[:-1]
    while len(name) > SPF_DOMAIN_NAME_MAX and "." in name:
        name = name.split(".", 1)[1]
    return name[-SPF_DOMAIN_NAME_MAX:]


def expand_explanation(macro: MacroString, ctx: MacroContext) -> str:
    """The explanation text of ``macro`` (an ``explain-string`` from
    ``parse_macro_string(text, explain=True)``), cut to ``SPF_EXPLANATION_MAX``
    characters. Characters outside printable ASCII (from macro values such as an
    internationalised local-part) become "?", so no CR, LF or NUL can reach a reply.
    Spec: RFC 7208 §6.2, §7.3; RFC 5321 §4.2.
    """
    text = expand(macro, ctx)[:SPF_EXPLANATION_MAX]
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def _expand_one(token: MacroExpand, ctx: MacroContext) -> str:
    value = _letter_value(token.letter, ctx)
    parts = re.split("[" + re.escape(token.delimiters or ".") + "]", value)
    if token.reverse:
        parts.reverse()
    if token.digits is not None and token.digits < len(parts):
        parts = parts[-token.digits :]
    result = ".".join(parts)
    return quote(result, safe="") if token.upper else result


def _letter_value(letter: str, ctx: MacroContext) -> str:
    simple = {
        "s": ctx.sender,
        "l": ctx.local_part,
        "o": ctx.sender_domain,
        "d": ctx.domain,
        "h": ctx.helo,
        "r": ctx.receiver,
        "t": str(ctx.timestamp),
        "c": str(ctx.ip),
        "p": ctx.validated_domain or "unknown",
    }
    if letter in simple:
        return simple[letter]
    if letter == "v":
        return "in-addr" if isinstance(ctx.ip, IPv4Address) else "ip6"
    return dotted_ip(ctx.ip)


def dotted_ip(ip: IPv4Address | IPv6Address) -> str:
    """``ip`` in the dotted form of the ``i`` macro: IPv4 as usual, IPv6 as 32
    upper-case nibbles separated by dots. Spec: RFC 7208 §7.3."""
    if isinstance(ip, IPv4Address):
        return str(ip)
    return ".".join(ip.packed.hex().upper())


def valid_query_name(name: str) -> bool:
    """True when ``name`` can be put into a DNS query: non-empty labels of at most
    ``SPF_LABEL_MAX`` octets, ``SPF_DOMAIN_NAME_MAX`` in all. Spec: RFC 1035 §2.3.4."""
    if not name or len(name) > SPF_DOMAIN_NAME_MAX:
        return False
    return all(0 < len(label.encode()) <= SPF_LABEL_MAX for label in name.split("."))
