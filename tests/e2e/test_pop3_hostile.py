"""Hostile POP3 clients against a real `postel serve`: line bombs, random garbage,
slow-loris tricklers, STLS command injection, AUTH abuse, absurd message numbers, a
pipelined DELE / RSET / QUIT burst and many sessions RETRing a large message at once.

For every attack: the server's RSS growth stays under the bound the test states, each
attacking connection gets ``-ERR`` or is disconnected within a deadline (never a hang),
and a control client on other connections keeps being served (AUTH, STAT, RETR 1,
QUIT) during and after the attack. Logged-in attackers use accounts of their own: a
maildrop is locked by one session at a time (RFC 1939 §8).

The POP3 inactivity timeouts are constants (``limits.POP3_TIMEOUT_NOT_AUTHENTICATED``
is 60 s), not configuration, so the slow-loris test checks that tricklers do not hurt
the control client and are closed promptly at shutdown (SIGTERM), not the cut itself.

Spec: RFC 1939 §3 (autologout, commands), §5-§7; RFC 2449 §4 (line lengths), §6.6
(PIPELINING); RFC 2595 §4 (STLS); RFC 5034 §4 (AUTH, ``*`` cancel); RELIABILITY.md
tests 4, 5, 12 and D3, D4, D7.
"""

from __future__ import annotations

import base64
import poplib
import random
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
from .imap_helpers import DOMAIN, PASSWORD, add_accounts, tls_context
from .pop3_helpers import (
    LOCK_WAIT,
    auth_scram,
    command,
    inbox_status,
    multiappend,
    read_line,
    send,
)
from .server import PostelServer

T = TypeVar("T")
CONTROL_USER = f"control@{DOMAIN}"
"""The control client's account (no attacker touches its maildrop)."""
NUMBERS_USER = f"numbers@{DOMAIN}"
"""The account of the message-number and DELE / RSET / QUIT tests."""
BIG_USERS = tuple(f"big{n}@{DOMAIN}" for n in range(10))
"""Accounts holding one large message each; also the logged-in attackers' accounts."""
SMALL_MESSAGES = 5
"""Small messages in the control and numbers maildrops."""
MiB = 1024 * 1024
BIG_BLOCK = (b"x" * 76 + b"\r\n") * 999 + b".dot-stuffed line\r\n"
BIG_MESSAGE = b"Subject: big\r\n\r\n" + BIG_BLOCK * (5 * MiB // len(BIG_BLOCK))
"""A message of about 5 MiB with short lines, some starting with a dot."""
RSS_BOUND_PER_CONNECTION = 16 * MiB
"""RSS growth allowed for one attacking connection (RELIABILITY.md test 5)."""
RSS_BOUND_SWARM = 48 * MiB
"""RSS growth allowed for a swarm of up to 30 attacking connections."""
RSS_BOUND_BIG_RETR = 32 * MiB
"""RSS growth allowed for 10 sessions RETRing a 5 MiB message at once: messages over
256 KiB are streamed in 64 KiB chunks, so it is far below 10 copies (50 MiB, more with
the dot-stuffed copy)."""
CONTROL_WORST = 5.0
"""Seconds one control round may take at worst while the server is under attack."""
ANSWER_WAIT = 10.0
"""Seconds an attacker waits for an answer or for the server to close."""
SHUTDOWN_WAIT = 10.0
"""Seconds within which SIGTERM must close every trickling connection."""
TRICKLE_SECONDS = 5.0
"""How long the tricklers trickle under measurement before the server is stopped."""


# -- the server ------------------------------------------------------------------------


def _add_accounts(server: PostelServer, secret: Path, *addresses: str) -> None:
    """Create ``addresses`` (two CLI processes at a time) with PASSWORD."""
    server.cli("domain", "add", DOMAIN)

    def add(address: str) -> None:
        server.cli("account", "add", address, "--password-file", str(secret))

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(add, addresses))


def _small(tag: str, n: int) -> bytes:
    return b"Subject: %s %d\r\n\r\nbody %d\r\n" % (tag.encode(), n, n)


