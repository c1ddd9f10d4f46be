"""Python's poplib against postel's POP3 server, through every command: CAPA before and
after TLS, USER/PASS over STLS and 995 (refused before TLS), APOP refused, AUTH PLAIN
and SCRAM-SHA-256, STAT/LIST/UIDL/RETR/TOP/DELE/NOOP/RSET/QUIT, octet counts equal to
what RETR sends, UIDL values equal to IMAP's ``<UIDVALIDITY>.<UID>``, ``\\Seen`` set by
RETR and deletions seen by IMAP as EXPUNGE, and the maildrop lock (``-ERR [IN-USE]``,
released at QUIT and at a dropped connection; a dropped connection deletes nothing).

The test server allows plaintext passwords only under TLS. Messages arrive over SMTP,
so each begins with postel's trace fields (Return-Path, Delivered-To, Received), split
off before comparing with what was sent.

Spec: RFC 1939 §3-§8, §11; RFC 2449 §5, §6, §8; RFC 2595 §4; RFC 3206; RFC 5034 §4;
RFC 4616; RFC 5802; RFC 7677; RFC 8314 §3; RFC 9051 §7.5.1 (EXPUNGE).
"""

from __future__ import annotations

import base64
import contextlib
import poplib
import re
import time
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import (
    DOMAIN,
    PASSWORD,
    RawImap,
    add_accounts,
    imaps,
    message,
    ok,
    smtp_send,
    tagged_ok,
    tls_context,
)
from .pop3_helpers import (
    auth_plain,
    auth_scram,
    command,
    inbox_status,
    inbox_uids,
    login_within,
    multiappend,
    pop3_plain,
    pop3s,
    read_line,
    send,
    try_login,
    wire_message,
)
from .server import PostelServer
from .stored import strip_trace

USER = f"pop@{DOMAIN}"
"""The account whose maildrop the read-only tests use."""
AUTH_USER = f"auth@{DOMAIN}"
LOCK_USER = f"lock@{DOMAIN}"
DELE_USER = f"dele@{DOMAIN}"
RACE_USER = f"race@{DOMAIN}"
EMPTY_USER = f"empty@{DOMAIN}"
LOCK_CYCLES = 12
"""Sessions in a row that end and are followed at once by a login of the same account."""
PG_LOCK_CYCLES = 40
"""The same on PostgreSQL, where a lock release can be lost (about one session in
ten): enough cycles that the loss shows."""

DOT_BODY = ".leading dot\r\n..two dots\r\n.\r\n . \r\nline five\r\n.\r\nend"
"""A body whose lines start with "." (dot-stuffed on the wire, RFC 1939 §3)."""
BASE_CAPS = ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE")


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("pop3-clients")
    add_accounts(srv, USER, AUTH_USER, LOCK_USER, DELE_USER, RACE_USER, EMPTY_USER)
    srv.start()
    smtp_send(srv, AUTH_USER, [message("auth", 0)])
    smtp_send(srv, LOCK_USER, [message("lock", n) for n in range(3)])
    smtp_send(srv, RACE_USER, [message("race", 0)])
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def sent(server: PostelServer) -> list[bytes]:
    """The messages delivered to USER's maildrop, in order."""
    contents = [message("pop", n) for n in range(4)] + [message("dots", 0, DOT_BODY)]
    smtp_send(server, USER, contents)
    return contents


@contextlib.contextmanager
def session(server: PostelServer, user: str) -> Iterator[poplib.POP3_SSL]:
    """A USER/PASS session over 995 that QUITs at the end (if the test did not)."""
    client = pop3s(server, user)
    try:
        yield client
    finally:
        if client.file is not None:
            with contextlib.suppress(poplib.error_proto, OSError):
                client.quit()


def _sasl(caps: dict[str, list[str]]) -> list[str]:
    """The SASL mechanisms a CAPA answer lists."""
    return caps.get("SASL", [])


# -- CAPA, TLS and logging in ---------------------------------------------------------


