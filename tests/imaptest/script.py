"""Parser of imaptest script files into typed command groups.

A script is a header (``key: value`` lines up to the first empty line) and then
command groups. Multi-line ``{{{ ... }}}`` blocks become IMAP literals exactly as the
reference tool builds them: lines joined with CRLF (``~{{{`` blocks: joined with LF,
bytes kept as in the file), the newline before ``}}}`` dropped, and ``{n}\\r\\n`` (or
``~{n}\\r\\n``) put in front.

Spec: imaptest scripted_test.md (``conformance/imaptest/scripted_test.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path

from .match import Arg, ArgParseError, Atom, ListArg, parse_args, upper_ascii

# Upper bound on ``connections:`` (same bound as the reference tool).
MAX_CONNECTIONS = 100
DEFAULT_MBOX_NAME = "default.mbox"

_REPLY_WORDS = {"OK": "ok", "NO": "no", "BAD": "bad", '""': ""}
_INTERVAL_RE = re.compile(r"(\d+)\s*(ms|msecs?|s|secs?|)", re.IGNORECASE)
_DIRECTIVE_WORDS = ("unordered", "ordered", "noextra", "extra", "ignore=", "ban=")


class ScriptError(ValueError):
    """A script file that does not follow the format; carries the line number."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path.name} line {line}: {message}")
        self.line = line


class StartupState(IntEnum):
    """How far the runner prepares the session before the first command."""

    NONAUTH = 0
    AUTH = 1
    CREATED = 2
    APPENDED = 3
    SELECTED = 4


class Existence(StrEnum):
    """Marker of an expected untagged reply: ``*`` must, ``!`` must not, ``?`` may appear."""

    MUST = "*"
    MUST_NOT = "!"
    MAY = "?"


@dataclass(frozen=True, slots=True)
class UntaggedExpectation:
    """One ``* ...`` / ``! ...`` / ``? ...`` line; ``pattern`` has default directives added."""

    existence: Existence
    pattern: tuple[Arg, ...]
    line: int


@dataclass(frozen=True, slots=True)
class ScriptCommand:
    """One command: its text (variables unexpanded) and the expected tagged reply pattern.

    ``tag`` is the script's ``tagN`` number (0 when none); ``reply`` starts with the
    status word (``ok``/``no``/``bad``, or ``""`` for any status).
    """

    text: str
    reply: tuple[Arg, ...]
    tag: int
    line: int


