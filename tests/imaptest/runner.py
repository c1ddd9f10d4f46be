"""Run imaptest scripts against an IMAP server and report passed / failed / skipped.

Set-up follows each script's ``state:`` header: log in every connection with LOGIN;
check the ``capabilities:`` (skipped, with the missing names, when absent); delete
every mailbox whose name starts with the test mailbox name (``imaptest`` by default)
and unsubscribe them; create the test mailbox; append the mbox messages; SELECT it on
every connection. Then the command groups run (`execute.ScriptSession`).

Use from pytest::

    result = run_script(path, ServerAddress("127.0.0.1", 1143, "u@example.test", "pw"))
    assert result.outcome is not Outcome.FAILED, result.report()

Command line::

    python -m tests.imaptest.runner --host H --port P --user U --password PW \\
        [--user2 U2 --password2 PW2] SCRIPT...

Spec: imaptest scripted_test.md ("Header", "state").
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .client import DEFAULT_TIMEOUT_SECONDS, ConnectionClosed, ImapConnection
from .execute import (
    Connection,
    Failure,
    ScriptAborted,
    ScriptSession,
    append_body,
    quote,
    simple_command,
)
from .match import Arg, Bindings, ListArg, as_text, render, upper_ascii
from .mbox import MboxError, MboxSource
from .script import Script, ScriptError, StartupState, parse_script

DEFAULT_MAILBOX = "imaptest"


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where and as whom to test: ``user``/``password`` for every connection, and
    ``user2``/``password2`` for connections a script assigns to ``$user2``.
    ``mailbox`` is the test mailbox (destroyed and recreated by each script);
    ``timeout`` bounds each wait for the server, in seconds."""

    host: str
    port: int
    user: str
    password: str
    user2: str | None = None
    password2: str | None = None
    mailbox: str = DEFAULT_MAILBOX
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    tls: bool = False
    """Implicit TLS (an IMAPS port)."""


class Outcome(StrEnum):
    """Result of one script."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ScriptResult:
    """Outcome of one script; ``missing_capabilities`` is set when skipped."""

    name: str
    outcome: Outcome
    failures: tuple[Failure, ...] = ()
    missing_capabilities: tuple[str, ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: ``PASSED name``, ``SKIPPED name (missing: X Y)``, ``FAILED name (n)``."""
        if self.outcome is Outcome.SKIPPED:
            return f"SKIPPED {self.name} (missing: {' '.join(self.missing_capabilities)})"
        if self.outcome is Outcome.FAILED:
            return f"FAILED  {self.name} ({len(self.failures)} failures)"
        return f"PASSED  {self.name} ({self.seconds:.2f}s)"

    def report(self) -> str:
        """The summary line followed by every failure."""
        lines = [self.summary()]
        lines.extend("  " + f.describe().replace("\n", "\n  ") for f in self.failures)
        return "\n".join(lines)


def _mutf7_to_utf8(name: str) -> str:
    """Decode modified UTF-7 mailbox names. Spec: RFC 9051 §5.1.3."""
    out: list[str] = []
    pos = 0
    while pos < len(name):
        if name[pos] != "&":
            out.append(name[pos])
            pos += 1
            continue
        end = name.index("-", pos)
        chunk = name[pos + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4))
            out.append(raw.decode("utf-16-be"))
        pos = end + 1
    return "".join(out)


