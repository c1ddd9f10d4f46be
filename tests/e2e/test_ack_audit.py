"""Ack-after-durable audit: no SMTP 250 leaves the server before its data is fsync'd.

``postel serve`` runs under ``strace -f -tt``; a few hundred messages arrive over SMTP
from several concurrent clients; the trace is then replayed in order. The criterion:

* The database (SQLite in WAL mode): the first WAL page write holding the reply's queue
  id opens its transaction; the next commit frame written to the WAL (a frame header
  with a non-zero database size) closes it; an ``fsync``/``fdatasync`` of the WAL that
  started after that commit frame was written must have completed before the 250
  starts. This also catches a 250 sent before the commit, or before any write at all.
* Large messages (a blob file): the spool file named by the message's first octets must
  be fsync'd after its last write, renamed into the blob dir, and that directory
  fsync'd after the rename, all before the message's 250 starts.

The audit ties each reply to its own transaction rather than asking that no database
write be unsynced when any 250 leaves: with group commit the writer thread starts the
next batch (WAL frames written, not yet synced) while the event loop sends the replies
of the batch just made durable, which is correct and must pass. Frames are found by
content, so the trace shows whole buffers (``-s 4096``, one WAL page); transactions stay
far below SQLite's page cache, so no frame is spilled before its commit.

Line order in the trace is event order: strace prints a syscall's entry before the
kernel runs it and its exit after, so "completed on an earlier line" means "completed
before". The audit must also fail: under ``eatmydata`` (fsync is a no-op, no fsync
syscall happens) it reports violations.

Spec: RELIABILITY.md D1 and test 2; RFC 5321 §4.1.1.4 and §6.1 (a 250 is a promise).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .server import START_TIMEOUT, PostelServer, wait_for_greeting

MESSAGES = 300
"""Small messages per run (strace slows the server: modest numbers keep the test fast)."""
LARGE_MESSAGES = 4
"""Messages above limits.BLOB_INLINE_MAX, stored as blob files."""
LARGE_SIZE = 300 * 1024
"""Octets of a large message body."""
CLIENTS = 10
"""Concurrent SMTP clients."""
STRING_LIMIT = 4096
"""strace ``-s``: octets shown of each buffer (a whole WAL page, to find queue ids)."""
TRACED = "fsync,fdatasync,write,pwrite64,sendto,sendmsg,open,openat,close,rename,renameat,renameat2"
DOMAIN = "example.test"

_LINE = re.compile(r"^(?:\[pid +)?(\d+)\]? +\d\d:\d\d:\d\d\.\d+ (.*)$")
_ENTRY = re.compile(r"^(\w+)\((.*?)(?: <unfinished \.\.\.>)?$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\) += (-?\d+|\?)[^=]*$")
_REPLY = re.compile(r"250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)")
_LEADING_INT = re.compile(r"\s*(-?\d+)")
_FIRST_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WAL_SUFFIX = ".sqlite3-wal"
WAL_FRAME_HEADER = 24
"""Octets of a WAL frame header, which SQLite writes apart from the page."""
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.S)
_SIMPLE_ESCAPES = {
    b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v", b"f": b"\f", b'"': b'"', b"\\": b"\\"
}  # fmt: skip
_SYNCS = frozenset({"fsync", "fdatasync"})
_WRITES = frozenset({"write", "pwrite64"})
_SENDS = frozenset({"write", "sendto", "sendmsg"})
_RENAMES = frozenset({"rename", "renameat", "renameat2"})


# -- the trace -------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One traced syscall: ``start``/``end`` are trace line numbers (``end`` is None if
    it never returned), ``args`` the argument text of the entry and resumed parts."""

    tid: int
    name: str
    args: str
    start: int
    end: int | None = None
    result: int | None = None
    text: list[str] = field(default_factory=list)
    """The trace lines of the call (one, or the entry and the resumed line)."""

    @property
    def fd(self) -> int:
        """The first argument as a number (-1 if it is not one)."""
        found = _LEADING_INT.match(self.args)
        return int(found.group(1)) if found is not None else -1

    def strings(self) -> list[str]:
        """The quoted string arguments, still escaped as strace prints them."""
        return _FIRST_STRING.findall(self.args)