def test_capa_before_tls_offers_stls_and_no_plaintext(server: PostelServer) -> None:
    client = pop3_plain(server)
    try:
        caps = client.capa()
        assert all(name in caps for name in (*BASE_CAPS, "SASL", "IMPLEMENTATION", "STLS"))
        assert caps["EXPIRE"] == ["NEVER"]
        assert "USER" not in caps
        assert "SCRAM-SHA-256" in _sasl(caps) and "PLAIN" not in _sasl(caps)
        assert client.stls(tls_context(server)).startswith(b"+OK")
        after = client.capa()
        assert all(name in after for name in (*BASE_CAPS, "USER", "IMPLEMENTATION"))
        assert "STLS" not in after
        assert {"SCRAM-SHA-256", "PLAIN"} <= set(_sasl(after))
    finally:
        client.quit()


def test_capa_on_995_and_in_transaction(server: PostelServer, sent: list[bytes]) -> None:
    client = pop3s(server)
    caps = client.capa()
    assert all(name in caps for name in (*BASE_CAPS, "USER", "SASL", "IMPLEMENTATION"))
    assert "STLS" not in caps
    assert {"SCRAM-SHA-256", "PLAIN"} <= set(_sasl(caps))
    client.quit()
    with session(server, USER) as pop:
        transaction = pop.capa()
        assert all(name in transaction for name in (*BASE_CAPS, "IMPLEMENTATION"))
        assert not {"USER", "STLS", "SASL"} & set(transaction)


def test_plaintext_refused_before_tls(server: PostelServer) -> None:
    client = pop3_plain(server)
    try:
        assert command(client, f"USER {AUTH_USER}").startswith(b"-ERR [AUTH]")
        assert command(client, f"PASS {PASSWORD}").startswith(b"-ERR [AUTH]")
        assert auth_plain(client, AUTH_USER).startswith(b"-ERR [AUTH]")
        assert command(client, "STAT").startswith(b"-ERR")
    finally:
        client.quit()


def test_apop_refused(server: PostelServer) -> None:
    for client in (pop3_plain(server), pop3s(server)):
        assert b"<" not in client.getwelcome()  # no APOP timestamp (RFC 1939 §7)
        answer = command(client, f"APOP {AUTH_USER} c4c9334bac560ecc979e58001b3e22fb")
        assert answer.startswith(b"-ERR"), answer
        assert command(client, "STAT").startswith(b"-ERR")
        client.quit()


def test_user_pass_over_stls(server: PostelServer) -> None:
    client = pop3_plain(server, stls=True)
    assert client.user(AUTH_USER).startswith(b"+OK")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat()[0] == 1
    assert client.quit().startswith(b"+OK")


def test_user_pass_over_995(server: PostelServer) -> None:
    client = pop3s(server)
    assert client.user(AUTH_USER).startswith(b"+OK")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat()[0] == 1
    assert client.quit().startswith(b"+OK")


def test_failed_login_is_refused_with_auth_code(server: PostelServer) -> None:
    client = pop3s(server)
    began = time.monotonic()
    client.user(AUTH_USER)
    assert command(client, "PASS wrong-password").startswith(b"-ERR [AUTH]")
    client.user(f"nobody@{DOMAIN}")
    assert command(client, f"PASS {PASSWORD}").startswith(b"-ERR [AUTH]")
    assert auth_plain(client, AUTH_USER, "wrong-password").startswith(b"-ERR [AUTH]")
    assert time.monotonic() - began < 30
    assert command(client, "STAT").startswith(b"-ERR")
    client.user(AUTH_USER)
    assert client.pass_(PASSWORD).startswith(b"+OK")  # the session may still log in
    client.quit()


def test_auth_plain_with_initial_response(server: PostelServer) -> None:
    client = pop3s(server)
    answer = auth_plain(client, AUTH_USER)
    assert answer.startswith(b"+OK"), answer
    assert client.stat()[0] == 1
    client.quit()


