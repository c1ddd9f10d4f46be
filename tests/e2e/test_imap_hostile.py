"""Hostile IMAP clients against a real `postel serve`: literal, parenthesis and line
bombs, slow-loris tricklers, STARTTLS command injection and random garbage.

For every attack: the server's RSS growth stays under the bound the test states, each
attacking connection gets a protocol answer (BAD, NO, BYE) or is disconnected within a
deadline (never a hang), and a control client on other connections keeps being served
(LOGIN, SELECT, FETCH) during and after the attack.

The server runs with short timeouts (2 s before login, 3 s after and in IDLE) so the
tricklers are cut quickly.

Spec: RFC 9051 §4.3 (literals), §5.4 (autologout), §6.2.1 (STARTTLS), §7.5
(continuation); RFC 7888 (LITERAL+); RFC 7889 (APPENDLIMIT); RELIABILITY.md tests 4, 5,
12 and D3, D7.
"""

from __future__ import annotations

import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from .conftest import ServerFactory
from .imap_raw import Completion, RawImap
from .server import PostelServer

T = TypeVar("T")
USER = "kim@example.test"
PASSWORD = "hostile tests password"
TIMEOUT_PREAUTH = 2.0
"""timeout_not_authenticated of the test server, seconds."""
TIMEOUT_AUTH = 3.0
"""timeout_authenticated and timeout_idle of the test server, seconds."""
CUT_SLACK = 3.0
"""Seconds past its timeout within which a silent or trickling client must be cut."""
APPEND_LIMIT = 50 * 1024 * 1024
"""The server's APPENDLIMIT (the default; RFC 7889)."""
MiB = 1024 * 1024
RSS_BOUND_PER_CONNECTION = 16 * MiB
"""RSS growth allowed for one attacking connection (RELIABILITY.md test 5)."""
RSS_BOUND_SWARM = 64 * MiB
"""RSS growth allowed for a swarm of up to 50 attacking connections."""
CONTROL_WORST = 5.0
"""Seconds one control round (connect, LOGIN, SELECT, FETCH, LOGOUT) may take at worst
while the server is under attack."""
ANSWER = re.compile(rb"^(\*|[^ ]+) (BAD|NO|BYE)\b")
"""A protocol refusal: tagged or untagged BAD / NO, or BYE."""


# -- the server and the measurements ---------------------------------------------------