def _result(rest: str) -> int | None:
    found = _RESULT.search(rest)
    if found is None or found.group(1) == "?":
        return None
    return int(found.group(1))


def parse_trace(text: str) -> list[Call]:
    """Every syscall of a ``strace -f -tt`` log, in entry order, with its
    ``<unfinished ...>`` and ``<... resumed>`` halves joined per thread."""
    calls: list[Call] = []
    pending: dict[tuple[int, str], Call] = {}
    for number, line in enumerate(text.splitlines()):
        found = _LINE.match(line)
        if found is None:
            continue
        tid, rest = int(found.group(1)), found.group(2)
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            call = pending.pop((tid, resumed.group(1)), None)
            if call is not None:
                call.args += resumed.group(2)
                call.end, call.result = number, _result(rest)
                call.text.append(line)
            continue
        entry = _ENTRY.match(rest)
        if entry is None:  # signals, exits
            continue
        call = Call(tid, entry.group(1), entry.group(2), number, text=[line])
        if rest.endswith("<unfinished ...>"):
            pending[(tid, call.name)] = call
        else:
            call.end, call.result = number, _result(rest)
        calls.append(call)
    return calls


def _events(calls: Sequence[Call]) -> Iterator[tuple[int, bool, Call]]:
    """(line, is_end, call) for every entry and every completion, in line order."""
    marks = [(c.start, False, c) for c in calls]
    marks += [(c.end, True, c) for c in calls if c.end is not None]
    marks.sort(key=lambda m: (m[0], m[1]))
    yield from marks


def _path(call: Call) -> str:
    strings = call.strings()
    return strings[0] if strings else ""


# -- the audit -------------------------------------------------------------------------


def unescape(text: str) -> bytes:
    """The octets of a string as strace prints it (``\\n``, ``\\0``, ``\\377``...)."""

    def one(found: re.Match[bytes]) -> bytes:
        code = found.group(1)
        if code[:1] == b"x":
            return bytes([int(code[1:], 16)])
        if code[:1].isdigit():
            return bytes([int(code, 8)])
        return _SIMPLE_ESCAPES.get(code, code)

    return _ESCAPE.sub(one, text.encode("latin-1"))


@dataclass(slots=True)
class _Commit:
    """Where the WAL transaction holding one queue id stands."""

    page: Call
    """The first WAL page write holding the queue id."""
    commit: Call | None = None
    """The first commit frame header written after that page."""
    sync: Call | None = None
    """The first fsync/fdatasync of the WAL that started after the commit frame."""


@dataclass(slots=True)
class Audit:
    """What the replay of a trace found."""

    replies: dict[str, int] = field(default_factory=dict)
    """Queue id -> trace line where its 250 started."""
    violations: list[str] = field(default_factory=list)
    wal_commits: int = 0
    wal_syncs: int = 0
    blob_checks: int = 0