def test_auth_scram_sha_256_before_tls(server: PostelServer) -> None:
    client = pop3_plain(server)
    answer, challenges = auth_scram(client, AUTH_USER)
    assert answer.startswith(b"+OK"), (answer, challenges)
    assert len(challenges) == 2  # server-first, then server-final (v=) as a challenge
    assert base64.b64decode(challenges[1][2:]).startswith(b"v=")
    assert client.stat()[0] == 1
    client.quit()


def test_auth_scram_sha_256_over_tls_without_initial_response(server: PostelServer) -> None:
    client = pop3s(server)
    answer, challenges = auth_scram(client, AUTH_USER, initial=False)
    assert answer.startswith(b"+OK"), (answer, challenges)
    assert challenges[0].rstrip() == b"+"
    assert client.stat()[0] == 1
    client.quit()


def test_auth_scram_wrong_password(server: PostelServer) -> None:
    client = pop3s(server)
    answer, _ = auth_scram(client, AUTH_USER, "wrong-password")
    assert answer.startswith(b"-ERR [AUTH]"), answer
    client.quit()


# -- the maildrop -------------------------------------------------------------------------


def test_stat_list_retr_octets_and_bytes(server: PostelServer, sent: list[bytes]) -> None:
    with session(server, USER) as pop:
        count, octets = pop.stat()
        assert count == len(sent)
        _, listing, _ = pop.list()
        sizes = {int(n): int(size) for n, size in (line.split() for line in listing)}
        assert sorted(sizes) == list(range(1, count + 1))
        assert sum(sizes.values()) == octets
        for n, content in enumerate(sent, 1):
            assert command(pop, f"LIST {n}") == f"+OK {n} {sizes[n]}".encode()
            status, lines, _ = pop.retr(n)
            assert status.startswith(b"+OK")
            wire = wire_message(lines)
            assert len(wire) == sizes[n]
            assert strip_trace(wire) == content
        assert command(pop, f"RETR {count + 1}").startswith(b"-ERR")
        assert command(pop, f"LIST {count + 1}").startswith(b"-ERR")


def test_top(server: PostelServer, sent: list[bytes]) -> None:
    with session(server, USER) as pop:
        n = len(sent)  # the message with dot lines
        whole = wire_message(pop.retr(n)[1])
        header, body = whole.split(b"\r\n\r\n", 1)
        status, lines, _ = pop.top(n, 0)
        assert status.startswith(b"+OK")
        assert wire_message(lines) == header + b"\r\n\r\n"
        _, lines, _ = pop.top(n, 3)
        assert wire_message(lines) == header + b"\r\n\r\n" + b"".join(
            line + b"\r\n" for line in body.split(b"\r\n")[:3]
        )
        assert lines[-3:] == [b".leading dot", b"..two dots", b"."]
        assert wire_message(pop.top(n, 1000)[1]) == whole


def test_a_message_of_no_octets_is_listed_retrieved_and_topped(server: PostelServer) -> None:
    """A message of zero octets (an IMAP APPEND of {0}) is a message like any other:
    LIST gives 0, RETR and TOP answer +OK and an empty body. Spec: RFC 1939 §7."""
    imap = imaps(server, EMPTY_USER)
    try:
        ok(imap.append("INBOX", None, None, b""))
    finally:
        imap.logout()
    with session(server, EMPTY_USER) as pop:
        assert pop.list(1) == b"+OK 1 0"
        status, lines, _ = pop.retr(1)
        assert status.startswith(b"+OK") and lines == []
        status, lines, _ = pop.top(1, 0)
        assert status.startswith(b"+OK") and lines == []


def test_uidl_equals_imap_uids_and_is_stable(server: PostelServer, sent: list[bytes]) -> None:
    count, uidvalidity = inbox_status(server, USER)
    expected = [f"{uidvalidity}.{uid}".encode() for uid in inbox_uids(server, USER)]
    assert count == len(expected) == len(sent)
    seen: list[list[bytes]] = []
    for _ in range(2):
        with session(server, USER) as pop:
            _, listing, _ = pop.uidl()
            assert [line.split() for line in listing] == [
                [str(n).encode(), uidl] for n, uidl in enumerate(expected, 1)
            ]
            for n, uidl in enumerate(expected, 1):
                assert pop.uidl(n) == b"+OK %d %s" % (n, uidl)
            seen.append(listing)
    assert seen[0] == seen[1]


