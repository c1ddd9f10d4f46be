"""Running the command groups of a parsed script over live IMAP connections.

A command group is sent (pipelined) on its connection; responses are read from that
connection only until every command of the group has its tagged reply. Untagged
replies are matched against the group's expectations as they arrive; a reply may
satisfy several expectations. Bare ``append`` commands take the next message of the
script's mbox.

Spec: imaptest scripted_test.md ("Commands", "Variables").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .client import ConnectionClosed, ImapConnection, Response, ResponseKind, literal_segments
from .match import (
    FULL_MATCH,
    Arg,
    Atom,
    Bindings,
    ListArg,
    Matcher,
    String,
    UnboundVariable,
    as_text,
    expand_command,
    parse_args,
    render,
    upper_ascii,
)
from .mbox import MboxSource
from .script import CommandGroup, Existence, Script, ScriptCommand, UntaggedExpectation

_PREFIX_WORDS = frozenset({"OK", "NO", "BAD", "BYE"})


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed check: script line, the (expanded) command and what went wrong."""

    line: int
    command: str
    message: str

    def describe(self) -> str:
        """Multi-line human-readable form."""
        return f"line {self.line}: {self.command}\n  {self.message}"


class ScriptAborted(Exception):
    """The script cannot go on (connection lost, timeout, failed set-up)."""