@pytest.fixture(scope="module")
def pop3(module_servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> PostelServer:
    server = module_servers("pop3-hostile")
    secret = tmp_path_factory.mktemp("secret") / "password"
    secret.write_text(PASSWORD + "\n")
    _add_accounts(server, secret, CONTROL_USER, NUMBERS_USER, *BIG_USERS)
    server.start()
    for user in (CONTROL_USER, NUMBERS_USER):
        multiappend(server, user, (_small(user, n) for n in range(SMALL_MESSAGES)))
    for user in BIG_USERS:
        multiappend(server, user, [BIG_MESSAGE])
    return server


# -- measurements and the control client ------------------------------------------------


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
        """Sample until ``stop`` is set or the process is gone."""
        while not self.stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, AssertionError):
                return


CLIENT_ERRORS = (AssertionError, OSError, EOFError, poplib.error_proto)


@dataclass(slots=True)
class Control:
    """A well-behaved client doing full sessions (``control_round``) on fresh
    connections until stopped; records the rounds, the slowest and any failure."""

    server: PostelServer
    rounds: int = 0
    worst: float = 0.0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Do rounds until ``stop`` is set."""
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                control_round(self.server)
            except CLIENT_ERRORS as exc:
                self.errors.append(repr(exc))
            self.worst = max(self.worst, time.monotonic() - began)
            self.rounds += 1
            self.stop.wait(0.05)


def control_round(server: PostelServer) -> None:
    """One normal session on 995: AUTH SCRAM-SHA-256 (no argon2 working set in the
    measurement), STAT, RETR 1, QUIT, then read to the close (the maildrop lock is free
    by then)."""
    client = poplib.POP3_SSL(
        "127.0.0.1", server.pop3s_port, context=tls_context(server), timeout=CONTROL_WORST * 2
    )
    try:
        answer, _ = auth_scram(client, CONTROL_USER)
        assert answer.startswith(b"+OK"), answer
        count, _ = client.stat()
        assert count == SMALL_MESSAGES, count
        status, lines, _ = client.retr(1)
        assert status.startswith(b"+OK") and b"body 0" in lines, (status, lines)
        assert command(client, "QUIT").startswith(b"+OK")
        with suppress(EOFError):
            extra = read_line(client)
            raise AssertionError(f"after QUIT: {extra!r}")
    finally:
        client.close()


@contextmanager
def under_attack(server: PostelServer, rss_bound: int) -> Iterator[None]:
    """Run the body (the attack) while sampling the server's RSS and serving a control
    client; then assert the RSS growth stayed under ``rss_bound`` octets, the control
    client was served throughout, and is served after the attack."""
    assert server.proc is not None
    rss = RssPeak(server.proc.pid)
    rss.before = rss.peak = rss_bytes(server.proc.pid)
    sampler = threading.Thread(target=rss.run, daemon=True)
    sampler.start()
    control = Control(server)
    worker = threading.Thread(target=control.run, daemon=True)
    worker.start()
    try:
        yield
    finally:
        rss.stop.set()
        control.stop.set()
        sampler.join(5)
        worker.join(CONTROL_WORST * 3)
    print(
        f"RSS {rss.before / MiB:.1f} MiB before, growth {rss.growth / MiB:.1f} MiB"
        f" (bound {rss_bound / MiB:.0f} MiB)"
    )
    assert rss.growth < rss_bound, f"RSS grew {rss.growth / MiB:.1f} MiB"
    assert not control.errors, control.errors
    assert control.rounds >= 1, "the control client never completed a round"
    assert control.worst < CONTROL_WORST, f"a control round took {control.worst:.2f} s"
    control_round(server)
    assert server.running


def swarm(
    server: PostelServer,
    count: int,
    setup: Callable[[int], poplib.POP3],
    attack: Callable[[int, poplib.POP3], T],
    rss_bound: int = RSS_BOUND_SWARM,
) -> list[T]:
    """Open ``count`` connections with ``setup(i)`` (greeting, login: not measured),
    then run ``attack(i, client)`` on all of them at once ``under_attack``; the
    attacks' results in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        clients = list(pool.map(setup, range(count)))
        try:
            with under_attack(server, rss_bound):
                return list(pool.map(attack, range(count), clients))
        finally:
            for client in clients:
                with suppress(OSError):
                    client.close()