@pytest.fixture(scope="module")
def imap(module_servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> PostelServer:
    server = module_servers(
        "imap-hostile",
        imap={
            "timeout_not_authenticated": TIMEOUT_PREAUTH,
            "timeout_authenticated": TIMEOUT_AUTH,
            "timeout_idle": TIMEOUT_AUTH,
        },
    )
    secret = tmp_path_factory.mktemp("secret") / "password"
    secret.write_text(PASSWORD + "\n")
    server.cli("domain", "add", "example.test")
    server.cli("account", "add", USER, "--password-file", str(secret))
    server.start()
    with RawImap.tls(server.imaps_port) as client:
        client.login(USER, PASSWORD)
        for n in range(3):
            message = b"Subject: control %d\r\n\r\nbody %d\r\n" % (n, n)
            assert client.append("INBOX", message).status == "OK"
    return server


def rss_bytes(pid: int) -> int:
    """VmRSS of process ``pid`` in octets (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass(slots=True)
class RssPeak:
    """The highest RSS of a process seen by a sampling thread (every 20 ms)."""

    pid: int
    before: int = 0
    peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def growth(self) -> int:
        """Peak minus the RSS when sampling began, octets."""
        return self.peak - self.before

    def run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, AssertionError):
                return


@dataclass(slots=True)
class Control:
    """A well-behaved client doing rounds (connect, AUTHENTICATE, SELECT, FETCH, LOGOUT)
    on fresh connections until stopped; records how many rounds passed, the slowest,
    and any failure. It authenticates with SCRAM-SHA-256: a LOGIN verifies an argon2id
    hash, whose 64 MiB working set would hide an attack's memory in the measurement."""

    port: int
    rounds: int = 0
    worst: float = 0.0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                control_round(self.port, scram=True)
            except (AssertionError, OSError) as exc:
                self.errors.append(repr(exc))
            self.worst = max(self.worst, time.monotonic() - began)
            self.rounds += 1
            self.stop.wait(0.05)


def control_round(port: int, *, scram: bool = False) -> None:
    """One normal session: LOGIN (AUTHENTICATE SCRAM-SHA-256 when ``scram``), SELECT
    INBOX, FETCH every message, LOGOUT."""
    with RawImap.tls(port, timeout=CONTROL_WORST * 2) as client:
        if scram:
            client.authenticate_scram(USER, PASSWORD)
        else:
            client.login(USER, PASSWORD)
        selected = client.command("SELECT INBOX")
        assert selected.status == "OK", selected
        exists = [u for u in selected.untagged if u.endswith(b" EXISTS")]
        assert exists and int(exists[0].split()[1]) >= 3, selected
        fetched = client.command("FETCH 1:* (UID FLAGS RFC822.SIZE)")
        assert fetched.status == "OK", fetched
        assert len([u for u in fetched.untagged if b" FETCH " in u]) >= 3, fetched
        assert client.command("LOGOUT").status == "OK"


@contextmanager
def under_attack(server: PostelServer, rss_bound: int) -> Iterator[None]:
    """Run the body (the attack) while sampling the server's RSS and serving a control
    client; then assert the RSS growth stayed under ``rss_bound`` octets, the control
    client was served throughout, and is served after the attack (LOGIN included).
    Attackers log in before the body runs (see ``Control`` on argon2)."""
    assert server.proc is not None
    rss = RssPeak(server.proc.pid)
    rss.before = rss.peak = rss_bytes(server.proc.pid)
    sampler = threading.Thread(target=rss.run, daemon=True)
    sampler.start()
    control = Control(server.imaps_port)
    worker = threading.Thread(target=control.run, daemon=True)
    worker.start()
    try:
        yield
    finally:
        rss.stop.set()
        control.stop.set()
        sampler.join(5)
        worker.join(CONTROL_WORST * 3)
    print(f"RSS growth {rss.growth / MiB:.1f} MiB (bound {rss_bound / MiB:.0f} MiB)")
    assert rss.growth < rss_bound, f"RSS grew {rss.growth / MiB:.1f} MiB"
    assert not control.errors, control.errors
    assert control.rounds >= 1, "the control client never completed a round"
    assert control.worst < CONTROL_WORST, f"a control round took {control.worst:.2f} s"
    control_round(server.imaps_port)
    assert server.running


def swarm(
    server: PostelServer,
    count: int,
    setup: Callable[[int], RawImap],
    attack: Callable[[int, RawImap], T],
    rss_bound: int = RSS_BOUND_SWARM,
) -> list[T]:
    """Open ``count`` connections with ``setup(i)`` (LOGIN etc., not measured; each
    connection says NOOP every half second until all are ready, so the short timeouts
    do not cut it), then run ``attack(i, client)`` on all at once ``under_attack``;
    the attacks' results."""
    ready = threading.Semaphore(0)
    go = threading.Event()
    clients: list[RawImap] = []

    def run(i: int) -> T:
        client = setup(i)
        clients.append(client)
        ready.release()
        while not go.wait(0.5):
            assert client.command("NOOP").status == "OK"
        return attack(i, client)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run, i) for i in range(count)]
        try:
            for _ in range(count):
                assert ready.acquire(timeout=60), "setup did not finish"
            with under_attack(server, rss_bound):
                go.set()
                return [f.result() for f in futures]
        finally:
            go.set()
            for client in clients:
                client.close()


def logged_in(server: PostelServer, *, select: bool = True) -> RawImap:
    """A TLS connection after LOGIN (and SELECT INBOX when ``select``)."""
    client = RawImap.tls(server.imaps_port)
    client.login(USER, PASSWORD)
    if select:
        assert client.command("SELECT INBOX").status == "OK"
    return client


def refused(response: bytes) -> bool:
    """True for a BAD / NO / BYE response."""
    return ANSWER.match(response) is not None


def closes_within(client: RawImap, seconds: float) -> tuple[float, list[bytes]]:
    """Read until the server closes; returns the seconds it took and what was read.
    Fails if the connection is still open after ``seconds``."""
    began = time.monotonic()
    client.settimeout(seconds)
    found = client.responses_until_close()
    elapsed = time.monotonic() - began
    assert elapsed < seconds, f"still connected after {elapsed:.1f} s: {found!r}"
    return elapsed, found