class _Replay:
    """Walks a parsed trace once, checking every 250 against the sync state."""

    def __init__(self, queue_ids: set[str], large: dict[str, str]) -> None:
        self.audit = Audit()
        self.wal: set[int] = set()
        self.hunted = {q: q.encode() for q in queue_ids}
        self.found: dict[str, _Commit] = {}
        self.uncommitted: dict[int, list[_Commit]] = {}  # WAL fd -> page found, no commit
        self.unsynced: dict[int, list[_Commit]] = {}  # WAL fd -> committed, not synced
        self.last_sync: Call | None = None
        self.large = large  # queue id -> the message's first line
        self.files: dict[int, str] = {}  # fd -> spool path
        self.history: dict[str, list[Call]] = {}  # spool path -> writes, syncs, rename
        self.marker_path: dict[str, str] = {}
        self.dir_syncs: list[tuple[str, Call]] = []
        self.dir_fds: dict[int, str] = {}

    def run(self, calls: Sequence[Call]) -> Audit:
        for _line, is_end, call in _events(calls):
            if is_end:
                self.on_end(call)
            elif call.name == "close":
                # At its entry, not its completion: the kernel may hand the same fd
                # number to another thread's open as soon as the close is done, and
                # strace can print that open's completion before the close's.
                self.closed(call.fd)
            elif call.name in _SENDS:
                for found in _REPLY.finditer(call.args):
                    self.check_reply(found.group(1), call)
        return self.audit

    def on_end(self, call: Call) -> None:
        name, ok = call.name, call.result is not None and call.result >= 0
        if name in ("open", "openat") and ok:
            self.opened(call)
        elif name in _WRITES and ok:
            self.wrote(call)
        elif name in _SYNCS and call.result == 0:
            self.synced(call)
        elif name in _RENAMES and call.result == 0:
            self.history.setdefault(call.strings()[0], []).append(call)

    def opened(self, call: Call) -> None:
        path, fd = _path(call), call.result
        assert fd is not None
        if path.endswith(_WAL_SUFFIX):
            self.wal.add(fd)
        elif "O_DIRECTORY" in call.args:
            self.dir_fds[fd] = path
        elif "/blobs/tmp/blob-" in path:
            self.files[fd] = path
            self.history[path] = []

    def closed(self, fd: int) -> None:
        self.wal.discard(fd)
        self.files.pop(fd, None)
        self.dir_fds.pop(fd, None)

    def wrote(self, call: Call) -> None:
        if call.fd in self.wal:
            self.wrote_wal(call)
        elif call.fd in self.files:
            path = self.files[call.fd]
            if not self.history[path]:
                strings = call.strings()
                first = unescape(strings[0]) if strings else b""
                self.marker_path[first.split(b"\r\n", 1)[0].decode("latin-1")] = path
            self.history[path].append(call)

    def wrote_wal(self, call: Call) -> None:
        """A frame header (24 octets; a commit frame has a non-zero database size in
        octets 4-7) or a page. Spec: https://www.sqlite.org/fileformat2.html#walformat"""
        strings = call.strings()
        data = unescape(strings[0]) if strings else b""
        if len(data) == WAL_FRAME_HEADER:
            if int.from_bytes(data[4:8], "big") != 0:
                self.audit.wal_commits += 1
                for entry in self.uncommitted.pop(call.fd, []):
                    entry.commit = call
                    self.unsynced.setdefault(call.fd, []).append(entry)
            return
        for queue_id, needle in list(self.hunted.items()):
            if needle in data:
                del self.hunted[queue_id]
                self.found[queue_id] = _Commit(page=call)
                self.uncommitted.setdefault(call.fd, []).append(self.found[queue_id])

    def synced(self, call: Call) -> None:
        if call.fd in self.wal:
            self.audit.wal_syncs += 1
            self.last_sync = call
            waiting = self.unsynced.get(call.fd, [])
            for entry in waiting:
                assert entry.commit is not None and entry.commit.end is not None
                if call.start > entry.commit.end:
                    entry.sync = call
            self.unsynced[call.fd] = [e for e in waiting if e.sync is None]
        elif call.fd in self.files:
            self.history[self.files[call.fd]].append(call)
        elif call.fd in self.dir_fds:
            self.dir_syncs.append((self.dir_fds[call.fd], call))

    def check_reply(self, queue_id: str, reply: Call) -> None:
        self.audit.replies[queue_id] = reply.start
        problem = self.wal_problem(queue_id)
        if problem is not None:
            self.audit.violations.append(f"250 for {queue_id}: {problem}\n  reply: {reply.text[0]}")
        if queue_id in self.large:
            self.audit.blob_checks += 1
            problem = self.blob_problem(self.large[queue_id], reply)
            if problem is not None:
                self.audit.violations.append(
                    f"250 for {queue_id} (large): {problem}\n  reply: {reply.text[0]}"
                )

    def wal_problem(self, queue_id: str) -> str | None:
        """Why the transaction holding ``queue_id`` was not durable when its 250 started
        (None: it was)."""
        entry = self.found.get(queue_id)
        if entry is None:
            return "no WAL page holding the queue id was written before it"
        if entry.commit is None:
            return f"sent before the commit frame of its transaction\n  page: {entry.page.text[0][:120]}"
        if entry.sync is None:
            last = self.last_sync.text[-1] if self.last_sync is not None else "(none)"
            return (
                "sent before an fsync of the WAL after its commit frame\n"
                f"  commit frame: {entry.commit.text[-1]}\n  last WAL sync: {last}"
            )
        return None

    def blob_problem(self, marker: str, reply: Call) -> str | None:
        """Why the blob of the large message starting with ``marker`` was not durable
        when ``reply`` started (None: it was)."""
        path = self.marker_path.get(marker)
        if path is None:
            return f"no spool file written for {marker!r}"
        history = self.history.get(path, [])
        writes = [c for c in history if c.name in _WRITES]
        last_write = max(c.end or 0 for c in writes)
        syncs = [c for c in history if c.name in _SYNCS]
        if not any(s.start > last_write for s in syncs):
            return f"spool file {path} not fsync'd after its last write"
        renames = [c for c in history if c.name in _RENAMES]
        if not renames:
            return f"spool file {path} not renamed into place"
        rename = renames[0]
        final = rename.strings()[-1]
        directory = os.path.dirname(final)
        if not any(
            d.rstrip("/") == directory and s.start > (rename.end or 0) for d, s in self.dir_syncs
        ):
            return f"directory {directory} not fsync'd after the rename to {final}"
        return None