def _initial_variables(
    server: ServerAddress, users: Sequence[str], passwords: Sequence[str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for index, (user, password) in enumerate(zip(users, passwords, strict=True)):
        suffix = "" if index == 0 else str(index + 1)
        local, at, domain = user.partition("@")
        values["user" + suffix] = user
        values["username" + suffix] = local
        values["domain" + suffix] = domain if at else server.host
        values["password" + suffix] = password
    values["mailbox"] = server.mailbox
    values["mailbox_url"] = urllib.parse.quote(
        _mutf7_to_utf8(server.mailbox), safe="/:@!$&'()*+,=-._~"
    )
    return values


def _credentials(script: Script, server: ServerAddress) -> tuple[list[str], list[str]]:
    users: list[str] = []
    passwords: list[str] = []
    for wanted in script.connection_users:
        if wanted in ("$user2", "${user2}") and server.user2 is not None:
            users.append(server.user2)
            passwords.append(server.password2 or server.password)
        elif wanted is not None and not wanted.startswith("$"):
            users.append(wanted)
            passwords.append(server.password)
        else:
            users.append(server.user)
            passwords.append(server.password)
    return users, passwords


def _status(args: tuple[Arg, ...]) -> str:
    return upper_ascii(as_text(args[0]) or "") if args else ""


def _require_ok(conn: Connection, body: bytes, what: str) -> None:
    reply = simple_command(conn, body)
    if _status(reply) != "OK":
        raise ScriptAborted(f"initialization failed: {what}: {render(reply)}")


def _missing_capabilities(script: Script, conn: Connection) -> tuple[str, ...]:
    if not conn.capabilities:
        simple_command(conn, b"CAPABILITY")
    have = {upper_ascii(cap) for cap in conn.capabilities}
    return tuple(cap for cap in script.capabilities if upper_ascii(cap) not in have)


def _mailbox_names(replies: list[tuple[Arg, ...]], kind: str) -> list[str]:
    names: list[str] = []
    for args in replies:
        if len(args) >= 4 and _status(args) == kind and isinstance(args[1], ListArg):
            name = as_text(args[3])
            if name is not None:
                names.append(name)
    return names


def _clean_mailboxes(conn: Connection, mailbox: str) -> None:
    """Delete and unsubscribe every mailbox named ``<mailbox>*`` (NO replies ignored)."""
    pattern = quote(mailbox + "*")
    listed: list[tuple[Arg, ...]] = []
    simple_command(conn, f'LIST "" {pattern}'.encode("latin-1"), listed)
    subscribed: list[tuple[Arg, ...]] = []
    simple_command(conn, f'LSUB "" {pattern}'.encode("latin-1"), subscribed)
    for name in sorted(_mailbox_names(listed, "LIST"), key=upper_ascii, reverse=True):
        reply = simple_command(conn, f"DELETE {quote(name)}".encode("latin-1"))
        if _status(reply) == "BAD":
            raise ScriptAborted(f"initialization failed: DELETE {name}: {render(reply)}")
    for name in sorted(_mailbox_names(subscribed, "LSUB"), key=upper_ascii, reverse=True):
        simple_command(conn, f"UNSUBSCRIBE {quote(name)}".encode("latin-1"))


def _populate(script: Script, conn: Connection, source: MboxSource, mailbox: str) -> None:
    if upper_ascii(mailbox) != "INBOX":
        _require_ok(conn, f"CREATE {quote(mailbox)}".encode("latin-1"), "CREATE")
    if script.state < StartupState.APPENDED:
        return
    count = script.message_count
    appended = 0
    while (count is None and not source.at_end()) or (count is not None and appended < count):
        _require_ok(conn, append_body(quote(mailbox), source, with_date=True), "APPEND")
        appended += 1


def _set_up(
    script: Script,
    session: ScriptSession,
    server: ServerAddress,
    users: list[str],
    passwords: list[str],
) -> tuple[str, ...]:
    """Bring every connection to the script's start state; return missing capabilities."""
    conns = session.connections
    for conn in conns:
        _, conn.greeting = conn.read()
    banner = script.groups[0] if script.groups and script.groups[0].banner else None
    if banner is not None:
        session.check_banner(banner, conns[0].greeting)
    if script.state is StartupState.NONAUTH:
        return _missing_capabilities(script, conns[0])
    for conn, user, password in zip(conns, users, passwords, strict=True):
        conn.capabilities = ()
        _require_ok(conn, f"LOGIN {quote(user)} {quote(password)}".encode("latin-1"), "LOGIN")
    missing = _missing_capabilities(script, conns[0])
    if missing:
        return missing
    _clean_mailboxes(conns[0], server.mailbox)
    if script.state >= StartupState.CREATED:
        _populate(script, conns[0], session.source, server.mailbox)
    if script.state is StartupState.SELECTED:
        for conn in conns:
            _require_ok(conn, f"SELECT {quote(server.mailbox)}".encode("latin-1"), "SELECT")
    return ()


def _logout_quietly(connections: list[Connection]) -> None:
    for conn in connections:
        if not conn.imap.closed:
            with contextlib.suppress(OSError):
                conn.imap.send(b"z LOGOUT\r\n")
        conn.imap.close()


def run_script(
    path: Path, server: ServerAddress, env: Mapping[str, str] | None = None
) -> ScriptResult:
    """Run one script file against ``server`` and return its result.

    ``env`` answers the script's ``!ifenv`` lines (default: the process environment).
    Never raises for server misbehaviour: a broken script, refused connection,
    timeout or unexpected disconnection is a FAILED result.
    """
    started = time.monotonic()
    try:
        script = parse_script(path, env)
        source = MboxSource.open(script.mbox_path)
    except (ScriptError, MboxError, OSError) as exc:
        return ScriptResult(path.name, Outcome.FAILED, (Failure(0, "", f"cannot load: {exc}"),))
    if script.requires_user2 and server.user2 is None:
        return ScriptResult(script.name, Outcome.SKIPPED, missing_capabilities=("$user2",))
    users, passwords = _credentials(script, server)
    bindings = Bindings(_initial_variables(server, users, passwords))
    connections: list[Connection] = []
    session = ScriptSession(script, connections, bindings, source, server.mailbox)
    missing: tuple[str, ...] = ()
    try:
        for index in range(script.connections):
            imap = ImapConnection.connect(server.host, server.port, server.timeout, server.tls)
            connections.append(Connection(imap, index))
        missing = _set_up(script, session, server, users, passwords)
        if not missing:
            session.run()
    except ScriptAborted as exc:
        if not session.failures or str(exc).startswith("initialization"):
            session.failures.append(Failure(0, "", str(exc)))
    except (OSError, ConnectionClosed) as exc:
        session.failures.append(Failure(0, "", f"connection failed: {exc!r}"))
    finally:
        _logout_quietly(connections)
    seconds = time.monotonic() - started
    if session.failures:
        return ScriptResult(script.name, Outcome.FAILED, tuple(session.failures), seconds=seconds)
    if missing:
        return ScriptResult(
            script.name, Outcome.SKIPPED, missing_capabilities=missing, seconds=seconds
        )
    return ScriptResult(script.name, Outcome.PASSED, seconds=seconds)


def script_paths(arguments: Sequence[str]) -> list[Path]:
    """Expand directories to their script files (``*.mbox`` and dot files excluded), sorted."""
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            paths.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix != ".mbox"
                )
            )
        else:
            paths.append(path)
    return paths


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.imaptest.runner", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--user2")
    parser.add_argument("--password2")
    parser.add_argument("--mailbox", default=DEFAULT_MAILBOX)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS)
    parser.add_argument("-v", "--verbose", action="store_true", help="print failure details")
    parser.add_argument("scripts", nargs="+", help="script files or directories")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: one line per script, then the summary; exit status 1 if any failed."""
    options = _arguments(argv)
    server = ServerAddress(
        options.host,
        options.port,
        options.user,
        options.password,
        options.user2,
        options.password2,
        options.mailbox,
        options.timeout,
    )
    results = [run_script(path, server, os.environ) for path in script_paths(options.scripts)]
    for result in results:
        print(result.report() if options.verbose else result.summary())
    failed = sum(1 for r in results if r.outcome is Outcome.FAILED)
    skipped = sum(1 for r in results if r.outcome is Outcome.SKIPPED)
    print(
        f"{len(results)} test groups: {failed} failed, {skipped} skipped due to missing capabilities"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