def preauth_tls(server: PostelServer) -> Callable[[int], RawImap]:
    """A setup for ``swarm``: a greeted TLS connection, not logged in."""
    return lambda _: RawImap.tls(server.imaps_port, timeout=10)


def preauth_plain(server: PostelServer) -> Callable[[int], RawImap]:
    """A setup for ``swarm``: a greeted plaintext connection, not logged in."""
    return lambda _: RawImap.plain(server.imap_port, timeout=10)


def selected(server: PostelServer) -> Callable[[int], RawImap]:
    """A setup for ``swarm``: logged in, INBOX selected."""
    return lambda _: logged_in(server)


# -- literal bombs ---------------------------------------------------------------------


def test_literal_announcements_beyond_the_bounds_are_refused_before_reading_preauth(
    imap: PostelServer,
) -> None:
    """``{4294967295}`` and a 23-digit announcement, synchronizing, before login: BAD at
    once (no ``+``, nothing read); the session goes on. 25 connections."""

    def attack(_: int, client: RawImap) -> list[bytes]:
        client.send(b"a LOGIN {4294967295}\r\n")
        first = client.response()
        client.send(b"b LOGIN kim {99999999999999999999999}\r\n")
        second = client.response()
        return [first, second, client.command("CAPABILITY").tagged]

    for first, second, capability in swarm(imap, 25, preauth_tls(imap), attack):
        assert first.startswith(b"a ") and refused(first), first
        assert second.startswith(b"b ") and refused(second), second
        assert b" OK " in capability, capability


LITERAL_BOMBS = (
    b"c APPEND INBOX {4294967295}",
    b"d APPEND INBOX (\\Seen) {104857600}",
    b"e SEARCH TEXT {4294967295}",
    b"f SEARCH TEXT {200000}",
    b"g SELECT {1073741824}",
)
"""Synchronizing literals beyond APPENDLIMIT (50 MiB), LITERAL_MAX (100 KiB) and the
32-bit ``number`` of RFC 9051 §9."""


def test_literal_announcements_beyond_the_bounds_are_refused_before_reading(
    imap: PostelServer,
) -> None:
    """After login: APPEND beyond APPENDLIMIT gets NO [TOOBIG], other literals beyond
    LITERAL_MAX get BAD, all at once (no ``+``); the session goes on. 25 connections."""

    def attack(_: int, client: RawImap) -> list[bytes]:
        answers = []
        for line in LITERAL_BOMBS:
            client.send(line + b"\r\n")
            answers.append(client.response())
        return [*answers, client.command("NOOP").tagged]

    for answers in swarm(imap, 25, selected(imap), attack):
        assert all(refused(a) for a in answers[:5]), answers
        assert answers[0].startswith(b"c NO [TOOBIG]"), answers
        assert answers[1].startswith(b"d NO [TOOBIG]"), answers
        assert answers[5].endswith(b"OK NOOP completed"), answers


def test_huge_non_synchronizing_literals_are_skipped_not_stored(imap: PostelServer) -> None:
    """``{n+}`` literals over the bound are refused and their octets read and dropped
    (RFC 7888 §4): 8 connections each send 4 MiB in one refused literal and are answered
    BAD, then NOOP OK."""
    body = b"x" * (4 * MiB)

    def attack(_: int, client: RawImap) -> tuple[Completion, Completion]:
        client.send(b"a SEARCH TEXT {%d+}\r\n" % len(body) + body + b"\r\n")
        refusal = client.until_tagged("a")
        return refusal, client.command("NOOP")

    for refusal, noop in swarm(imap, 8, selected(imap), attack):
        assert refusal.status == "BAD", refusal
        assert noop.status == "OK", noop


def test_a_4_gib_literal_before_login_is_refused_and_cut(imap: PostelServer) -> None:
    """``{4294967295+}`` before login: BAD at once; the octets that follow are dropped,
    and the connection ends at the latest at the pre-login timeout. 8 connections each
    send 1 MiB of it."""

    def attack(_: int, client: RawImap) -> tuple[bytes, list[bytes]]:
        client.send(b"a LOGIN {4294967295+}\r\n")
        answer = client.response()
        with suppress(OSError):
            client.send(b"y" * MiB)
        return answer, closes_within(client, TIMEOUT_PREAUTH + CUT_SLACK)[1]

    for answer, rest in swarm(imap, 8, preauth_plain(imap), attack):
        assert answer.startswith(b"a BAD"), answer
        assert all(refused(line) for line in rest), rest