@dataclass(frozen=True, slots=True)
class CommandGroup:
    """Commands sent together on one connection (0-based) and the replies they expect."""

    connection: int
    commands: tuple[ScriptCommand, ...]
    untagged: tuple[UntaggedExpectation, ...]
    ordered: bool = False
    sleep_ms: int = 0
    has_bye: bool = False
    banner: bool = False


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script. ``message_count`` None means all messages of the mbox."""

    name: str
    path: Path
    mbox_path: Path
    capabilities: tuple[str, ...]
    connections: int
    message_count: int | None
    state: StartupState
    ignore_extra_untagged: bool
    connection_users: tuple[str | None, ...]
    requires_user2: bool
    groups: tuple[CommandGroup, ...]


@dataclass(slots=True)
class _GroupBuilder:
    connection: int = 0
    commands: list[ScriptCommand] = field(default_factory=list)
    replies: dict[int, tuple[Arg, ...]] = field(default_factory=dict)
    untagged: list[UntaggedExpectation] = field(default_factory=list)
    ordered: bool = False
    sleep_ms: int = 0
    has_bye: bool = False
    banner: bool = False

    @property
    def pending(self) -> int:
        return sum(1 for cmd in self.commands if cmd.tag not in self.replies)

    def build(self) -> CommandGroup:
        commands = tuple(
            ScriptCommand(c.text, self.replies.get(c.tag, c.reply), c.tag, c.line)
            for c in self.commands
        )
        return CommandGroup(
            self.connection,
            commands,
            tuple(self.untagged),
            self.ordered,
            self.sleep_ms,
            self.has_bye,
            self.banner,
        )


@dataclass(slots=True)
class _Header:
    capabilities: tuple[str, ...] = ()
    connections: int = 1
    message_count: int | None = None
    """scripted_test.md, ``messages``: "Default: all messages"."""
    state: StartupState = StartupState.SELECTED
    ignore_extra_untagged: bool = True
    users: dict[int, str] = field(default_factory=dict)
    requires_user2: bool = False


def read_logical_lines(data: bytes) -> list[tuple[int, str]]:
    """Split script bytes into (first line number, text) with ``{{{`` blocks folded in.

    Text is latin-1 decoded. Empty lines are kept (they end the header); comment lines
    (``#``) are dropped. Raises ValueError for an unterminated block.
    """
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    result: list[tuple[int, str]] = []
    block: bytearray | None = None
    binary = False
    start_pos = last_end = start_line = 0
    for number, raw in enumerate(raw_lines, start=1):
        if block is not None:
            if not raw.startswith(b"}}}"):
                block += raw
                last_end = len(block)
                block += b"\n" if binary else b"\r\n"
                continue
            del block[last_end:]
            size = len(block) - start_pos
            block[start_pos:start_pos] = (b"~" if binary else b"") + b"{%d}\r\n" % size
            rest = raw[3:]
            if rest.endswith(b"{{{"):
                binary = rest.endswith(b"~{{{")
                block += rest[: -4 if binary else -3]
                start_pos = last_end = len(block)
                continue
            block += rest
            result.append((start_line, block.decode("latin-1")))
            block = None
            continue
        start_line = number
        if raw.startswith(b"#"):
            continue
        if raw.endswith(b"{{{"):
            binary = raw.endswith(b"~{{{")
            block = bytearray(raw[: -4 if binary else -3])
            start_pos = last_end = len(block)
            continue
        result.append((number, raw.decode("latin-1")))
    if block is not None:
        raise ValueError(f"multi-line block starting at line {start_line} not ended")
    return result


def _parse_header_line(header: _Header, text: str) -> str | None:
    """Apply one header line; return an error message or None."""
    key, sep, value = text.partition(":")
    if not sep:
        return "missing ':'"
    key = key.strip().lower()
    value = value.strip()
    if key == "capabilities":
        header.capabilities = tuple(value.split())
    elif key == "connections":
        count = int(value) if value.isdigit() else 0
        if not 0 < count <= MAX_CONNECTIONS:
            return "bad connection count"
        header.connections = count
    elif key == "ignore_extra_untagged":
        header.ignore_extra_untagged = value.startswith("y")
    elif key.startswith("user ") and key[5:].isdigit() and int(key[5:]) > 0:
        if value in ("$user2", "${user2}"):
            header.requires_user2 = True
        header.users[int(key[5:]) - 1] = value
    elif key == "messages":
        header.message_count = None if value == "all" else int(value or "0")
    elif key == "state":
        try:
            header.state = StartupState[value.upper()]
        except KeyError:
            return f"unknown state {value!r}"
    else:
        return f"unknown setting {key!r}"
    return None


def _reply_prefix(text: str) -> tuple[str | None, int, str]:
    """Split optional ``tagN`` and status word off a line: (status or None, tag, rest)."""
    word, _, rest = text.partition(" ")
    tag = 0
    if word.lower().startswith("tag") and word[3:].isdigit() and int(word[3:]) > 0 and rest:
        tag = int(word[3:])
        text = rest
        word, _, rest = text.partition(" ")
    status = _REPLY_WORDS.get(upper_ascii(word))
    if status is None:
        return None, tag, text
    return status, tag, rest


def _split_connection(text: str) -> tuple[int, str]:
    """Split the leading connection number (1-based) off a line; 0 when absent."""
    word, _, rest = text.partition(" ")
    if word.isdigit() and int(word) > 0:
        return int(word), rest
    return 0, text


def _interval_ms(text: str) -> int:
    """Parse a ``!sleep`` interval such as ``100ms``, ``2s`` or ``2`` (seconds)."""
    match = _INTERVAL_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad interval {text!r}")
    number, unit = int(match.group(1)), match.group(2).lower()
    return number if unit.startswith("m") else number * 1000


def _untagged_existence(text: str) -> Existence | None:
    if len(text) >= 2 and text[1] == " " and text[0] in "*!?":
        return Existence(text[0])
    return None


# ---------------------------------------------------- default directives ----


def _directive_count(items: tuple[Arg, ...]) -> tuple[int, int, bool]:
    """Return (leading directive count, chain size, any directive) of a pattern list."""
    count = 0
    chain = 1
    for item in items:
        if not isinstance(item, Atom) or not item.value.startswith("$!"):
            break
        word = item.value[2:]
        if not word.startswith(_DIRECTIVE_WORDS):
            raise ValueError(f"unknown directive {item.value}")
        if word.startswith("unordered="):
            if not word[10:].isdigit():
                raise ValueError(f"broken directive {item.value}")
            chain = int(word[10:])
        count += 1
    return count, chain, count > 0


def _defaults_for(reply: str, path: tuple[tuple[int, str | None], ...]) -> tuple[str, ...]:
    """Default directives of a list reached by ``path`` ((chain index, previous atom) per level)."""
    depth = len(path)
    if reply in ("list", "lsub") and depth == 1 and path[0][0] == 1:
        return ("$!unordered",)
    if reply == "status" and depth == 1 and path[0][0] == 2:
        return ("$!unordered=2",)
    if reply == "fetch" and depth == 1 and path[0][0] == 2:
        return ("$!unordered=2",)
    if reply == "fetch" and depth == 2 and path[0][0] == 2 and path[1][1] == "flags":
        return (
            "$!ignore=$HasNoAttachment",
            "$!ignore=$HasAttachment",
            "$!ignore=\\recent",
            "$!noextra",
            "$!unordered",
        )
    return ()


def _with_defaults(
    items: tuple[Arg, ...], reply: str, path: tuple[tuple[int, str | None], ...]
) -> tuple[Arg, ...]:
    count, chain, explicit = _directive_count(items)
    if (len(items) - count) % chain != 0:
        raise ValueError(f"list argument count does not fit chain size {chain}")
    if not explicit and path:
        items = tuple(Atom(d) for d in _defaults_for(reply, path)) + items
    result: list[Arg] = []
    prev_atom: str | None = None
    for index, item in enumerate(items):
        if isinstance(item, Atom):
            prev_atom = item.value.lower()
        if isinstance(item, ListArg):
            chain_index = index if chain == 1 else index % chain
            sub_path = (*path, (chain_index, prev_atom))
            item = ListArg(_with_defaults(item.items, reply, sub_path))
        result.append(item)
    return tuple(result)


def untagged_pattern(text: str) -> tuple[Arg, ...]:
    """Parse the text after ``* `` into a pattern with the default list directives.

    Defaults (unless the list has its own ``$!`` directives): ``LIST``/``LSUB`` flag
    lists ``$!unordered``; ``STATUS`` item list and ``FETCH`` item list
    ``$!unordered=2``; ``FETCH`` ``FLAGS`` lists ``$!unordered $!noextra`` ignoring
    ``\\Recent``. Raises ValueError on bad directives or lists.
    """
    args = parse_args(text)
    reply = ""
    if args and isinstance(args[0], Atom):
        reply = args[0].value
        if reply[:1] == "$" or reply[:1].isdigit():
            second = args[1] if len(args) > 1 else None
            reply = second.value if isinstance(second, Atom) else ""
    return _with_defaults(args, reply.lower(), ())


# ------------------------------------------------------------ the parser ----


class _ScriptParser:
    """Builds a `Script` from logical lines."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.header = _Header()
        self.groups: list[_GroupBuilder] = []
        self.group: _GroupBuilder | None = None
        self.skip_stack: list[tuple[bool, bool]] = []
        self.skip = False

    def error(self, line: int, message: str) -> ScriptError:
        return ScriptError(self.path, line, message)

    def feed(self, line: int, text: str) -> None:
        if self.preprocess(line, text) or self.skip:
            return
        group = self.group
        if group is not None and self.group_line(group, line, text):
            return
        self.command_line(line, text)

    def preprocess(self, line: int, text: str) -> bool:
        """Handle ``!ifenv``/``!ifnenv``/``!else``/``!endif``; True when consumed."""
        for word, wanted in (("!ifenv ", True), ("!ifnenv ", False)):
            if text.startswith(word):
                present = text[len(word) :].strip() in self.env
                self.skip_stack.append((self.skip, False))
                if present != wanted:
                    self.skip = True
                return True
        if text in ("!else", "!endif"):
            if not self.skip_stack:
                raise self.error(line, f"{text} without !ifenv")
            outer_skip, else_seen = self.skip_stack[-1]
            if text == "!endif":
                self.skip = outer_skip
                self.skip_stack.pop()
            elif else_seen:
                raise self.error(line, "!else already seen")
            else:
                self.skip_stack[-1] = (outer_skip, True)
                if not outer_skip:
                    self.skip = not self.skip
            return True
        return False

    def group_line(self, group: _GroupBuilder, line: int, text: str) -> bool:
        """Lines that continue the current group; True when consumed."""
        if text.startswith("!sleep "):
            try:
                group.sleep_ms = _interval_ms(text[7:])
            except ValueError as exc:
                raise self.error(line, str(exc)) from exc
            return True
        if text.startswith("!output "):
            return True
        if text == "!ordered":
            group.ordered = True
            return True
        existence = _untagged_existence(text)
        if existence is not None:
            self.add_untagged(group, line, existence, text[2:])
            return True
        if group.pending == 0:
            return False
        conn, rest = (0, text)
        if self.header.connections > 1:
            conn, rest = _split_connection(text)
        status, tag, _ = _reply_prefix(rest)
        if status is None:
            return False
        if self.header.connections > 1:
            if conn == 0:
                raise self.error(line, "missing connection number")
            if conn - 1 != group.connection:
                raise self.error(line, "reply for wrong connection")
        self.finish_command(group, line, tag, rest)
        return True

    def add_untagged(
        self, group: _GroupBuilder, line: int, existence: Existence, text: str
    ) -> None:
        try:
            pattern = untagged_pattern(text)
        except (ArgParseError, ValueError) as exc:
            raise self.error(line, str(exc)) from exc
        first = pattern[0] if pattern else None
        if isinstance(first, Atom) and upper_ascii(first.value).startswith("BYE"):
            if existence is Existence.MAY:
                raise self.error(line, "'? BYE' is not supported")
            if existence is Existence.MUST:
                group.has_bye = True
        group.untagged.append(UntaggedExpectation(existence, pattern, line))

    def finish_command(self, group: _GroupBuilder, line: int, tag: int, text: str) -> None:
        if not any(cmd.tag == tag for cmd in group.commands):
            raise self.error(line, "reply for unknown tag")
        if tag in group.replies:
            raise self.error(line, "command already has a reply")
        try:
            args = parse_args(text)
        except ArgParseError as exc:
            raise self.error(line, str(exc)) from exc
        group.replies[tag] = args[1:] if tag else args

    def command_line(self, line: int, text: str) -> None:
        group = self.group
        if group is None or group.pending == 0:
            group = _GroupBuilder()
            self.groups.append(group)
            self.group = group
        conn = 0
        if self.header.connections > 1:
            conn, text = _split_connection(text)
            if conn == 0:
                raise self.error(line, "missing connection number")
            if conn > MAX_CONNECTIONS:
                raise self.error(line, "too many connections")
            if group.commands and group.connection != conn - 1:
                raise self.error(line, "all pipelined commands must use the same connection")
            group.connection = conn - 1
            self.header.connections = max(self.header.connections, conn)
        status, tag, rest = _reply_prefix(text)
        if tag == 0 and group.pending > 0:
            raise self.error(line, "missing reply of the previous command group")
        if tag and any(cmd.tag == tag for cmd in group.commands):
            raise self.error(line, "tag reused within command group")
        if not group.commands and _untagged_existence(rest) is not None:
            group.banner = True
            existence = _untagged_existence(rest)
            assert existence is not None
            self.add_untagged(group, line, existence, rest[2:])
            return
        reply: tuple[Arg, ...] = (Atom(status),) if status is not None else ()
        group.commands.append(ScriptCommand(rest, reply, tag, line))
        if status is not None:
            group.replies[tag] = reply

    def finish(self, last_line: int) -> Script:
        if self.skip_stack:
            raise self.error(last_line, "!ifenv not closed with !endif")
        if not self.groups:
            raise self.error(last_line, "no commands in file")
        for group in self.groups:
            if group.pending:
                missing = next(c for c in group.commands if c.tag not in group.replies)
                raise self.error(missing.line, "missing tagged reply")
        groups = [group.build() for group in self.groups]
        if not _has_logout(groups):
            logout = ScriptCommand("logout", (Atom("ok"),), 0, 0)
            groups.append(CommandGroup(0, (logout,), ()))
        return self.build_script(tuple(groups))

    def build_script(self, groups: tuple[CommandGroup, ...]) -> Script:
        header = self.header
        users = tuple(header.users.get(i) for i in range(header.connections))
        mbox = self.path.with_name(self.path.name + ".mbox")
        if not mbox.exists():
            mbox = self.path.with_name(DEFAULT_MBOX_NAME)
        return Script(
            name=self.path.name,
            path=self.path,
            mbox_path=mbox,
            capabilities=header.capabilities,
            connections=header.connections,
            message_count=header.message_count,
            state=header.state,
            ignore_extra_untagged=header.ignore_extra_untagged,
            connection_users=users,
            requires_user2=header.requires_user2,
            groups=groups,
        )


def _has_logout(groups: list[CommandGroup]) -> bool:
    return any(
        group.has_bye or any(cmd.text.lower() == "logout" for cmd in group.commands)
        for group in groups
    )


def parse_script(path: Path, env: Mapping[str, str] | None = None) -> Script:
    """Read and parse one script file (its mbox is ``<name>.mbox`` or ``default.mbox``).

    ``env`` answers ``!ifenv``/``!ifnenv`` (default: the process environment).
    A final ``ok logout`` on connection 1 is added unless the script logs out itself.
    Raises `ScriptError` for malformed scripts. Spec: imaptest scripted_test.md.
    """
    parser = _ScriptParser(path, os.environ if env is None else env)
    try:
        lines = read_logical_lines(path.read_bytes())
    except ValueError as exc:
        raise ScriptError(path, 0, str(exc)) from exc
    header_done = False
    last = 0
    for number, text in lines:
        last = number
        if not header_done:
            if text == "":
                header_done = True
                continue
            problem = _parse_header_line(parser.header, text)
            if problem is not None:
                raise parser.error(number, problem)
            continue
        if text == "":
            continue
        parser.feed(number, text)
    return parser.finish(last)
