"""IMAP argument model, a lenient response parser and the imaptest reply matcher.

Server replies and the expected replies of a script are both parsed into the same
nested shape (`Atom`, `String`, `Nil`, `ListArg`). Text is handled as ``str`` decoded
from latin-1, so every byte maps to exactly one character and literals keep their
byte counts.

Matching follows the scripted-test format of Dovecot's imaptest
(``conformance/imaptest/scripted_test.md``): atoms, strings and literals compare as
strings, case-insensitively unless ``${case:...}`` is used; ``$name`` binds on first
use and must match the same text afterwards; ``$`` matches any single argument (list
included); ``$]`` skips up to the atom holding ``]``; ``$N`` is the current number of
the message that had sequence number N when the command group started; lists may begin
with ``$!`` directives (``unordered[=n]``, ``ordered``, ``noextra``, ``extra``,
``ignore=e``, ``ban=e``).

Spec: RFC 9051 §4 (data formats), imaptest scripted_test.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A complete match is reported as this count (any real count is smaller).
FULL_MATCH = sys.maxsize

_LITERAL_RE = re.compile(r"~?\{(\d+)\+?\}\r\n")
_VAR_CHAR_RE = re.compile(r"[A-Za-z0-9_]*")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Atom:
    """An IMAP atom (also numbers and resp-text words). Spec: RFC 9051 §4.1."""

    value: str


@dataclass(frozen=True, slots=True)
class String:
    """A quoted string or a literal (``literal`` tells which). Spec: RFC 9051 §4.3."""

    value: str
    literal: bool = False


@dataclass(frozen=True, slots=True)
class Nil:
    """The special atom NIL. Spec: RFC 9051 §4.5."""


@dataclass(frozen=True, slots=True)
class ListArg:
    """A parenthesized list. Spec: RFC 9051 §4.4."""

    items: tuple[Arg, ...]


Arg = Atom | String | Nil | ListArg


class ArgParseError(ValueError):
    """Raised by `parse_args` (strict mode) on unbalanced lists, quotes or short literals."""


class UnboundVariable(LookupError):
    """Raised by `expand_command` when a command uses a variable that has no value yet."""


def upper_ascii(text: str) -> str:
    """Upper-case ASCII letters only (as C ``toupper`` in the C locale)."""
    return text.translate(_ASCII_UPPER)


def equal_icase(left: str, right: str) -> bool:
    """ASCII case-insensitive equality."""
    return upper_ascii(left) == upper_ascii(right)


def as_text(arg: Arg) -> str | None:
    """Return the string value of an atom, quoted string or literal, else None."""
    if isinstance(arg, Atom | String):
        return arg.value
    return None


# ---------------------------------------------------------------- parsing ----


class _ArgReader:
    """Tokenizer state of one `parse_args` call."""

    def __init__(self, text: str, lenient: bool) -> None:
        self.text = text
        self.lenient = lenient
        self.pos = 0
        self.stack: list[list[Arg]] = [[]]

    def fail(self, message: str) -> None:
        if not self.lenient:
            raise ArgParseError(f"{message} at offset {self.pos}")

    def run(self) -> tuple[Arg, ...]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif char == "(":
                self.stack.append([])
                self.pos += 1
            elif char == ")" and len(self.stack) > 1:
                items = self.stack.pop()
                self.stack[-1].append(ListArg(tuple(items)))
                self.pos += 1
            elif char == '"':
                self.read_quoted()
            elif not self.read_literal():
                self.read_atom()
        if len(self.stack) > 1:
            self.fail("unterminated list")
            while len(self.stack) > 1:
                items = self.stack.pop()
                self.stack[-1].append(ListArg(tuple(items)))
        return tuple(self.stack[0])

    def read_quoted(self) -> None:
        text = self.text
        index = self.pos + 1
        chars: list[str] = []
        while index < len(text) and text[index] != '"':
            if text[index] == "\\" and index + 1 < len(text):
                index += 1
            chars.append(text[index])
            index += 1
        if index >= len(text):
            self.fail("unterminated quoted string")
        self.stack[-1].append(String("".join(chars)))
        self.pos = index + 1

    def read_literal(self) -> bool:
        match = _LITERAL_RE.match(self.text, self.pos)
        if match is None:
            return False
        size = int(match.group(1))
        data = self.text[match.end() : match.end() + size]
        if len(data) < size:
            self.fail("literal shorter than announced")
        self.stack[-1].append(String(data, literal=True))
        self.pos = match.end() + size
        return True

    def read_atom(self) -> None:
        text = self.text
        end = self.pos + 1
        while end < len(text) and text[end] not in " \t\r\n)":
            end += 1
        token = text[self.pos : end]
        if token == ")":
            self.fail("unbalanced ')'")
        self.stack[-1].append(Nil() if upper_ascii(token) == "NIL" else Atom(token))
        self.pos = end


def parse_args(text: str, *, lenient: bool = False) -> tuple[Arg, ...]:
    """Parse IMAP arguments (``{n}\\r\\n`` and ``~{n}\\r\\n`` literals inline) into args.

    Atoms end at space or ``)`` only, so ``BODY[HEADER.FIELDS`` stays one atom as in the
    reference implementation. In lenient mode (server replies, whose resp-text is free
    text) unbalanced quotes, parentheses and short literals are accepted.
    Raises `ArgParseError` otherwise. Spec: RFC 9051 §4, §7.
    """
    return _ArgReader(text, lenient).run()


def render(args: Sequence[Arg]) -> str:
    """Render args back to IMAP-like text for failure messages."""
    parts: list[str] = []
    for arg in args:
        if isinstance(arg, Nil):
            parts.append("NIL")
        elif isinstance(arg, ListArg):
            parts.append("(" + render(arg.items) + ")")
        elif isinstance(arg, String):
            if arg.literal:
                parts.append(f"{{{len(arg.value)}}}\\r\\n{arg.value!r}")
            else:
                parts.append('"' + arg.value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            parts.append(arg.value)
    return " ".join(parts)


# -------------------------------------------------------------- variables ----


class Bindings:
    """Variable values of one script run, plus the relative sequence map.

    ``values`` maps names (without ``$``) to text. ``seqmap[i]`` is the current
    sequence number of the message that was number ``i + 1`` when the current
    command group started (0 once expunged).
    """

    def __init__(self, initial: Mapping[str, str]) -> None:
        self.values: dict[str, str] = dict(initial)
        self.seqmap: list[int] = []
        self.modseq_index = 0
        self.modseq_value = 0

    def reset_seqmap(self, count: int) -> None:
        """Start a new command group whose connection knows ``count`` messages."""
        self.seqmap = list(range(1, count + 1))

    def expunge(self, seq: int) -> None:
        """Apply an EXPUNGE of sequence number ``seq`` to the map. Spec: RFC 9051 §7.5.1."""
        if seq < 1 or seq > len(self.seqmap):
            return
        for index in range(seq - 1, len(self.seqmap)):
            if self.seqmap[index] == seq:
                self.seqmap[index] = 0
            elif self.seqmap[index] > seq:
                self.seqmap[index] -= 1

    def relative_seq(self, seq: int) -> str:
        """Text of ``$N``: the current number of initial message N, or a marker."""
        if seq == 0:
            return "<zero seq>"
        if seq > len(self.seqmap):
            return "<out of range>"
        if self.seqmap[seq - 1] == 0:
            return "<expunged>"
        return str(self.seqmap[seq - 1])

    def bind_modseq(self, index: int, text: str) -> str:
        """Check a new ``$modseqN`` value against earlier ones; return the value to bind."""
        if not text.isdigit():
            return "$modseq-not-number"
        if self.modseq_index > index:
            return "$modseq-order-mismatch"
        value = int(text)
        least = self.modseq_value + (index - self.modseq_index)
        result = text
        if value < least:
            result = f"$modseq-at-least-{least}"
            value = least
        self.modseq_index = index
        self.modseq_value = value
        return result


def _variable_at(pattern: str, pos: int) -> tuple[str, int]:
    """Read a variable name after the ``$`` at ``pos - 1``; return (name, next pos)."""
    if pos < len(pattern) and pattern[pos] == "{":
        end = pattern.find("}", pos + 1)
        if end < 0:
            return "", len(pattern)
        return pattern[pos + 1 : end], end + 1
    match = _VAR_CHAR_RE.match(pattern, pos)
    end = match.end() if match else pos
    return pattern[pos:end], end


def expand_command(text: str, bindings: Bindings) -> str:
    """Substitute variables in a command line before it is sent.

    ``$$`` gives ``$``; ``$!...`` directives are dropped; ``$N`` is a relative sequence.
    Raises `UnboundVariable` for a variable without a value.
    """
    out: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char != "$" or pos + 1 == len(text):
            out.append(char)
            pos += 1
            continue
        nxt = text[pos + 1]
        if nxt == "$":
            out.append("$")
            pos += 2
            continue
        if nxt == "!":
            end = text.find(" ", pos)
            pos = len(text) if end < 0 else end + 1
            continue
        name, pos = _variable_at(text, pos + 1)
        if name.isdigit():
            out.append(bindings.relative_seq(int(name)))
            continue
        value = bindings.values.get(name)
        if value is None:
            raise UnboundVariable(name)
        out.append(value)
    return "".join(out)


class _Expander:
    """Expands one pattern string against one input string, binding variables."""

    def __init__(self, bindings: Bindings) -> None:
        self.bindings = bindings
        self.icase = True

    def expand(self, pattern: str, text: str) -> str | None:
        """Return the expanded pattern, or None when it already cannot match ``text``."""
        out: list[str] = []
        pos = 0
        cursor = 0
        while pos < len(pattern):
            char = pattern[pos]
            if char != "$" or pattern[pos + 1 : pos + 2] == "$":
                if char == "$":
                    pos += 1
                    char = pattern[pos]
                if cursor >= len(text) or upper_ascii(char) != upper_ascii(text[cursor]):
                    return None
                out.append(char)
                cursor += 1
                pos += 1
                continue
            name, pos = _variable_at(pattern, pos + 1)
            value = self.value_of(name, pattern[pos:], text, cursor)
            if not text.startswith(value, cursor):
                return None
            out.append(value)
            cursor += len(value)
        return "".join(out)

    def value_of(self, name: str, rest: str, text: str, cursor: int) -> str:
        """Value for variable ``name``; unbound ones take input up to ``rest``'s next char."""
        if name.isdigit():
            return self.bindings.relative_seq(int(name))
        if name.startswith("case:"):
            self.icase = False
            return name[5:]
        value = self.bindings.values.get(name) if name else None
        if value is not None:
            return value
        stop = rest
        stop_icase = True
        if rest.startswith("$"):
            sub = _Expander(self.bindings)
            stop = sub.expand(rest, text[cursor:]) or ""
            stop_icase = sub.icase
        end = cursor
        if stop:
            first = stop[0]
            while end < len(text):
                same = (
                    upper_ascii(text[end]) == upper_ascii(first)
                    if stop_icase
                    else text[end] == first
                )
                if same:
                    break
                end += 1
        else:
            end = len(text)
        value = text[cursor:end]
        if name.startswith("modseq") and name[6:].isdigit():
            value = self.bindings.bind_modseq(int(name[6:]), value)
            self.bindings.values[name] = value
        elif name:
            self.bindings.values[name] = value
        return value


@dataclass(slots=True)
class _ListRules:
    """The ``$!`` directives at the head of a pattern list."""

    unordered: bool = False
    chain: int = 1
    noextra: bool | None = None
    ignores: tuple[str, ...] = ()
    bans: tuple[str, ...] = ()


def _read_directives(pattern: Sequence[Arg]) -> tuple[_ListRules, Sequence[Arg]]:
    rules = _ListRules()
    index = 0
    while index < len(pattern):
        arg = pattern[index]
        if not isinstance(arg, Atom) or not arg.value.startswith("$!"):
            break
        word = arg.value[2:]
        if word.startswith("unordered"):
            rules.unordered = True
            if rules.noextra is None:
                rules.noextra = False
            if word.startswith("unordered="):
                rules.chain = max(1, int(word[10:] or "1"))
        elif word == "ordered":
            rules.unordered = False
        elif word == "extra":
            rules.noextra = False
        elif word == "noextra":
            rules.noextra = True
        elif word.startswith("ignore="):
            rules.ignores += (word[7:],)
        elif word.startswith("ban="):
            rules.bans += (word[4:],)
        index += 1
    if rules.noextra is None:
        rules.noextra = True
    return rules, pattern[index:]


class Matcher:
    """Matches expected args (a script pattern) against actual args (a server reply).

    Bindings made by a failed attempt are rolled back; bindings of a successful match
    stay. Spec: imaptest scripted_test.md ("Variables", "Directives").
    """

    def __init__(self, bindings: Bindings) -> None:
        self.bindings = bindings

    def match(self, pattern: Sequence[Arg], actual: Sequence[Arg], *, prefix: bool) -> int:
        """Return `FULL_MATCH`, or the number of leading pattern args that matched.

        With ``prefix`` the last pattern arg may be a prefix of its actual arg and
        actual args beyond the pattern are allowed (resp-text of OK/NO/BAD/BYE).
        """
        saved = dict(self.bindings.values)
        result = self._args(pattern, actual, len(pattern) + len(actual) + 1, prefix)
        if result != FULL_MATCH:
            self.bindings.values = saved
        return result

    def _args(self, pattern: Sequence[Arg], actual: Sequence[Arg], limit: int, prefix: bool) -> int:
        matched = 0
        cursor = 0
        index = 0
        while index < len(pattern) and limit > 0:
            expected = pattern[index]
            got = actual[cursor] if cursor < len(actual) else None
            if isinstance(expected, Nil):
                if not isinstance(got, Nil):
                    return matched
            elif isinstance(expected, ListArg):
                if not isinstance(got, ListArg):
                    return matched
                sub = self._list(expected.items, got.items)
                if sub != FULL_MATCH:
                    return matched + sub
            else:
                skip = self._skip_special(expected.value, actual, cursor)
                if skip is not None:
                    cursor = skip
                elif got is None or not self._scalar(
                    expected.value, got, prefix and index == len(pattern) - 1
                ):
                    return matched
            matched += 1
            cursor += 1
            index += 1
            limit -= 1
        if prefix or cursor >= len(actual) or limit == 0:
            return FULL_MATCH
        return matched

    @staticmethod
    def _skip_special(value: str, actual: Sequence[Arg], cursor: int) -> int | None:
        """Handle ``$`` against a list and ``$]``; return the last consumed index."""
        if cursor >= len(actual):
            return None
        if value == "$" and isinstance(actual[cursor], ListArg):
            return cursor
        if value == "$]":
            while cursor < len(actual):
                arg = actual[cursor]
                if not isinstance(arg, Atom) or "]" in arg.value:
                    break
                cursor += 1
            return cursor
        return None

    def _scalar(self, pattern: str, got: Arg, prefix: bool) -> bool:
        text = as_text(got)
        if text is None:
            return False
        # The reference tool compares C strings: both sides end at their first NUL.
        pattern = pattern.split("\0", 1)[0]
        text = text.split("\0", 1)[0]
        expander = _Expander(self.bindings)
        expanded = expander.expand(pattern, text)
        if expanded is None:
            return False
        if expander.icase:
            text, expanded = upper_ascii(text), upper_ascii(expanded)
        return text.startswith(expanded) if prefix else text == expanded

    def _list(self, pattern: Sequence[Arg], actual: Sequence[Arg]) -> int:
        rules, body = _read_directives(pattern)
        if not rules.unordered:
            return self._args(body, actual, len(body) + len(actual) + 1, False)
        chain = rules.chain
        if len(actual) % chain != 0:
            return 0
        used = [False] * len(actual)
        found = 0
        for start in range(0, len(body), chain):
            piece = body[start : start + chain]
            hit = self._find_chain(piece, actual, chain)
            if hit is None:
                return found
            used[hit] = True
            found += 1
        return FULL_MATCH if self._extras_allowed(rules, actual, used) else found

    def _find_chain(self, piece: Sequence[Arg], actual: Sequence[Arg], chain: int) -> int | None:
        for offset in range(0, len(actual), chain):
            saved = dict(self.bindings.values)
            if self._args(piece, actual[offset:], chain, False) == FULL_MATCH:
                return offset
            self.bindings.values = saved
        return None

    @staticmethod
    def _extras_allowed(rules: _ListRules, actual: Sequence[Arg], used: list[bool]) -> bool:
        for offset in range(0, len(actual), rules.chain):
            if used[offset]:
                continue
            text = as_text(actual[offset])
            if text is None:
                continue
            if rules.noextra and not any(equal_icase(text, item) for item in rules.ignores):
                return False
            if not rules.noextra and any(equal_icase(text, item) for item in rules.bans):
                return False
        return True