def test_too_many_literals_in_one_command_are_refused(imap: PostelServer) -> None:
    """100 literals in one SEARCH (the bound is 64) and 3 literals of 100,000 octets (the
    total bound is 256 KiB) are refused with BAD; the rest of the command is skipped
    and the session goes on. 10 connections."""
    many = b"a SEARCH" + b"".join(b" TEXT {1+}\r\nx" for _ in range(100)) + b"\r\n"
    heavy = b"b SEARCH" + b"".join(b" TEXT {100000+}\r\n" + b"z" * 100_000 for _ in range(3))

    def attack(_: int, client: RawImap) -> list[Completion]:
        client.send(many)
        first = client.until_tagged("a")
        client.send(heavy + b"\r\n")
        second = client.until_tagged("b")
        return [first, second, client.command("NOOP")]

    for first, second, noop in swarm(imap, 10, selected(imap), attack):
        assert first.status == "BAD", first
        assert second.status == "BAD", second
        assert noop.status == "OK", noop


def test_an_append_of_100_mib_beyond_appendlimit_is_refused_and_skipped(
    imap: PostelServer,
) -> None:
    """APPEND announcing 100 MiB (APPENDLIMIT is 50 MiB): a synchronizing literal gets
    NO [TOOBIG] without ``+``; a non-synchronizing one streamed as fast as possible gets
    NO [TOOBIG], its octets are dropped as they come, and the next command is answered.
    Nothing is stored. Spec: RFC 7889 §4, RFC 7888 §4."""
    size = 100 * MiB
    chunk = b"From: a@b.test\r\n" * (MiB // 16)
    with logged_in(imap) as client:
        client.send(b"s APPEND INBOX {%d}\r\n" % size)
        assert client.response().startswith(b"s NO [TOOBIG]")
        with under_attack(imap, RSS_BOUND_PER_CONNECTION):
            client.send(b"a APPEND INBOX {%d+}\r\n" % size)
            for _ in range(size // len(chunk)):
                client.send(chunk)
            client.send(b"\r\nb NOOP\r\n")
            refusal = client.until_tagged("a")
            noop = client.until_tagged("b")
        assert refusal.status == "NO" and b"[TOOBIG]" in refusal.tagged, refusal
        assert noop.status == "OK", noop
        status = client.command("STATUS INBOX (MESSAGES)")
        assert status.status == "OK" and b"(MESSAGES 3)" in status.untagged[0], status


# -- parenthesis and line bombs ------------------------------------------------------------


PAREN_BOMBS = (
    b"FETCH 1 " + b"(" * 30_000 + b"FLAGS" + b")" * 30_000,
    b"SEARCH " + b"(" * 30_000 + b"ALL" + b")" * 30_000,
    b"UID SEARCH" + b" NOT" * 15_000 + b" ALL",
    b"SEARCH" + b" OR ALL" * 9_000 + b" ALL",
    b"LIST " + b"(" * 30_000 + b' "" "*"',
    b"STORE 1 +FLAGS " + b"(" * 30_000,
)
"""Deeply nested lists and key chains, each under the 64 KiB line bound."""


def test_parenthesis_bombs_get_bad(imap: PostelServer) -> None:
    """Nesting beyond PAREN_DEPTH_MAX (64) or more than SEARCH_KEYS_MAX keys: BAD, the
    session goes on. 20 connections at once."""

    def attack(_: int, client: RawImap) -> tuple[list[Completion], Completion]:
        answers = [client.command(bomb) for bomb in PAREN_BOMBS]
        return answers, client.command("NOOP")

    for answers, noop in swarm(imap, 20, selected(imap), attack):
        assert [a.status for a in answers] == ["BAD"] * len(PAREN_BOMBS), answers
        assert noop.status == "OK", noop


def test_parenthesis_bombs_before_login_get_bad(imap: PostelServer) -> None:
    """4,000 open parentheses in LOGIN before login: BAD. 10 connections."""

    def attack(_: int, client: RawImap) -> bytes:
        return client.command(b"LOGIN " + b"(" * 4000 + b" x").tagged

    assert all(refused(a) for a in swarm(imap, 10, preauth_tls(imap), attack))


def test_line_bombs_before_login_are_refused_and_cut(imap: PostelServer) -> None:
    """20 connections each send 4 MiB without a line end before login: each is answered
    BAD (line too long, bound 8 KiB) and cut at the latest at the timeout; memory stays
    bounded because the rest of the line is dropped, not buffered."""
    piece = b"a LOGIN " + b"A" * (64 * 1024 - 8)

    def attack(_: int, client: RawImap) -> list[bytes]:
        try:
            for _ in range(64):
                client.send(piece)
        except OSError:
            pass  # cut at the timeout while still sending: fine
        return closes_within(client, TIMEOUT_PREAUTH + CUT_SLACK)[1]

    for found in swarm(imap, 20, preauth_plain(imap), attack):
        assert found, "no answer to a line bomb"
        assert all(refused(line) for line in found), found
        assert any(b"BAD" in line for line in found), found


def test_a_line_bomb_after_login_is_refused_and_the_session_goes_on(imap: PostelServer) -> None:
    """A 2 MiB line after login (bound 64 KiB): BAD, the rest of the line is dropped up to
    its end, and the next command is answered. 5 connections."""

    def attack(_: int, client: RawImap) -> tuple[Completion, Completion]:
        client.send(b"a SEARCH TEXT " + b"B" * (2 * MiB) + b"\r\n")
        return client.until_tagged("a"), client.command("NOOP")

    for first, noop in swarm(imap, 5, selected(imap), attack):
        assert first.status == "BAD" and b"too long" in first.tagged, first
        assert noop.status == "OK", noop


def test_an_overlong_authenticate_response_gets_a_tagged_bad(imap: PostelServer) -> None:
    """A SASL response past the 8 KiB line bound before login: a tagged BAD for the
    AUTHENTICATE, and the session goes on (a LOGIN works). Spec: RFC 9051 §6.2.2, §7.1.5."""
    with RawImap.tls(imap.imaps_port) as client:
        client.send(b"a AUTHENTICATE PLAIN\r\n")
        assert client.response().startswith(b"+")
        client.send(b"A" * (64 * 1024) + b"\r\n")
        done = client.until_tagged("a")
        assert done.status == "BAD" and b"too long" in done.tagged, done
        client.login(USER, PASSWORD)
        assert client.command("NOOP").status == "OK"


def test_wildcard_bombs_in_list_and_lsub_are_answered_at_once(imap: PostelServer) -> None:
    """LIST and LSUB patterns built to make a backtracking matcher run for ever (many
    wildcards and a last character no name has) against a long mailbox name, on 5
    connections: each gets its answer and the control client is served meanwhile.
    Spec: RFC 9051 §6.3.9; RELIABILITY.md test 12 (one client cannot stall the rest)."""
    long_name = "wild" + "a" * 200
    with logged_in(imap, select=False) as client:
        for command in (f"CREATE {long_name}", f"SUBSCRIBE {long_name}"):
            assert client.command(command).status == "OK"
    patterns = ["*" * 40 + "x", "%" * 40 + "x", "*a" * 60 + "x", "*%" * 500 + "y"]

    def attack(i: int, client: RawImap) -> list[Completion]:
        pattern = patterns[i % len(patterns)]
        return [
            client.command(f'LIST "" "{pattern}"'),
            client.command(f'LSUB "" "{pattern}"'),
            client.command(f'LIST (SUBSCRIBED) "" "{pattern}"'),
            client.command('LIST "" "wild%"'),
        ]

    for *bombs, plain in swarm(imap, 5, lambda _: logged_in(imap, select=False), attack):
        for bomb in bombs:
            assert bomb.status == "OK" and not bomb.untagged, bomb
        assert plain.status == "OK" and any(long_name.encode() in u for u in plain.untagged)


def test_a_large_fetch_to_clients_that_read_nothing_holds_one_response_each(
    imap: PostelServer,
) -> None:
    """A 16 MiB message fetched whole on 3 connections whose clients read nothing: each
    session holds the literal it is sending (written piece by piece and slice by slice,
    the message octets let go first), not four copies of the message, and the control
    client is served meanwhile. The bound allows 2.5 message sizes per connection for
    the render and the allocator's keep (measured 1.4-2.0; 3.9 before).
    Spec: RELIABILITY.md D7 (memory per session bounded); RFC 9051 §6.4.5."""
    big = b"Subject: big\r\n\r\n" + (b"y" * 1022 + b"\r\n") * (16 * 1024)
    with logged_in(imap, select=False) as client:
        assert client.command("CREATE big").status == "OK"
        assert client.append("big", big).status == "OK"

    def setup(_: int) -> RawImap:
        client = logged_in(imap, select=False)
        assert client.command("EXAMINE big").status == "OK"
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return client

    def attack(_: int, client: RawImap) -> None:
        client.send(b"f FETCH 1 BODY.PEEK[]\r\n")
        time.sleep(2.0)  # within the 3 s command timeout: the sessions are still sending

    swarm(imap, 3, setup, attack, rss_bound=int(3 * 2.5 * len(big)))
    with logged_in(imap, select=False) as reader:  # and a client that reads gets it all
        assert reader.command("EXAMINE big").status == "OK"
        fetched = reader.command("FETCH 1 BODY.PEEK[]")
        assert fetched.status == "OK" and fetched.untagged[0].endswith(big + b")"), fetched.tagged


# -- slow-loris --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trickled:
    """How a trickling connection ended: seconds from its first trickled byte to the
    close (None: never closed within the test's patience) and what it read."""

    seconds: float | None
    received: bytes


def trickle(client: RawImap, data: bytes, patience: float) -> Trickled:
    """Send ``data`` one octet per second until the server closes the connection or
    ``patience`` seconds pass."""
    began = time.monotonic()
    received = b""
    client.settimeout(1.0)
    for octet in data:
        if time.monotonic() - began > patience:
            break
        try:
            client.send(bytes([octet]))
        except OSError:
            return Trickled(time.monotonic() - began, received)
        try:
            chunk = client.sock.recv(4096)
        except (TimeoutError, ssl.SSLWantReadError):
            continue
        except OSError:
            return Trickled(time.monotonic() - began, received)
        if not chunk:
            return Trickled(time.monotonic() - began, received)
        received += chunk
    return Trickled(None, received)


TRICKLE_KINDS = 5
LONG_TAIL = b"x" * 100


def _trickle_setup(imap: PostelServer) -> Callable[[int], RawImap]:
    def setup(i: int) -> RawImap:
        match i % TRICKLE_KINDS:
            case 0:
                return RawImap.plain(imap.imap_port)
            case 1:
                return RawImap.tls(imap.imaps_port)
            case 2:
                return logged_in(imap, select=False)
            case 3:
                return logged_in(imap)
            case _:
                return logged_in(imap)

    return setup


TRICKLED = (
    (b'a LOGIN "kim@example.test" "' + LONG_TAIL, TIMEOUT_PREAUTH),
    (LONG_TAIL, TIMEOUT_PREAUTH),
    (b'b SELECT "INBOX' + LONG_TAIL, TIMEOUT_AUTH),
    (b"c FETCH 1:* (FLAGS" + LONG_TAIL, TIMEOUT_AUTH),
    (b"DON" + LONG_TAIL, TIMEOUT_AUTH),
)
"""What each kind of trickler sends, and the timeout that must cut it: a LOGIN line and
a LOGIN literal before login, a SELECT, a FETCH, and DONE in IDLE."""


def test_slow_loris_connections_are_cut_at_their_timeouts(imap: PostelServer) -> None:
    """50 connections trickle one octet per second (a LOGIN line, a LOGIN literal, a
    SELECT, a FETCH, a DONE in IDLE): each is cut (``* BYE`` and close) within its
    timeout plus CUT_SLACK, while the control client is served."""

    def attack(i: int, client: RawImap) -> tuple[int, Trickled]:
        data, limit = TRICKLED[i % TRICKLE_KINDS]
        if i % TRICKLE_KINDS in (1, 4):
            client.send(b"a LOGIN {60}\r\n" if i % TRICKLE_KINDS == 1 else b"d IDLE\r\n")
            assert client.response().startswith(b"+")
        return i % TRICKLE_KINDS, trickle(client, data, 3 * limit + CUT_SLACK)

    for kind, ended in swarm(imap, 50, _trickle_setup(imap), attack):
        limit = TRICKLED[kind][1]
        assert ended.seconds is not None, f"kind {kind} never cut: {ended.received!r}"
        assert limit - 1.0 < ended.seconds < limit + CUT_SLACK, (kind, ended)
        assert b"* BYE" in ended.received, (kind, ended)


def test_a_trickled_append_literal_is_cut(imap: PostelServer) -> None:
    """An APPEND whose message literal arrives one octet per second must be cut within a
    bounded time, like any other command (RFC 9051 §5.4; RELIABILITY.md test 12: a
    trickling client is cut at its deadline)."""
    patience = 2 * TIMEOUT_AUTH + CUT_SLACK
    with logged_in(imap) as client:
        client.send(b"a APPEND INBOX {1000+}\r\n")
        ended = trickle(client, b"S" * 1000, patience)
    assert ended.seconds is not None, f"still connected after {patience} s"


# -- STARTTLS injection and garbage ----------------------------------------------------------


def test_plaintext_pipelined_after_starttls_is_ignored(imap: PostelServer) -> None:
    """Commands sent in plaintext in the same packet as STARTTLS are never answered,
    neither before nor inside TLS, and do not log in (RFC 9051 §6.2.1; RELIABILITY.md
    test 4)."""
    injected = f'b CAPABILITY\r\nc LOGIN "{USER}" "{PASSWORD}"\r\nd SELECT INBOX\r\n'
    with RawImap.plain(imap.imap_port) as client:
        client.send(b"a STARTTLS\r\n" + injected.encode())
        assert client.response().startswith(b"a OK")
        time.sleep(0.2)
        client.sock.settimeout(0.2)
        try:
            early = client.sock.recv(4096)
        except TimeoutError:
            early = b""
        assert early == b"", f"plaintext after the OK to STARTTLS: {early!r}"
        client.sock.settimeout(5)
        client.starttls()
        first = client.command("NOOP")
        assert first.untagged == () and first.tagged.startswith(b"t1 OK"), first
        selecting = client.command("SELECT INBOX")
        assert selecting.status == "BAD", "the injected LOGIN must not have logged in"
        client.login(USER, PASSWORD)
        assert client.command("SELECT INBOX").status == "OK"


def test_autologout_counts_from_the_last_command(imap: PostelServer) -> None:
    """A session busy for longer than its timeout is not cut (each command sets a new
    read deadline); once silent it is cut one timeout after its last command, however
    many commands came before. Spec: RFC 9051 §5.4."""
    client = logged_in(imap)
    began = time.monotonic()
    while time.monotonic() - began < 2 * TIMEOUT_AUTH:
        assert client.command("NOOP").status == "OK"
        time.sleep(TIMEOUT_AUTH / 6)
    elapsed, found = closes_within(client, TIMEOUT_AUTH + CUT_SLACK)
    assert elapsed > TIMEOUT_AUTH - 0.5, (elapsed, found)
    assert any(b"BYE" in line and b"utologout" in line for line in found), found


def _garbage(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(size))


def test_random_garbage_gets_bad_then_bye(imap: PostelServer) -> None:
    """64 KiB of random octets before login (3 BAD then BYE) and after login (BAD, BYE
    after 20): only BAD / NO / BYE answers, then the close; the server stays up.
    12 connections, half of them logged in."""

    def setup(i: int) -> RawImap:
        if i % 2:
            return RawImap.plain(imap.imap_port, timeout=10)
        return logged_in(imap, select=i % 4 == 0)

    def attack(i: int, client: RawImap) -> list[bytes]:
        with suppress(OSError):
            client.send(_garbage(i, 64 * 1024))
        return closes_within(client, TIMEOUT_AUTH + CUT_SLACK)[1]

    for found in swarm(imap, 12, setup, attack):
        assert all(refused(line) or line.startswith(b"+") for line in found), found
        assert any(b"BYE" in line for line in found), found


def test_server_log_has_no_session_failure(imap: PostelServer) -> None:
    """After all the attacks: no command ended in an internal error or traceback."""
    control_round(imap.imaps_port)
    text = imap.log.read_text()
    assert "imap.session.failed" not in text
    assert "Traceback" not in text
