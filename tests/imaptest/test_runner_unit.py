"""Unit tests of the imaptest script parser, reply matcher, mbox reader and runner.

No real server is needed: the end-to-end cases use a tiny scripted server thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .client import literal_segments
from .match import (
    FULL_MATCH,
    Atom,
    Bindings,
    ListArg,
    Matcher,
    Nil,
    String,
    UnboundVariable,
    expand_command,
    parse_args,
)
from .mbox import read_mbox, to_crlf
from .runner import Outcome, ServerAddress, run_script, script_paths
from .script import Existence, ScriptError, StartupState, parse_script, untagged_pattern

SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "imaptest" / "tests"
SCRIPTS = script_paths([str(SCRIPTS_DIR)]) if SCRIPTS_DIR.is_dir() else []
needs_scripts = pytest.mark.skipif(not SCRIPTS, reason="imaptest scripts not present")


def _script(tmp_path: Path, text: str, name: str = "t") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    mbox = tmp_path / "default.mbox"
    if not mbox.exists():
        mbox.write_bytes(b"From a@b  Fri Feb 22 17:06:23 2008\nSubject: x\n\nbody\n\n")
    return path


# ----------------------------------------------------------------- parsing ----


@needs_scripts
def test_all_fifty_scripts_are_present() -> None:
    assert len(SCRIPTS) == 50


@needs_scripts
@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_script_parses(path: Path) -> None:
    script = parse_script(path, env={})
    assert script.groups
    assert script.mbox_path.exists()
    assert read_mbox(script.mbox_path)
    for group in script.groups:
        assert 0 <= group.connection < script.connections
        for command in group.commands:
            assert command.reply, f"line {command.line} has no expected status"


@needs_scripts
def test_pipelined_group_keeps_its_tags() -> None:
    script = parse_script(SCRIPTS_DIR / "pipeline", env={})
    assert script.state is StartupState.AUTH
    first = script.groups[0]
    assert [c.tag for c in first.commands] == [1, 2, 3, 4]
    assert all(c.reply == (Atom("ok"),) for c in first.commands)
    assert len(script.groups[1].untagged) == 4


@needs_scripts
def test_method_two_reply_with_code() -> None:
    script = parse_script(SCRIPTS_DIR / "select", env={})
    examine = next(g for g in script.groups if g.commands[0].text.startswith("examine"))
    assert examine.commands[0].reply == (Atom("ok"), Atom("[read-only]"))
    assert len(examine.untagged) == 5


@needs_scripts
def test_header_values() -> None:
    copy = parse_script(SCRIPTS_DIR / "copy", env={})
    assert copy.connections == 2 and copy.state is StartupState.CREATED
    assert copy.message_count is None  # no header: all messages (scripted_test.md)
    assert parse_script(SCRIPTS_DIR / "search-body", env={}).message_count is None
    urlauth2 = parse_script(SCRIPTS_DIR / "urlauth2", env={})
    assert urlauth2.requires_user2 and urlauth2.capabilities == ("urlauth",)
    assert urlauth2.connection_users == (None, "$user2")


@needs_scripts
def test_logout_is_added_only_when_missing() -> None:
    fetch = parse_script(SCRIPTS_DIR / "fetch", env={})
    assert fetch.groups[-1].commands[0].text == "logout"
    logout = parse_script(SCRIPTS_DIR / "logout", env={})
    assert logout.groups[-1].commands[0].text == "logout"
    assert logout.groups[-1].connection == 1 and logout.groups[-1].has_bye


@needs_scripts
def test_multiline_blocks_become_literals() -> None:
    script = parse_script(SCRIPTS_DIR / "fetch-body", env={})
    partial = next(g for g in script.groups if g.commands[0].text.endswith("<5.2>"))
    fetch_list = partial.untagged[0].pattern[2]
    assert isinstance(fetch_list, ListArg)
    assert fetch_list.items[-1] == String("3\r", literal=True)
    text = next(g for g in script.groups if g.commands[0].text == "fetch 1 rfc822.text")
    body = text.untagged[0].pattern[2]
    assert isinstance(body, ListArg) and body.items[-1] == String("body1\r\n\r\n", literal=True)


@needs_scripts
def test_banned_and_optional_untagged() -> None:
    expunge2 = parse_script(SCRIPTS_DIR / "expunge2", env={})
    assert expunge2.groups[-2].untagged[0].existence is Existence.MUST_NOT
    listext = parse_script(SCRIPTS_DIR / "listext", env={})
    marks = {u.existence for g in listext.groups for u in g.untagged}
    assert marks == {Existence.MUST, Existence.MUST_NOT, Existence.MAY}


def test_default_directives() -> None:
    fetch = untagged_pattern("1 fetch (uid $u flags (\\seen))")
    items = fetch[2]
    assert isinstance(items, ListArg) and items.items[0] == Atom("$!unordered=2")
    flags = items.items[-1]
    assert isinstance(flags, ListArg)
    assert Atom("$!noextra") in flags.items and Atom("$!ignore=\\recent") in flags.items
    status = untagged_pattern("status $mailbox (messages 0)")[2]
    assert isinstance(status, ListArg) and status.items[0] == Atom("$!unordered=2")
    listed = untagged_pattern("list () $sep $mailbox")[1]
    assert listed == ListArg((Atom("$!unordered"),))
    explicit = untagged_pattern("1 fetch (flags ($!extra))")[2]
    assert isinstance(explicit, ListArg)
    assert explicit.items[-1] == ListArg((Atom("$!extra"),))


def test_script_errors_carry_line_numbers(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="line 1"):
        parse_script(_script(tmp_path, "bogus header\n\nok noop\n"), env={})
    with pytest.raises(ScriptError, match="line 3"):
        parse_script(_script(tmp_path, "state: auth\n\nselect x\n", "u"), env={})
    with pytest.raises(ScriptError, match="not ended"):
        parse_script(_script(tmp_path, "state: auth\n\nok append x {{{\nabc\n", "v"), env={})


def test_ifenv_blocks(tmp_path: Path) -> None:
    text = "state: auth\n\n!ifenv FOO\nok noop\n!else\nok check\n!endif\n"
    path = _script(tmp_path, text)
    with_foo = parse_script(path, env={"FOO": "1"})
    without = parse_script(path, env={})
    assert with_foo.groups[0].commands[0].text == "noop"
    assert without.groups[0].commands[0].text == "check"


# ---------------------------------------------------------------- matching ----


def _match(
    pattern: str, reply: str, bindings: Bindings | None = None, prefix: bool = False
) -> bool:
    matcher = Matcher(bindings or Bindings({}))
    result = matcher.match(
        untagged_pattern(pattern), parse_args(reply, lenient=True), prefix=prefix
    )
    return result == FULL_MATCH


def test_parse_args_shapes() -> None:
    args = parse_args('1 FETCH (BODY[TEXT] {5}\r\nab)cd NIL "q\\"x" ~{2}\r\n\x00\x01)')
    assert args[:2] == (Atom("1"), Atom("FETCH"))
    assert args[2] == ListArg(
        (
            Atom("BODY[TEXT]"),
            String("ab)cd", literal=True),
            Nil(),
            String('q"x'),
            String("\x00\x01", literal=True),
        )
    )


def test_variables_bind_once_and_stay_consistent() -> None:
    bindings = Bindings({})
    assert _match("1 fetch (uid $uid1)", "1 FETCH (UID 42)", bindings)
    assert bindings.values["uid1"] == "42"
    assert _match("3 fetch (uid $uid1)", "3 FETCH (UID 42)", bindings)
    assert not _match("2 fetch (uid $uid1)", "2 FETCH (UID 43)", bindings)


def test_failed_match_rolls_back_bindings() -> None:
    bindings = Bindings({})
    assert not _match("1 fetch (uid $u flags (\\seen))", "1 FETCH (UID 7 FLAGS ())", bindings)
    assert "u" not in bindings.values


def test_case_rules() -> None:
    assert _match("list () $sep INBOX", 'LIST (\\HasNoChildren) "." inbox')
    assert not _match("list () $sep ${case:INBOX}", 'LIST () "." inbox')
    assert _match("list () $sep ${case:INBOX}", 'LIST () "." INBOX')


def test_wildcards_and_bracket_skip() -> None:
    assert _match("1 fetch (uid $ flags $)", "1 FETCH (FLAGS (\\Seen) UID 9)")
    assert _match("ok [capability $] ready", "OK [CAPABILITY IMAP4rev1 IDLE] ready", prefix=True)
    assert _match("esearch (tag $tag) min 1", 'ESEARCH (TAG "1.5") MIN 1', Bindings({"tag": "1.5"}))
    assert not _match(
        "esearch (tag $tag) min 1", 'ESEARCH (TAG "1.6") MIN 1', Bindings({"tag": "1.5"})
    )


def test_unordered_noextra_ignore_and_ban() -> None:
    assert _match("1 fetch (flags (\\seen))", "1 FETCH (FLAGS (\\Recent \\Seen))")
    assert not _match("1 fetch (flags (\\seen))", "1 FETCH (FLAGS (\\Seen \\Flagged))")
    assert _match(
        "list ($!unordered $!ban=\\noselect \\subscribed) $ x", "LIST (\\Subscribed \\Marked) . x"
    )
    assert not _match(
        "list ($!unordered $!ban=\\noselect \\subscribed) $ x", "LIST (\\Subscribed \\NoSelect) . x"
    )
    assert not _match("search 1 2", "SEARCH 2 1")
    assert _match("status x (messages 1 uidnext $n)", "STATUS x (UIDNEXT 5 MESSAGES 1)")


def test_ok_replies_match_by_prefix() -> None:
    bindings = Bindings({})
    assert _match(
        "ok [uidvalidity $uidv]", "OK [UIDVALIDITY 1234] UIDs valid", bindings, prefix=True
    )
    assert bindings.values["uidv"] == "1234"
    matcher = Matcher(Bindings({}))
    reply = parse_args("NO [TRYCREATE] Mailbox doesn't exist", lenient=True)
    assert matcher.match((Atom("no"), Atom("[trycreate]")), reply, prefix=True) == FULL_MATCH
    assert matcher.match((Atom(""),), reply, prefix=True) == FULL_MATCH
    assert matcher.match((Atom("ok"),), reply, prefix=True) != FULL_MATCH


def test_relative_sequences_follow_expunges() -> None:
    bindings = Bindings({})
    bindings.reset_seqmap(6)
    bindings.expunge(1)
    bindings.expunge(2)
    assert bindings.relative_seq(2) == "1"
    assert bindings.relative_seq(4) == "2"
    assert bindings.relative_seq(3) == "<expunged>"
    assert _match("$4 fetch (uid 9)", "2 FETCH (UID 9)", bindings)


def test_modseq_variables_must_grow() -> None:
    bindings = Bindings({})
    assert _match("1 fetch (modseq ($modseq2))", "1 FETCH (MODSEQ (10))", bindings)
    assert _match("1 fetch (modseq ($modseq5))", "1 FETCH (MODSEQ (13))", bindings)
    fresh = Bindings({})
    assert _match("1 fetch (modseq ($modseq2))", "1 FETCH (MODSEQ (10))", fresh)
    assert not _match("1 fetch (modseq ($modseq5))", "1 FETCH (MODSEQ (12))", fresh)


def test_literal_compare_stops_at_nul_like_the_reference() -> None:
    assert _match("1 fetch (binary[1] ~{2}\r\n\x00a)", "1 FETCH (BINARY[1] {3}\r\n\x00bc)")
    assert not _match("1 fetch (body[1] {2}\r\nab)", "1 FETCH (BODY[1] {3}\r\nabc)")


def test_expand_command() -> None:
    bindings = Bindings({"mailbox": "imaptest", "sep": "/"})
    assert expand_command("create ${mailbox}2", bindings) == "create imaptest2"
    assert expand_command("store 1 +flags ($$kw)", bindings) == "store 1 +flags ($kw)"
    assert expand_command("list $mailbox${sep}%", bindings) == "list imaptest/%"
    with pytest.raises(UnboundVariable):
        expand_command("fetch $uid1 uid", bindings)


# ------------------------------------------------------------ mbox, client ----


@needs_scripts
def test_default_mbox_messages() -> None:
    messages = read_mbox(SCRIPTS_DIR / "default.mbox")
    assert len(messages) == 6
    assert messages[0].data.endswith(b"\r\n\r\nbody1\r\n\r\n")
    assert b"\n" not in messages[0].data.replace(b"\r\n", b"")
    assert messages[0].imap_date_time() == "22-Feb-2008 17:06:23 +0000"
    zoned = read_mbox(SCRIPTS_DIR / "sort-date.mbox")
    assert zoned[0].imap_date_time() == "22-Feb-2008 23:00:00 +0200"


def test_to_crlf_keeps_existing_crlf() -> None:
    assert to_crlf(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"


def test_literal_segments_wait_only_for_synchronizing_literals() -> None:
    segments = literal_segments(b"1 APPEND x {3}\r\n{1}\r\n ~{1}\r\nz {2+}\r\nab")
    assert [s.wait for s in segments] == [True, True, False]
    assert segments[0].data == b"1 APPEND x {3}\r\n"
    assert segments[1].data == b"{1}\r\n ~{1}\r\n"
    assert segments[2].data == b"z {2+}\r\nab\r\n"


# ---------------------------------------------------------- end to end -----


def _serve(handler: Callable[[str], list[str]]) -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the runner may hang up (skipped script)
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 X-TEST] ready\r\n")
            reader = conn.makefile("rb")
            for raw in reader:
                line = raw.decode("latin-1").rstrip("\r\n")
                tag, _, command = line.partition(" ")
                for reply in handler(command):
                    conn.sendall(reply.replace("TAG", tag).encode("latin-1") + b"\r\n")
                if command.upper() == "LOGOUT":
                    return

    def accept_loop() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        server.close()


def _fake_replies(command: str) -> list[str]:
    word = command.split(" ", 1)[0].upper()
    if word == "NOOP":
        return ["* 3 EXISTS", "* 1 FETCH (FLAGS (\\Seen) UID 7)", "TAG OK done"]
    if word == "LOGOUT":
        return ["* BYE bye", "TAG OK done"]
    return ["TAG BAD unknown"]


@pytest.fixture
def fake_port() -> Iterator[int]:
    yield from _serve(_fake_replies)


def _address(port: int) -> ServerAddress:
    return ServerAddress("127.0.0.1", port, "u@example.test", "pw", timeout=5.0)


def test_run_script_passes(tmp_path: Path, fake_port: int) -> None:
    text = "state: nonauth\n\nok noop\n* 3 exists\n* 1 fetch (uid $uid flags (\\seen))\n"
    result = run_script(_script(tmp_path, text), _address(fake_port))
    assert result.outcome is Outcome.PASSED, result.report()


def test_run_script_reports_mismatch(tmp_path: Path, fake_port: int) -> None:
    text = "state: nonauth\n\nok noop\n* 4 exists\n\nok noop\n! 3 exists\n\nno noop\n"
    result = run_script(_script(tmp_path, text), _address(fake_port))
    assert result.outcome is Outcome.FAILED
    messages = [f.message for f in result.failures]
    assert "Missing 1 untagged replies" in messages[0]
    assert "Unexpected untagged match" in messages[1]
    assert "Expected tagged reply 'no'" in messages[2]


def test_run_script_skips_on_missing_capability(tmp_path: Path, fake_port: int) -> None:
    text = "state: nonauth\ncapabilities: X-TEST X-OTHER\n\nok noop\n"
    result = run_script(_script(tmp_path, text), _address(fake_port))
    assert result.outcome is Outcome.SKIPPED
    assert result.missing_capabilities == ("X-OTHER",)


def test_run_script_skips_without_second_user(tmp_path: Path, fake_port: int) -> None:
    text = "connections: 2\nuser 2: $user2\n\n1 ok noop\n"
    result = run_script(_script(tmp_path, text), _address(fake_port))
    assert result.outcome is Outcome.SKIPPED
    assert result.missing_capabilities == ("$user2",)


def test_refused_connection_is_a_failure(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = run_script(_script(tmp_path, "state: nonauth\n\nok noop\n"), _address(port))
    assert result.outcome is Outcome.FAILED