def quote(text: str) -> str:
    """An IMAP quoted string. Spec: RFC 9051 §4.3."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Connection:
    """One script connection and what the client has learnt from it."""

    def __init__(self, imap: ImapConnection, index: int) -> None:
        self.imap = imap
        self.index = index
        self.exists = 0
        self.capabilities: tuple[str, ...] = ()
        self.seen_bye = False
        self.greeting: tuple[Arg, ...] = ()
        self._tag = 0

    def next_tag(self) -> str:
        """A fresh tag such as ``1.7`` (connection number, command number)."""
        self._tag += 1
        return f"{self.index + 1}.{self._tag}"

    def read(self) -> tuple[Response, tuple[Arg, ...]]:
        """Read one response, parse it leniently and note state it reveals."""
        response = self.imap.read_response()
        args = parse_args(response.text, lenient=True)
        if response.kind is not ResponseKind.CONTINUATION:
            self._observe(args, response.kind is ResponseKind.UNTAGGED)
        return response, args

    def _observe(self, args: tuple[Arg, ...], untagged: bool) -> None:
        words = [upper_ascii(as_text(arg) or "") for arg in args[:2]]
        if untagged and words[:1] == ["CAPABILITY"]:
            self.capabilities = tuple(as_text(a) or "" for a in args[1:])
        elif untagged and words[:1] == ["BYE"]:
            self.seen_bye = True
        elif len(words) == 2 and words[1] == "EXISTS" and words[0].isdigit():
            self.exists = int(words[0])
        elif len(words) == 2 and words[1] == "EXPUNGE" and self.exists > 0:
            self.exists -= 1
        prefixed = len(words) == 2 and words[0] in _PREFIX_WORDS | {"PREAUTH"}
        if prefixed and words[1].startswith("[CAPABILITY"):
            self.capabilities = _capability_code(args[1:])


def _capability_code(args: tuple[Arg, ...]) -> tuple[str, ...]:
    caps: list[str] = []
    for arg in args:
        text = as_text(arg) or ""
        caps.append(text.removeprefix("[CAPABILITY").removesuffix("]"))
        if text.endswith("]"):
            break
    return tuple(cap for cap in caps if cap)


Dispatch = Callable[[Response, tuple[Arg, ...]], None]


def send_command(conn: Connection, tag: str, body: bytes, dispatch: Dispatch) -> Response | None:
    """Send ``tag SP body CRLF``, waiting for ``+`` at each synchronizing literal.

    Other responses read meanwhile go to ``dispatch``. Returns the command's tagged
    reply if the server answered before the whole command was sent, else None.
    Spec: RFC 9051 §4.3, §7.5.
    """
    for segment in literal_segments(tag.encode("latin-1") + b" " + body):
        conn.imap.send(segment.data)
        while segment.wait:
            response, args = conn.read()
            if response.kind is ResponseKind.CONTINUATION:
                break
            if response.kind is ResponseKind.TAGGED and response.tag == tag:
                return response
            dispatch(response, args)
    return None


def simple_command(
    conn: Connection, body: bytes, untagged: list[tuple[Arg, ...]] | None = None
) -> tuple[Arg, ...]:
    """Run one command to completion; return its tagged reply args (status first)."""

    def collect(response: Response, args: tuple[Arg, ...]) -> None:
        if untagged is not None and response.kind is ResponseKind.UNTAGGED:
            untagged.append(args)

    tag = conn.next_tag()
    early = send_command(conn, tag, body, collect)
    if early is not None:
        return parse_args(early.text, lenient=True)
    while True:
        response, args = conn.read()
        if response.kind is ResponseKind.TAGGED and response.tag == tag:
            return args
        collect(response, args)


def append_body(mailbox_args: str, source: MboxSource, with_date: bool) -> bytes:
    """``APPEND <args> ["date"] {n}CRLF<message>`` with the next mbox message."""
    message = source.next_message()
    date = f' "{message.imap_date_time()}"' if with_date else ""
    head = f"APPEND {mailbox_args}{date} {{{len(message.data)}}}\r\n"
    return head.encode("latin-1") + message.data


def _has_message_body(args_text: str) -> bool:
    """Whether ``APPEND`` arguments already carry the message (literal or CATENATE)."""
    args = parse_args(args_text, lenient=True)
    index = 0
    if not args:
        return False
    if index + 1 < len(args) and isinstance(args[index + 1], ListArg):
        index += 1
    nxt = args[index + 1] if index + 1 < len(args) else None
    if isinstance(nxt, String) and not nxt.literal:
        index += 1
        nxt = args[index + 1] if index + 1 < len(args) else None
    if isinstance(nxt, String):
        return nxt.literal
    return isinstance(nxt, Atom) and upper_ascii(nxt.value) == "CATENATE"


def _logs_out(group: CommandGroup) -> bool:
    return group.has_bye or any(cmd.text.lower() == "logout" for cmd in group.commands)


@dataclass(slots=True)
class _GroupState:
    group: CommandGroup
    conn: Connection
    pending: dict[str, ScriptCommand] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    first_tag: str = ""
    found: list[bool] = field(default_factory=list)
    best: list[tuple[int, str]] = field(default_factory=list)
    mismatches: int = 0
    first_extra: str | None = None


class ScriptSession:
    """Executes the groups of one script; failures accumulate in ``failures``."""

    def __init__(
        self,
        script: Script,
        connections: list[Connection],
        bindings: Bindings,
        source: MboxSource,
        mailbox: str,
    ) -> None:
        self.script = script
        self.connections = connections
        self.bindings = bindings
        self.matcher = Matcher(bindings)
        self.source = source
        self.mailbox = mailbox
        self.failures: list[Failure] = []
        self._failed_group = False

    def fail(self, state: _GroupState | None, message: str) -> None:
        """Record a failure against the group's first command."""
        if state is None or not state.group.commands:
            self.failures.append(Failure(0, "", message))
            return
        command = state.group.commands[0]
        shown = state.sent[0] if state.sent else command.text
        self.failures.append(Failure(command.line, shown.split("\r\n", 1)[0], message))

    def run(self) -> None:
        """Run every group in order. Raises `ScriptAborted` when the session breaks."""
        for group in self.script.groups:
            if group.banner:
                continue
            self.run_group(group)

    def check_banner(self, group: CommandGroup, greeting: tuple[Arg, ...]) -> None:
        """Match a leading untagged-only group against connection 1's greeting."""
        state = self._new_state(group, self.connections[0])
        self._match_untagged(state, greeting)
        self._finish_group(state)

    def _new_state(self, group: CommandGroup, conn: Connection) -> _GroupState:
        count = len(group.untagged)
        return _GroupState(group, conn, found=[False] * count, best=[(0, "")] * count)

    def run_group(self, group: CommandGroup) -> None:
        """Send one group and read until all its tagged replies arrived."""
        conn = self.connections[group.connection]
        state = self._new_state(group, conn)
        self.bindings.reset_seqmap(conn.exists)
        try:
            for command in group.commands:
                if not self._send(state, command):
                    return
            while state.pending:
                response, args = conn.read()
                self._dispatch(state, response, args)
        except ConnectionClosed as exc:
            if not self._closed_by_bye(state):
                self.fail(state, f"Unexpected disconnection: {exc}")
                raise ScriptAborted(str(exc)) from exc
        except TimeoutError as exc:
            self.fail(state, "Timed out waiting for the server's reply")
            raise ScriptAborted("timeout") from exc
        self._finish_group(state)

    def _send(self, state: _GroupState, command: ScriptCommand) -> bool:
        try:
            text = expand_command(command.text, self.bindings)
        except UnboundVariable as exc:
            self.fail(state, f"Uninitialized variable: {exc.args[0]}")
            return False
        tag = state.conn.next_tag()
        state.pending[tag] = command
        state.sent.append(text)
        if not state.first_tag:
            state.first_tag = tag
        lowered = text.lower()
        if lowered == "append":
            body = append_body(quote(self.mailbox), self.source, with_date=True)
        elif lowered.startswith("append ") and not _has_message_body(text[7:]):
            body = append_body(text[7:], self.source, with_date=False)
        else:
            body = text.encode("latin-1")
        early = send_command(
            state.conn, tag, body, lambda resp, args: self._dispatch(state, resp, args)
        )
        if early is not None:
            self._dispatch(state, early, parse_args(early.text, lenient=True))
        return True

    def _dispatch(self, state: _GroupState, response: Response, args: tuple[Arg, ...]) -> None:
        if response.kind is ResponseKind.UNTAGGED:
            if state.group.untagged or not (
                self.script.ignore_extra_untagged or _logs_out(state.group)
            ):
                self._match_untagged(state, args)
            words = [upper_ascii(as_text(a) or "") for a in args[:2]]
            if len(words) == 2 and words[1] == "EXPUNGE" and words[0].isdigit():
                self.bindings.expunge(int(words[0]))
        elif response.kind is ResponseKind.TAGGED:
            self._match_tagged(state, response, args)

    def _match_tagged(self, state: _GroupState, response: Response, args: tuple[Arg, ...]) -> None:
        command = state.pending.pop(response.tag, None)
        if command is None:
            self.fail(state, f"Tagged reply for an unknown tag: {response.tag} {response.text}")
            return
        self.bindings.values["tag"] = response.tag
        result = self.matcher.match(command.reply, args, prefix=True)
        self.bindings.values.pop("tag", None)
        if result != FULL_MATCH:
            self.fail(
                state, f"Expected tagged reply '{render(command.reply)}', got '{render(args)}'"
            )

    def _match_untagged(self, state: _GroupState, args: tuple[Arg, ...]) -> None:
        first = as_text(args[0]) if args else None
        prefix = first is not None and upper_ascii(first) in _PREFIX_WORDS
        found_some = False
        for index, expected in enumerate(state.group.untagged):
            if state.found[index]:
                continue
            result = self._attempt(state, expected, args, prefix)
            if result == FULL_MATCH:
                if expected.existence is Existence.MUST_NOT:
                    self.fail(
                        state,
                        f"Unexpected untagged match:\n  Match: {render(expected.pattern)}"
                        f"\n  Reply: {render(args)}",
                    )
                    return
                state.found[index] = True
                found_some = True
                if state.group.ordered:
                    break
                continue
            if result > state.best[index][0] or not state.best[index][1]:
                state.best[index] = (result, render(args))
            if state.group.ordered and expected.existence is Existence.MUST:
                break
        if not found_some:
            state.mismatches += 1
            if not self.script.ignore_extra_untagged and state.first_extra is None:
                state.first_extra = render(args)

    def _attempt(
        self, state: _GroupState, expected: UntaggedExpectation, args: tuple[Arg, ...], prefix: bool
    ) -> int:
        if state.first_tag:
            self.bindings.values["tag"] = state.first_tag
        result = self.matcher.match(expected.pattern, args, prefix=prefix)
        self.bindings.values.pop("tag", None)
        return result

    def _closed_by_bye(self, state: _GroupState) -> bool:
        if not (state.group.has_bye and state.conn.seen_bye):
            return False
        for command in state.group.commands:
            if len(command.reply) != 1 or as_text(command.reply[0]) != "":
                self.fail(state, f"Expected '{render(command.reply)}' but BYE disconnected")
        state.pending.clear()
        return True

    def _finish_group(self, state: _GroupState) -> None:
        missing = [
            index
            for index, expected in enumerate(state.group.untagged)
            if expected.existence is Existence.MUST and not state.found[index]
        ]
        if missing:
            expected = state.group.untagged[missing[0]]
            unexpanded = render(expected.pattern)
            try:
                expanded = expand_command(unexpanded, self.bindings)
            except UnboundVariable:
                expanded = unexpanded
            self.fail(
                state,
                f"Missing {len(missing)} untagged replies ({state.mismatches} mismatches)"
                f"\n  - first unexpanded: {unexpanded}"
                f"\n  - first expanded: {expanded}"
                f"\n  - best match: {state.best[missing[0]][1]}",
            )
        if state.first_extra is not None:
            self.fail(
                state,
                f"{state.mismatches} unexpected untagged replies received,"
                f" first: {state.first_extra}",
            )
        if state.group.sleep_ms:
            time.sleep(state.group.sleep_ms / 1000)
