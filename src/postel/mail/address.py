"""RFC 5322 address lists, parsed into IMAP ENVELOPE address structures.

The parser is lenient and never raises: whatever it cannot read as an address is
skipped up to the next comma. Values stay raw octets (encoded words untouched), the way
IMAP returns them. Where a part is missing the structure carries the placeholders
``MISSING_MAILBOX`` / ``MISSING_DOMAIN`` that Dovecot sends, so that clients always get
a usable mailbox and host (RFC 3501 §7.4.2 forbids NIL host outside group syntax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ADDRESSES_MAX",
    "ADDRESS_TOKENS_MAX",
    "MISSING_DOMAIN",
    "MISSING_MAILBOX",
    "Address",
    "parse_address_list",
]

ADDRESSES_MAX = 10_000
"""Address structures kept per header field; the rest are dropped. Well above any real
list (SMTP_RECIPIENTS_MAX is 1000), small enough that a header of 100,000 addresses is
parsed within budget (RELIABILITY.md D3, D7 and test 6)."""
ADDRESS_TOKENS_MAX = 200_000
"""Lexical tokens read per header field: bounds the work on a field that is one giant
phrase rather than a list (RELIABILITY.md D7, test 6)."""

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"

_TOKEN = re.compile(
    rb"""
    (?P<ws>[ \t\r\n]+)
    |(?P<atom>[^\x00-\x20()<>\[\]:;@\\,"\x7f]+)
    |(?P<qs>"(?:[^"\\]|\\.)*"?)
    |(?P<lit>\[(?:[^\]\\]|\\.)*\]?)
    |(?P<special>[()<>:;@,\\])
    |(?P<other>.)
    """,
    re.X | re.S,
)
_COMMENT_STOP = re.compile(rb"[()\\]")
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)

# Token kinds.
_ATOM, _QS, _LIT, _COMMENT, _SPECIAL, _OTHER = "atom", "qs", "lit", "comment", "special", "other"


@dataclass(frozen=True, slots=True)
class Address:
    """One IMAP address structure: (name, adl, mailbox, host), raw octets or None.

    A group start has ``mailbox`` = group name and ``host`` None; a group end has all
    four None.

    Spec: RFC 9051 §7.5.2 (ENVELOPE), RFC 3501 §7.4.2, RFC 5322 §3.4.
    """

    name: bytes | None
    adl: bytes | None
    mailbox: bytes | None
    host: bytes | None


_Token = tuple[str, bytes]


def parse_address_list(value: bytes, *, max_addresses: int = ADDRESSES_MAX) -> tuple[Address, ...]:
    """Parse an address-list header value (raw, possibly folded) into address structures.

    At most ``max_addresses`` structures are returned (ADDRESSES_MAX). Never raises.

    Spec: RFC 5322 §3.4, §4.4 (obsolete routes); RFC 9051 §7.5.2.
    """
    m = _SIMPLE.match(value)
    if m is not None and max_addresses >= 1:
        return (_simple(m),)
    return _parse(value, max_addresses)


_SIMPLE_ATOM = rb"""[^\x00-\x20()<>\[\]:;@\\,"\x7f]++"""  # the tokenizer's atom
_SIMPLE = re.compile(
    rb"""
    [ \t\r\n]*+
    (?:
        (?:(?P<name> ATOM (?:[ \t\r\n]++ ATOM)*+ ) [ \t\r\n]*+)?
        < (?P<angle_local> ATOM ) @ (?P<angle_domain> ATOM ) >
      | (?P<local> ATOM ) @ (?P<domain> ATOM )
    )
    [ \t\r\n]*+ \Z
    """.replace(b"ATOM", _SIMPLE_ATOM),
    re.X,
)
"""The shapes most fields have: one ``local@domain``, ``<local@domain>`` or ``Words
<local@domain>`` of atoms only. For these the regular expression gives what the
tokenizer and parser give (a property test holds them equal), in a fraction of the
time; anything else goes to the parser."""


def _simple(m: re.Match[bytes]) -> Address:
    local = m.group("local")
    if local is not None:
        return Address(None, None, local, m.group("domain"))
    name = m.group("name")
    if name is not None:
        name = b" ".join(_WS_SPLIT.split(name))
    return Address(name, None, m.group("angle_local"), m.group("angle_domain"))


_WS_SPLIT = re.compile(rb"[ \t\r\n]+")


def _parse(value: bytes, max_addresses: int) -> tuple[Address, ...]:
    """The general parser: tokens, then recursive descent (below)."""
    tokens = _tokenize(value)
    parser = _Parser(tokens, max_addresses)
    parser.address_list()
    return tuple(parser.out)


def _tokenize(value: bytes) -> list[_Token]:
    """Lexical tokens of a structured field body, whitespace dropped. Spec: RFC 5322 §3.2."""
    tokens: list[_Token] = []
    pos = 0
    n = len(value)
    while pos < n and len(tokens) < ADDRESS_TOKENS_MAX:
        if value[pos] == 0x28:  # "("
            end, text = _comment(value, pos)
            tokens.append((_COMMENT, text))
            pos = end
            continue
        m = _TOKEN.match(value, pos)
        if m is None:  # pragma: no cover - the last alternative matches any octet
            break
        kind = m.lastgroup or _OTHER
        if kind != "ws":
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


def _comment(value: bytes, start: int) -> tuple[int, bytes]:
    """A (possibly nested, possibly unterminated) comment at ``start``: (end, inner text).

    Spec: RFC 5322 §3.2.2.
    """
    depth = 0
    pos = start
    n = len(value)
    while pos < n:
        m = _COMMENT_STOP.search(value, pos)
        if m is None:
            break
        c = value[m.start()]
        if c == 0x5C:  # backslash: quoted-pair
            pos = m.start() + 2
            continue
        depth += 1 if c == 0x28 else -1
        pos = m.end()
        if depth == 0:
            return pos, value[start + 1 : pos - 1]
    return n, value[start + 1 :]


def _unquote(qs: bytes) -> bytes:
    """Content of a quoted string with quoted-pairs resolved. Spec: RFC 5322 §3.2.4."""
    inner = qs[1:-1] if len(qs) >= 2 and qs.endswith(b'"') else qs[1:]
    if b"\\" not in inner:
        return inner
    return _QUOTED_PAIR.sub(rb"\1", inner)


class _Parser:
    """Recursive-descent parser over the token list; each step consumes a token."""

    def __init__(self, tokens: list[_Token], max_addresses: int) -> None:
        self.tokens = tokens
        self.i = 0
        self.max = max_addresses
        self.out: list[Address] = []

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _is(self, special: bytes) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == _SPECIAL and tok[1] == special

    def _full(self) -> bool:
        return len(self.out) >= self.max

    def address_list(self) -> None:
        while self.i < len(self.tokens) and not self._full():
            if self._is(b",") or self._is(b";") or self._is(b">") or self._is(b")"):
                self.i += 1
                continue
            self._address(in_group=False)

    def _address(self, *, in_group: bool) -> None:
        words, comment = self._words()
        tok = self._peek()
        if tok is None or (tok[0] == _SPECIAL and tok[1] in (b",", b";")):
            if len(words) == 1 and words[0][0] == _ATOM:
                self._emit(comment, None, words[0][1], MISSING_DOMAIN)
            elif words:  # a display name without any address
                self._emit(_phrase(words), None, MISSING_MAILBOX, MISSING_DOMAIN)
            return
        special = tok[1] if tok[0] == _SPECIAL else b""
        if special == b":" and not in_group:
            self.i += 1
            self._group(words)
        elif special == b"<":
            self.i += 1
            self._angle_addr(words)
        elif special == b"@":
            self.i += 1
            domain, comment2 = self._domain()
            self._emit(comment2 or comment, None, _local(words) or MISSING_MAILBOX, domain)
        else:
            self.i += 1  # garbage: skip one token and go on

    def _words(self) -> tuple[list[_Token], bytes | None]:
        """Atoms, quoted strings and dots up to the next special; the last comment."""
        words: list[_Token] = []
        comment: bytes | None = None
        while (tok := self._peek()) is not None:
            if tok[0] == _COMMENT:
                comment = tok[1]
            elif tok[0] in (_ATOM, _QS, _LIT, _OTHER) or (
                tok[0] == _SPECIAL and tok[1] in (b"\\", b")")
            ):
                words.append(tok)
            else:
                break
            self.i += 1
        return words, comment

    def _group(self, words: list[_Token]) -> None:
        """group = display-name ":" [group-list] ";". Spec: RFC 5322 §3.4."""
        self._emit(None, None, _phrase(words) or b"", None)
        while self.i < len(self.tokens) and not self._full():
            if self._is(b";"):
                self.i += 1
                break
            if self._is(b","):
                self.i += 1
                continue
            self._address(in_group=True)
        self._emit(None, None, None, None)

    def _angle_addr(self, words: list[_Token]) -> None:
        """angle-addr = "<" [obs-route] addr-spec ">". Spec: RFC 5322 §3.4, §4.4."""
        adl = self._route()
        local, _ = self._words()
        domain: bytes = MISSING_DOMAIN
        if self._is(b"@"):
            self.i += 1
            domain, _ = self._domain()
        while (tok := self._peek()) is not None and not (tok[0] == _SPECIAL and tok[1] == b">"):
            if tok[0] == _SPECIAL and tok[1] in (b",", b";"):
                break
            self.i += 1
        if self._is(b">"):
            self.i += 1
        name = _phrase(words) if words else None
        self._emit(name, adl, _local(local) or MISSING_MAILBOX, domain)

    def _route(self) -> bytes | None:
        """obs-route = obs-domain-list ":"; returned as written without CFWS. Spec: RFC 5322 §4.4."""
        if not self._is(b"@"):
            return None
        start = self.i
        parts: list[bytes] = []
        while (tok := self._peek()) is not None:
            if tok[0] == _SPECIAL and tok[1] == b":":
                self.i += 1
                return b"".join(parts)
            if tok[0] == _SPECIAL and tok[1] in (b">", b";"):
                break
            if tok[0] != _COMMENT:
                parts.append(tok[1])
            self.i += 1
        self.i = start  # not a route after all: read it as an addr-spec
        return None

    def _domain(self) -> tuple[bytes, bytes | None]:
        """domain = dot-atom / domain-literal / obs-domain; and a trailing comment."""
        parts: list[bytes] = []
        comment: bytes | None = None
        while (tok := self._peek()) is not None:
            if tok[0] == _COMMENT:
                comment = tok[1]
            elif tok[0] in (_ATOM, _LIT):
                parts.append(tok[1])
            else:
                break
            self.i += 1
        return (b"".join(parts) or MISSING_DOMAIN), comment

    def _emit(
        self, name: bytes | None, adl: bytes | None, mailbox: bytes | None, host: bytes | None
    ) -> None:
        if not self._full():
            self.out.append(Address(name, adl, mailbox, host))


def _phrase(words: list[_Token]) -> bytes:
    """display-name: words joined by one space, quoted strings unquoted. Spec: RFC 5322 §3.2.5."""
    return b" ".join(_unquote(w) if kind == _QS else w for kind, w in words)


def _local(words: list[_Token]) -> bytes:
    """local-part as written, CFWS removed. Spec: RFC 5322 §3.4.1."""
    return b"".join(w for _, w in words)