# -- connections -------------------------------------------------------------------------


def plain(server: PostelServer) -> poplib.POP3:
    """A greeted connection on the STLS port, not logged in."""
    return poplib.POP3("127.0.0.1", server.pop3_port, timeout=ANSWER_WAIT)


def implicit_tls(server: PostelServer) -> poplib.POP3_SSL:
    """A greeted connection on the implicit-TLS port (995), not logged in."""
    return poplib.POP3_SSL(
        "127.0.0.1", server.pop3s_port, context=tls_context(server), timeout=ANSWER_WAIT
    )


def preauth(server: PostelServer) -> Callable[[int], poplib.POP3]:
    """A setup for ``swarm``: even connections plaintext, odd ones on 995."""
    return lambda i: implicit_tls(server) if i % 2 else plain(server)


def logged_in(server: PostelServer, user: str) -> poplib.POP3_SSL:
    """A session on 995 after AUTH SCRAM-SHA-256 as ``user``, retried while an earlier
    session's maildrop lock is being released (``-ERR [IN-USE]``)."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        client = implicit_tls(server)
        answer, _ = auth_scram(client, user)
        if answer.startswith(b"+OK"):
            return client
        client.close()
        assert answer.startswith(b"-ERR [IN-USE]"), answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)


def big_sessions(server: PostelServer) -> Callable[[int], poplib.POP3]:
    """A setup for ``swarm``: logged in as ``BIG_USERS[i]``."""
    return lambda i: logged_in(server, BIG_USERS[i])


def until_close(client: poplib.POP3, seconds: float = ANSWER_WAIT) -> list[bytes]:
    """Read lines until the server closes the connection; fails if it is still open
    after ``seconds``. A reset counts as a close."""
    client.sock.settimeout(seconds)
    lines: list[bytes] = []
    try:
        while True:
            lines.append(read_line(client))
    except (EOFError, ConnectionResetError):
        return lines
    except TimeoutError:
        raise AssertionError(f"still connected after {seconds} s: {lines!r}") from None


def multiline(client: poplib.POP3) -> list[bytes]:
    """The lines of a multi-line response body up to its ``.`` (still dot-stuffed)."""
    lines: list[bytes] = []
    while (line := read_line(client)) != b".":
        lines.append(line)
    return lines


def refused(line: bytes) -> bool:
    """True for a ``-ERR`` status line."""
    return line.startswith(b"-ERR")


def garbage(seed: int, size: int) -> bytes:
    """``size`` random octets (seeded)."""
    return random.Random(seed).randbytes(size)


# -- line bombs ---------------------------------------------------------------------------


BOMB = 4 * MiB
"""Octets of a line bomb (the line bound is 255, RFC 2449 §4)."""


def _send_bomb(client: poplib.POP3) -> None:
    piece = b"USER " + b"A" * (64 * 1024 - 5)
    for _ in range(BOMB // len(piece)):
        client.sock.sendall(piece)


def test_line_bombs_before_login_are_dropped_and_refused(pop3: PostelServer) -> None:
    """20 connections (plaintext and 995) each send 4 MiB without a line end before
    login: the octets are dropped, not buffered; at the line end the answer is
    ``-ERR line too long`` and the session goes on (CAPA answered)."""

    def attack(_: int, client: poplib.POP3) -> tuple[bytes, bytes, list[bytes]]:
        _send_bomb(client)
        send(client, b"")
        answer = read_line(client)
        capa = command(client, "CAPA")
        return answer, capa, multiline(client)

    for answer, capa, caps in swarm(pop3, 20, preauth(pop3), attack):
        assert answer == b"-ERR line too long", answer
        assert capa.startswith(b"+OK") and b"TOP" in caps, (capa, caps)


def test_line_bombs_after_login_are_dropped_and_refused(pop3: PostelServer) -> None:
    """10 logged-in sessions each send 4 MiB without a line end: ``-ERR line too long``
    at the line end, then STAT is answered and nothing changed."""

    def attack(_: int, client: poplib.POP3) -> tuple[bytes, bytes, bytes]:
        _send_bomb(client)
        send(client, b"")
        answer = read_line(client)
        return answer, command(client, "STAT"), command(client, "QUIT")

    for answer, stat, quit_ in swarm(pop3, 10, big_sessions(pop3), attack):
        assert answer == b"-ERR line too long", answer
        assert stat.startswith(b"+OK 1 "), stat
        assert quit_.startswith(b"+OK"), quit_


def test_repeated_long_lines_reach_the_error_limit_and_are_cut(pop3: PostelServer) -> None:
    """20 connections (half logged in) each send 12 lines of 100 KiB: ten ``-ERR line
    too long``, then ``-ERR too many errors`` and the close (ERRORS_MAX is 10)."""
    line = b"NOOP " + b"B" * (100 * 1024) + b"\r\n"

    def setup(i: int) -> poplib.POP3:
        return logged_in(pop3, BIG_USERS[i // 2]) if i % 2 else preauth(pop3)(i // 2)

    def attack(_: int, client: poplib.POP3) -> list[bytes]:
        with suppress(OSError):
            client.sock.sendall(line * 12)
        return until_close(client)

    for found in swarm(pop3, 20, setup, attack):
        assert found == [b"-ERR line too long"] * 10 + [b"-ERR too many errors, closing"], found


# -- garbage --------------------------------------------------------------------------------


def test_random_garbage_gets_err_then_the_close(pop3: PostelServer) -> None:
    """64 KiB of random octets, before login (plaintext and 995) and after login: only
    ``-ERR`` answers, at most ERRORS_MAX + 1 of them, then the close. 12 connections,
    half of them logged in."""

    def setup(i: int) -> poplib.POP3:
        return logged_in(pop3, BIG_USERS[i // 2]) if i % 2 else preauth(pop3)(i // 2)

    def attack(i: int, client: poplib.POP3) -> list[bytes]:
        with suppress(OSError):
            client.sock.sendall(garbage(i, 64 * 1024))
        return until_close(client)

    for found in swarm(pop3, 12, setup, attack):
        assert found and all(refused(line) for line in found), found
        assert len(found) <= 11, found
        assert found[-1] == b"-ERR too many errors, closing", found


# -- STLS injection ---------------------------------------------------------------------------


def test_plaintext_pipelined_after_stls_is_never_answered(pop3: PostelServer) -> None:
    """``STLS``, ``USER``, ``PASS`` and ``STAT`` in one packet: only ``+OK`` to STLS;
    the plaintext commands are answered neither before nor inside TLS, and do not log in
    (inside TLS, STAT and PASS are refused; a real login then works).
    Spec: RFC 2595 §4; RELIABILITY.md test 4."""
    injected = f"STLS\r\nUSER {NUMBERS_USER}\r\nPASS {PASSWORD}\r\nSTAT\r\n".encode()
    with under_attack(pop3, RSS_BOUND_PER_CONNECTION):
        client = plain(pop3)
        try:
            client.sock.sendall(injected)
            assert read_line(client).startswith(b"+OK")
            client.sock.settimeout(0.3)
            with suppress(TimeoutError):
                early = client.sock.recv(4096)
                raise AssertionError(f"plaintext after +OK to STLS: {early!r}")
            client.sock.settimeout(ANSWER_WAIT)
            client.sock = tls_context(pop3).wrap_socket(client.sock, server_hostname="mx.test")
            client.file = client.sock.makefile("rb")
            assert command(client, "STAT").startswith(b"-ERR"), "the injection logged in"
            assert command(client, f"PASS {PASSWORD}") == b"-ERR USER first"
            assert command(client, f"USER {NUMBERS_USER}").startswith(b"+OK")
            assert command(client, f"PASS {PASSWORD}").startswith(b"+OK")
            assert command(client, "STAT").startswith(b"+OK %d " % SMALL_MESSAGES)
            assert command(client, "QUIT").startswith(b"+OK")
            assert until_close(client) == []
        finally:
            client.close()


# -- AUTH abuse ----------------------------------------------------------------------------------


HUGE_B64 = base64.b64encode(b"\0" * 75_000)
"""A 100 KB base64 line (the bound during AUTH is 12,290 octets, RFC 5034 §4)."""


def _auth_abuse(client: poplib.POP3) -> list[bytes]:
    """On a 995 connection: a 100 KB AUTH command line, ``*`` cancel, bad base64, a
    100 KB response during SCRAM; returns every answer and what came after."""
    answers = [command(client, b"AUTH PLAIN " + HUGE_B64)]
    answers.append(command(client, "AUTH SCRAM-SHA-256"))
    answers.append(command(client, "*"))
    answers.append(command(client, "AUTH SCRAM-SHA-256"))
    answers.append(command(client, "!!not base64!!"))
    answers.append(command(client, "AUTH SCRAM-SHA-256"))
    answers.append(command(client, HUGE_B64))
    return answers + until_close(client)


def test_auth_abuse_gets_err(pop3: PostelServer) -> None:
    """10 connections on 995: a 100 KB ``AUTH PLAIN`` line is ``-ERR line too long``
    and the session goes on; ``*`` cancels (``-ERR``); bad base64 is ``-ERR``; a 100 KB
    response inside a SCRAM exchange is ``-ERR`` and ends the session. Nothing logs in.
    Spec: RFC 5034 §4 (cancel, malformed responses)."""

    def attack(_: int, client: poplib.POP3) -> list[bytes]:
        return _auth_abuse(client)

    for answers in swarm(pop3, 10, lambda _: implicit_tls(pop3), attack):
        assert answers[0] == b"-ERR line too long", answers
        assert answers[1] == b"+ " and answers[3] == b"+ " and answers[5] == b"+ ", answers
        assert refused(answers[2]) and refused(answers[4]), answers
        assert refused(answers[6]), answers
        assert all(refused(a) for a in answers[7:]), answers


def test_unknown_mechanisms_in_a_loop_reach_the_error_limit(pop3: PostelServer) -> None:
    """30 ``AUTH XYZZY-n`` in one burst on each of 10 connections (plaintext and 995):
    ten ``-ERR``, then ``-ERR too many errors`` and the close."""
    burst = b"".join(b"AUTH XYZZY-%d\r\n" % n for n in range(30))

    def attack(_: int, client: poplib.POP3) -> list[bytes]:
        with suppress(OSError):
            client.sock.sendall(burst)
        return until_close(client)

    for found in swarm(pop3, 10, preauth(pop3), attack):
        assert len(found) == 11 and all(refused(line) for line in found), found
        assert found[-1] == b"-ERR too many errors, closing", found


# -- message numbers and the UPDATE state ----------------------------------------------------------


NUMBER_ABUSE = (
    "RETR 99999999999",
    "RETR 4294967295",
    "RETR 4294967296",
    "RETR -1",
    "RETR 0",
    "TOP 1 -1",
    "TOP 1 123456789012345678901",
    "TOP 0 0",
    "TOP 9999999999 5",
    "LIST 0",
    "LIST 99999999999999",
    "UIDL 0",
    "DELE 0",
    "DELE -5",
)
"""Commands with message numbers or line counts out of range or out of syntax (more
than 10 digits, negative, zero): each ``-ERR``. Syntax errors count towards
ERRORS_MAX, so fewer than ten of them are here."""


def test_absurd_message_numbers_get_err(pop3: PostelServer) -> None:
    """Out-of-range and malformed numbers get ``-ERR`` and the session goes on;
    ``TOP 1 999999999`` and a 20-digit line count send the whole message, as RETR does;
    ``TOP 1 0`` the header and the blank line.
    Nothing is deleted. Spec: RFC 1939 §5, §7."""
    with under_attack(pop3, RSS_BOUND_PER_CONNECTION):
        client = logged_in(pop3, NUMBERS_USER)
        try:
            for line in NUMBER_ABUSE:
                answer = command(client, line)
                assert refused(answer), (line, answer)
            whole = client.retr(1)[1]
            for line in ("TOP 1 999999999", "TOP 1 99999999999999999999"):
                assert command(client, line).startswith(b"+OK"), line
                assert multiline(client) == whole, line
            assert command(client, "TOP 1 0").startswith(b"+OK")
            assert multiline(client) == whole[: whole.index(b"") + 1]
            assert command(client, "STAT").startswith(b"+OK %d " % SMALL_MESSAGES)
            assert command(client, "QUIT").startswith(b"+OK")
            assert until_close(client) == []
        finally:
            client.close()
    assert inbox_status(pop3, NUMBERS_USER)[0] == SMALL_MESSAGES


def test_dele_twice_rset_quit_pipelined_deletes_nothing(pop3: PostelServer) -> None:
    """DELE of every message, DELE of every message again, RSET and QUIT in one packet:
    ``+OK`` to the first DELEs, ``-ERR`` to the second, ``+OK`` to RSET and QUIT, in
    order; RSET undid the marks, so nothing is deleted (IMAP STATUS and a second POP3
    STAT agree). Spec: RFC 1939 §6, §7 (RSET); RFC 2449 §6.6."""
    numbers = range(1, SMALL_MESSAGES + 1)
    burst = b"".join(b"DELE %d\r\n" % n for n in [*numbers, *numbers]) + b"RSET\r\nQUIT\r\n"
    with under_attack(pop3, RSS_BOUND_PER_CONNECTION):
        client = logged_in(pop3, NUMBERS_USER)
        try:
            client.sock.sendall(burst)
            found = until_close(client)
        finally:
            client.close()
    first = [b"+OK message %d deleted" % n for n in numbers]
    again = [b"-ERR message %d already deleted" % n for n in numbers]
    assert found[: 2 * SMALL_MESSAGES] == first + again, found
    assert found[-2].startswith(b"+OK maildrop has %d messages" % SMALL_MESSAGES), found
    assert found[-1].startswith(b"+OK") and len(found) == 2 * SMALL_MESSAGES + 2, found
    assert inbox_status(pop3, NUMBERS_USER)[0] == SMALL_MESSAGES
    client = logged_in(pop3, NUMBERS_USER)
    try:
        assert client.stat()[0] == SMALL_MESSAGES
        assert command(client, "QUIT").startswith(b"+OK")
    finally:
        client.close()


# -- a large message, many sessions -------------------------------------------------------------


def _read_retr(client: poplib.POP3, slow: bool) -> tuple[bytes, int]:
    """RETR 1 read raw to the final ``.`` line (slowly when ``slow``: 64 KiB per 10 ms);
    the status line and the octets of the dot-stuffed body."""
    status = command(client, "RETR 1")
    received = bytearray()
    client.sock.settimeout(ANSWER_WAIT)
    while not received.endswith(b"\r\n.\r\n"):
        chunk = client.file.read1(64 * 1024)  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError("closed during RETR")
        received += chunk
        if slow:
            time.sleep(0.01)
    return status, len(received)


def test_many_sessions_retr_a_large_message_in_bounded_memory(pop3: PostelServer) -> None:
    """10 sessions of different accounts RETR the same 5 MiB message at once, half of
    them reading slowly: each gets all of it (dot-stuffed), and the server's memory
    grows by far less than 10 copies. RELIABILITY.md D7."""
    stuffed = len(BIG_MESSAGE) + BIG_MESSAGE.count(b"\n.") + 3

    def attack(i: int, client: poplib.POP3) -> tuple[bytes, int]:
        got = _read_retr(client, slow=i % 2 == 1)
        assert command(client, "QUIT").startswith(b"+OK")
        return got

    results = swarm(pop3, 10, big_sessions(pop3), attack, RSS_BOUND_BIG_RETR)
    for status, octets in results:
        assert status.startswith(b"+OK"), status
        assert octets > len(BIG_MESSAGE) and abs(octets - stuffed) < 4096, (octets, stuffed)


# -- slow-loris and shutdown ------------------------------------------------------------------------


@dataclass(slots=True)
class Trickler:
    """A connection sending one octet per second until the server closes it; records
    what it read and when the close came (``time.monotonic()``)."""

    client: poplib.POP3
    data: bytes
    received: bytearray = field(default_factory=bytearray)
    closed_at: float | None = None

    def run(self, patience: float) -> None:
        """Trickle for at most ``patience`` seconds or until the close."""
        began = time.monotonic()
        self.client.sock.settimeout(1.0)
        for octet in self.data:
            if time.monotonic() - began > patience:
                return
            try:
                self.client.sock.sendall(bytes([octet]))
                chunk = self.client.sock.recv(4096)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed_at = time.monotonic()
                return
            self.received += chunk


def test_slow_loris_does_not_hurt_the_control_client_and_ends_at_shutdown(
    pop3: PostelServer,
) -> None:
    """30 connections (plaintext and 995 before login, and logged in) trickle a command
    one octet per second: nothing is answered, the control client is served, and at
    SIGTERM every trickler gets ``-ERR [SYS/TEMP]`` and the close within SHUTDOWN_WAIT;
    the server exits 0. The cut at the timeouts: test_slow_loris_is_cut_at_the_timeouts."""
    data = b"AUTH SCRAM-SHA-256 " + b"A" * 200

    def setup(i: int) -> poplib.POP3:
        return logged_in(pop3, BIG_USERS[i // 3]) if i % 3 == 2 else preauth(pop3)(i)

    with ThreadPoolExecutor(max_workers=30) as pool:
        tricklers = [Trickler(c, data) for c in pool.map(setup, range(30))]
        try:
            futures = [pool.submit(t.run, 60.0) for t in tricklers]
            with under_attack(pop3, RSS_BOUND_SWARM):
                time.sleep(TRICKLE_SECONDS)
            assert all(t.closed_at is None and not t.received for t in tricklers)
            began = time.monotonic()
            assert pop3.stop() == 0
            stopped = time.monotonic() - began
            for future in futures:
                future.result(timeout=SHUTDOWN_WAIT + 2)
        finally:
            for trickler in tricklers:
                trickler.client.close()
    print(f"SIGTERM to exit: {stopped:.2f} s")
    for trickler in tricklers:
        assert trickler.closed_at is not None, trickler.received
        assert trickler.closed_at - began < SHUTDOWN_WAIT, trickler.closed_at - began
        assert bytes(trickler.received).startswith(b"-ERR [SYS/TEMP]"), trickler.received
    assert stopped < SHUTDOWN_WAIT
    pop3.start()
    control_round(pop3)


def test_server_log_has_no_session_failure(pop3: PostelServer) -> None:
    """After all the attacks: no session ended in an internal error or traceback."""
    control_round(pop3)
    text = pop3.log.read_text()
    assert "pop3.session.failed" not in text
    assert "Traceback" not in text


def test_slow_loris_is_cut_at_the_timeouts(postel_factory: ServerFactory) -> None:
    """With short ``[pop3]`` timeouts, tricklers before and after login are answered
    ``-ERR`` and closed when their whole command has not arrived in time, however they
    space their octets (RFC 1939 §3; RELIABILITY.md D4)."""
    preauth_s, auth_s = 2.0, 3.0
    server = postel_factory(
        "pop3-loris",
        pop3={"timeout_not_authenticated": preauth_s, "timeout_authenticated": auth_s},
    )
    user = f"loris@{DOMAIN}"
    add_accounts(server, user)
    server.start()
    data = b"AUTH SCRAM-SHA-256 " + b"A" * 200
    clients: list[poplib.POP3] = [preauth(server)(i) for i in range(8)]
    clients.append(logged_in(server, user))
    tricklers = [Trickler(c, data) for c in clients]
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(tricklers)) as pool:
        for future in [pool.submit(t.run, auth_s + 10) for t in tricklers]:
            future.result(timeout=auth_s + 15)
    for i, trickler in enumerate(tricklers):
        limit = auth_s if i == len(tricklers) - 1 else preauth_s
        assert trickler.closed_at is not None, f"trickler {i} was never cut"
        assert trickler.closed_at - began < limit + 3.0, trickler.closed_at - began
        assert bytes(trickler.received).startswith(b"-ERR"), trickler.received
        trickler.client.close()
    assert server.stop() == 0