def audit_trace(text: str, queue_ids: set[str], large: dict[str, str]) -> Audit:
    """Replay a ``strace -f -tt`` log: every 250 after DATA checked as the module doc
    says. ``queue_ids`` are those the clients were given; ``large`` maps the queue ids
    of blob-file messages to their first line."""
    return _Replay(queue_ids, large).run(parse_trace(text))


# -- the server under strace -----------------------------------------------------------


def _require(tool: str) -> None:
    """Skip when ``tool`` is missing, except in CI (the Makefile installs it there)."""
    if shutil.which(tool) is not None:
        return
    message = f"{tool} is not installed (Debian: apt-get install {tool}; `make test` does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class TracedServer:
    """``postel serve`` of a PostelServer's config, run as
    ``strace ... -o TRACE [eatmydata] python -m postel serve --config ...``."""

    def __init__(self, server: PostelServer, *, eatmydata: bool) -> None:
        self.server = server
        self.trace = server.home / "strace.log"
        wrapper = ["eatmydata"] if eatmydata else []
        self.command = [
            "strace", "-f", "-tt", "--seccomp-bpf", "-s", str(STRING_LIMIT),
            "-e", f"trace={TRACED}", "-o", str(self.trace),
            *wrapper, sys.executable, "-m", "postel", "serve", "--config", str(server.config),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TracedServer:
        with open(self.server.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not wait_for_greeting(self.server.smtp_port, min(deadline, time.monotonic() + 0.5)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"traced postel did not start:\n{self.server.log.read_text()}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _served_pid(self) -> int | None:
        """The traced child (strace's only child; eatmydata execs the server)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def stop(self) -> int:
        """SIGTERM to the server (strace would detach from it on its own SIGTERM); waits
        for strace to finish the trace. Returns strace's exit code (the server's)."""
        if self.proc is None:
            return 0
        pid = self._served_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        try:
            code = self.proc.wait(40)
        except subprocess.TimeoutExpired:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            code = self.proc.wait(10)
        self.proc = None
        return code


# -- the load --------------------------------------------------------------------------


def _message(marker: str, size: int) -> bytes:
    body = b"x" * 76 + b"\r\n"
    return f"Subject: {marker}\r\n\r\n".encode() + body * max(1, size // len(body))


def _client(address: tuple[str, int], markers: Sequence[tuple[str, int]]) -> dict[str, str]:
    """Send one message per (marker, size) on one connection; returns queue id -> marker."""
    queued: dict[str, str] = {}
    with smtplib.SMTP(*address, timeout=60) as client:
        client.ehlo("client.test")
        for marker, size in markers:
            assert client.mail("sender@remote.test")[0] == 250
            assert client.rcpt(f"kim@{DOMAIN}")[0] == 250
            code, text = client.data(_message(marker, size))
            assert code == 250, text
            found = _REPLY.search("250 " + text.decode())
            assert found is not None, text
            queued[found.group(1)] = marker
    return queued


def send_load(address: tuple[str, int], small: int, large: int) -> tuple[dict[str, str], set[str]]:
    """``small`` + ``large`` messages from CLIENTS concurrent connections. Returns queue
    id -> marker (the message's first line) and the set of markers of large messages."""
    work = [(f"audit-{i}", 200) for i in range(small)]
    work += [(f"large-{i}", LARGE_SIZE) for i in range(large)]
    shares = [work[i::CLIENTS] for i in range(CLIENTS)]
    queued: dict[str, str] = {}
    with ThreadPoolExecutor(CLIENTS) as pool:
        for result in pool.map(lambda share: _client(address, share), shares):
            queued.update(result)
    return queued, {m for m, _ in work[small:]}


def run_audit(
    factory: ServerFactory, name: str, *, eatmydata: bool, small: int, large: int
) -> tuple[Audit, dict[str, str]]:
    """Serve ``small`` + ``large`` messages under strace; returns the audit and the
    queue ids the clients were given."""
    server = factory(name)
    server.add_accounts(DOMAIN, "kim")
    with TracedServer(server, eatmydata=eatmydata) as traced:
        queued, large_markers = send_load(server.address, small, large)
        code = traced.stop()
    assert code == 0, server.log.read_text()[-3000:]
    large_ids = {q: f"Subject: {m}" for q, m in queued.items() if m in large_markers}
    return audit_trace(traced.trace.read_text("latin-1"), set(queued), large_ids), queued


# -- the tests -------------------------------------------------------------------------


def test_every_250_follows_the_fsync_of_its_data(postel_factory: ServerFactory) -> None:
    _require("strace")
    audit, queued = run_audit(
        postel_factory, "durable", eatmydata=False, small=MESSAGES, large=LARGE_MESSAGES
    )
    assert set(audit.replies) == set(queued), "the trace lacks some 250 replies"
    assert audit.wal_commits > 0 and audit.wal_syncs > 0, audit
    assert audit.blob_checks == LARGE_MESSAGES
    assert not audit.violations, "\n\n".join(audit.violations[:5])


def test_audit_fails_when_fsync_is_a_no_op(postel_factory: ServerFactory) -> None:
    _require("strace")
    _require("eatmydata")
    audit, queued = run_audit(postel_factory, "eatmydata", eatmydata=True, small=40, large=2)
    assert set(audit.replies) == set(queued), "the trace lacks some 250 replies"
    assert audit.wal_commits > 0 and audit.wal_syncs == 0, audit
    db_flagged = {v.split()[2].rstrip(":") for v in audit.violations if "WAL after its commit" in v}
    blob_flagged = {v.split()[2] for v in audit.violations if "(large)" in v}
    assert db_flagged == set(queued), "some 250 under eatmydata passed the audit"
    assert len(blob_flagged) == 2


# -- the audit on hand-written traces ----------------------------------------------------

_WAL = "/data/postel.sqlite3-wal"
_Q = "7KQ2M9XH4T"
_HEADER = '"\\0\\0\\0\\2' + "\\0" * 20 + '"'
_COMMIT = '"\\0\\0\\0\\2\\0\\0\\0\\2' + "\\0" * 16 + '"'


def _trace(*lines: str) -> str:
    """``tid call`` lines with increasing -tt timestamps."""
    return "".join(
        f"{line.split(' ', 1)[0]}  12:00:00.{i:06d} {line.split(' ', 1)[1]}\n"
        for i, line in enumerate(lines)
    )


_OPEN = f'10 openat(AT_FDCWD, "{_WAL}", O_RDWR|O_CREAT|O_CLOEXEC, 0600) = 8'
_PAGE = f'10 pwrite64(8, "\\r\\0\\0\\0\\001{_Q}\\377", 16, 32) = 16'
_FRAME = f"10 pwrite64(8, {_COMMIT}, 24, 4128) = 24"
_REPLY_LINE = f'20 sendto(12, "250 2.0.0 Ok: queued as {_Q}\\r\\n", 36, 0, NULL, 0) = 36'


def _violations(text: str) -> list[str]:
    audit = audit_trace(text, {_Q}, {})
    assert set(audit.replies) == {_Q}
    return audit.violations


def test_audit_accepts_a_reply_after_the_fsync_completed() -> None:
    text = _trace(
        _OPEN, _PAGE, _FRAME, "10 fdatasync(8 <unfinished ...>",
        '20 write(1, "log line\\n", 9) = 9', "10 <... fdatasync resumed>) = 0", _REPLY_LINE,
    )  # fmt: skip
    assert _violations(text) == []


def test_audit_refuses_a_reply_while_the_fsync_runs() -> None:
    text = _trace(
        _OPEN, _PAGE, _FRAME, "10 fdatasync(8 <unfinished ...>", _REPLY_LINE,
        "10 <... fdatasync resumed>) = 0",
    )  # fmt: skip
    (problem,) = _violations(text)
    assert "before an fsync of the WAL after its commit frame" in problem


def test_audit_refuses_an_fsync_that_began_before_the_commit_frame_was_written() -> None:
    text = _trace(
        _OPEN, _PAGE, f"10 pwrite64(8, {_COMMIT}, 24, 4128 <unfinished ...>",
        "11 fdatasync(8 <unfinished ...>", "10 <... pwrite64 resumed>) = 24",
        "11 <... fdatasync resumed>) = 0", _REPLY_LINE,
    )  # fmt: skip
    assert len(_violations(text)) == 1


def test_audit_refuses_a_reply_before_its_commit_frame_or_page() -> None:
    (before_commit,) = _violations(_trace(_OPEN, _PAGE, _REPLY_LINE, _FRAME, "10 fsync(8) = 0"))
    assert "before the commit frame" in before_commit
    (no_page,) = _violations(_trace(_OPEN, _REPLY_LINE, _PAGE, _FRAME, "10 fsync(8) = 0"))
    assert "no WAL page" in no_page


def test_audit_allows_the_next_transaction_to_write_while_a_reply_goes_out() -> None:
    """Group commit: the writer starts the next batch while the loop sends the replies
    of the last one; those unsynced frames belong to no acknowledged message."""
    text = _trace(
        _OPEN, _PAGE, _FRAME, "10 fdatasync(8) = 0",
        f"10 pwrite64(8, {_HEADER}, 24, 4152 <unfinished ...>", _REPLY_LINE,
        "10 <... pwrite64 resumed>) = 24",
    )  # fmt: skip
    assert _violations(text) == []


def test_audit_ignores_syncs_of_other_files() -> None:
    text = _trace(
        _OPEN, '10 openat(AT_FDCWD, "/data/postel.sqlite3", O_RDWR, 0644) = 7',
        _PAGE, _FRAME, "10 fsync(7) = 0", _REPLY_LINE,
    )  # fmt: skip
    assert len(_violations(text)) == 1


def test_audit_keeps_an_fd_reopened_while_another_thread_finishes_closing_it() -> None:
    """The kernel reuses an fd number once its close is done; strace may print the
    close's completion after the new open's: the close counts at its entry."""
    text = _trace(
        "11 close(8 <unfinished ...>", _OPEN, "11 <... close resumed>) = 0",
        _PAGE, _FRAME, "10 fsync(8) = 0", _REPLY_LINE,
    )  # fmt: skip
    assert _violations(text) == []


def test_unescape_reads_strace_strings() -> None:
    assert unescape('\\0017KQ\\r\\n\\377\\x41\\"\\\\') == b'\x017KQ\r\n\xffA"\\'