def test_pipelined_commands_answer_in_order(server: PostelServer, sent: list[bytes]) -> None:
    with session(server, USER) as pop:
        send(pop, b"STAT\r\nNOOP\r\nLIST 1\r\nUIDL 1\r\nNOOP")
        answers = [read_line(pop) for _ in range(5)]
        assert answers[0] == b"+OK %d %d" % pop.stat()
        assert answers[1].startswith(b"+OK") and answers[4].startswith(b"+OK")
        assert answers[2] == command(pop, "LIST 1")
        assert answers[3] == pop.uidl(1)


def _imap_flags(server: PostelServer, user: str) -> list[bytes]:
    client = imaps(server, user)
    ok(client.select("INBOX", readonly=True))
    data = ok(client.fetch("1:*", "(FLAGS)"))
    client.logout()
    return [item for item in data if isinstance(item, bytes)]


def test_retr_sets_seen_and_top_does_not(server: PostelServer) -> None:
    smtp_send(server, DELE_USER, [message("seen", n) for n in range(2)])
    assert not any(b"\\Seen" in flags for flags in _imap_flags(server, DELE_USER))
    with session(server, DELE_USER) as pop:
        pop.retr(1)
        pop.top(2, 0)
    flags = _imap_flags(server, DELE_USER)
    assert b"\\Seen" in flags[0] and b"\\Seen" not in flags[1], flags
    with session(server, DELE_USER) as pop:
        pop.dele(1)
        pop.dele(2)
    assert inbox_status(server, DELE_USER)[0] == 0


def test_dele_rset_noop_quit_and_imap_expunge(server: PostelServer) -> None:
    smtp_send(server, DELE_USER, [message("dele", n) for n in range(5)])
    uids = inbox_uids(server, DELE_USER)
    watcher = RawImap(server)
    watcher.login(DELE_USER)
    tagged_ok(watcher.command(b"S1 SELECT INBOX"))
    with session(server, DELE_USER) as pop:
        octets = pop.stat()[1]
        sizes = [int(line.split()[1]) for line in pop.list()[1]]
        assert pop.dele(1).startswith(b"+OK")
        assert pop.dele(3).startswith(b"+OK")
        assert pop.stat() == (3, octets - sizes[0] - sizes[2])
        assert command(pop, "DELE 1").startswith(b"-ERR")
        assert command(pop, "RETR 3").startswith(b"-ERR")
        assert command(pop, "LIST 1").startswith(b"-ERR")
        assert [line.split()[0] for line in pop.list()[1]] == [b"2", b"4", b"5"]
        assert pop.noop().startswith(b"+OK")
        assert pop.rset().startswith(b"+OK")
        assert pop.stat() == (5, octets)
        pop.dele(2)
        pop.dele(4)
        assert pop.quit().startswith(b"+OK")
    untagged = tagged_ok(watcher.command(b"N1 NOOP"))
    expunges = [line for line in untagged if re.match(rb"\* \d+ EXPUNGE", line)]
    assert len(expunges) == 2, untagged
    watcher.close()
    assert inbox_uids(server, DELE_USER) == [uids[0], uids[2], uids[4]]


# -- the maildrop lock ---------------------------------------------------------------------


def test_second_session_gets_in_use(server: PostelServer) -> None:
    with session(server, LOCK_USER) as first:
        assert first.stat()[0] == 3
        second = try_login(server, LOCK_USER)
        assert isinstance(second, bytes) and second.startswith(b"-ERR [IN-USE]"), second
        auth = pop3s(server)
        assert auth_plain(auth, LOCK_USER).startswith(b"-ERR [IN-USE]")
        auth.quit()
        assert first.noop().startswith(b"+OK")
        assert first.stat()[0] == 3
    # The log says why a login with the right password stayed unauthenticated.
    assert f"pop3.maildrop_in_use client=127.0.0.1 user={LOCK_USER}" in server.log.read_text()


def test_dropped_connection_deletes_nothing(server: PostelServer) -> None:
    before = inbox_status(server, LOCK_USER)[0]
    client = pop3s(server, LOCK_USER)
    client.retr(1)
    for n in range(1, before + 1):
        client.dele(n)
    client.close()  # no QUIT: the session never reaches the UPDATE state
    again = login_within(server, LOCK_USER)
    assert not isinstance(again, bytes), again
    assert again.stat()[0] == before
    again.quit()
    assert inbox_status(server, LOCK_USER)[0] == before
    assert b"\\Seen" not in _imap_flags(server, LOCK_USER)[0]  # nor marks anything seen


def _lock_cycles(server: PostelServer, user: str, *, quit: bool, cycles: int = LOCK_CYCLES) -> None:
    """``cycles`` sessions of ``user`` in a row, each ended by QUIT (``quit``) or by
    closing the connection after a DELE, and each followed at once by the next login;
    that login may meet ``-ERR [IN-USE]`` only for LOCK_WAIT seconds. A dropped session
    deletes nothing."""
    client = pop3s(server, user)
    count = client.stat()[0]
    for cycle in range(cycles):
        if quit:
            assert client.quit().startswith(b"+OK")
        else:
            client.dele(1)
            client.close()
        again = login_within(server, user)
        assert not isinstance(again, bytes), f"session {cycle}: {again!r}"
        assert again.stat()[0] == count
        client = again
    client.quit()


def test_lock_released_at_quit(server: PostelServer) -> None:
    _lock_cycles(server, RACE_USER, quit=True)


def test_lock_released_at_dropped_connection(server: PostelServer) -> None:
    _lock_cycles(server, RACE_USER, quit=False)


@pytest.mark.postgres
def test_lock_released_on_postgres(postel_factory: ServerFactory, pg_db_url: str) -> None:
    """The same on PostgreSQL, where the lock is a row written through the store."""
    srv = postel_factory("pop3-pg", database_url=pg_db_url)
    add_accounts(srv, RACE_USER)
    srv.start()
    try:
        smtp_send(srv, RACE_USER, [message("race", 0)])
        _lock_cycles(srv, RACE_USER, quit=True, cycles=PG_LOCK_CYCLES)
        _lock_cycles(srv, RACE_USER, quit=False, cycles=PG_LOCK_CYCLES)
    finally:
        srv.kill()  # a stuck session would hold a graceful stop for its drain timeout


def test_appended_bare_line_ends_are_counted_as_sent(postel_factory: ServerFactory) -> None:
    """A message APPENDed over IMAP with bare LF, bare CR and no final line end goes out
    of RETR with CRLF line ends, and LIST/STAT count exactly those octets (RFC 1939
    §11), while IMAP keeps the bytes as appended (RFC822.SIZE)."""
    srv = postel_factory("pop3-line-ends")
    user = f"ends@{DOMAIN}"
    add_accounts(srv, user)
    srv.start()
    odd = b"Subject: odd\nX-A: 1\r\n\nbody line\rnext\nlast without end"
    clean = b"Subject: clean\r\n\r\nbody\r\n"
    assert multiappend(srv, user, [odd, clean]) == 2
    with session(srv, user) as client:
        listed = [int(line.split()[1]) for line in client.list()[1]]
        for n, size in enumerate(listed, start=1):
            _, lines, _ = client.retr(n)
            assert len(wire_message(lines)) == size
        assert client.stat()[1] == sum(listed)
        assert listed[1] == len(clean)
        assert wire_message(client.retr(1)[1]).startswith(b"Subject: odd\r\nX-A: 1\r\n\r\n")
    assert srv.stop() == 0
