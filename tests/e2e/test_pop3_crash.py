"""Kill -9 during the POP3 UPDATE state: the deletions of a session are applied all or
none (RFC 1939 §6).

Each round, a client marks DELETED messages of a maildrop and sends QUIT; the
server is SIGKILLed a small random delay later (before, during or after the UPDATE
state) and restarted. Afterwards the maildrop, as IMAP and POP3 see it, is either fully
updated (exactly the undeleted messages remain) or untouched (every message remains),
never part of the way; and when the client read ``+OK`` to QUIT before the kill, it is
fully updated. A last round kills only after the ``+OK``.

Spec: RFC 1939 §6 (UPDATE state), §7 (DELE, QUIT); RELIABILITY.md D1 (durability).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, add_accounts, message
from .pop3_helpers import inbox_status, inbox_uids, login_within, multiappend, read_line, send
from .server import PostelServer

USER = f"crash@{DOMAIN}"
DELETED = 2000
"""Messages marked DELETED in each round (enough that the UPDATE takes a while)."""
KEPT = 5
"""Messages left undeleted, at the end of the maildrop."""
ROUNDS = 5
"""Rounds killed at a random delay after QUIT."""
MAX_DELAY = 0.06
"""Seconds after QUIT within which a round's kill comes (the UPDATE of DELETED
messages takes some tens of milliseconds)."""
SEED = 1939


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("pop3-crash")
    add_accounts(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _fill(server: PostelServer, rounds: int) -> list[int]:
    """Top the maildrop up to DELETED + KEPT messages; returns its UIDs."""
    have = inbox_status(server, USER)[0]
    want = DELETED + KEPT
    multiappend(server, USER, (message("crash", rounds * want + n) for n in range(want - have)))
    uids = inbox_uids(server, USER)
    assert len(uids) == want
    return uids


def _quit_and_kill(server: PostelServer, delay: float | None) -> bytes | None:
    """DELE the first DELETED messages (pipelined), QUIT, and SIGKILL the server
    ``delay`` seconds later (None: once the answer to QUIT has come). Returns the
    answer to QUIT if the client got one."""
    client = login_within(server, USER)
    assert not isinstance(client, bytes), client
    assert client.stat()[0] == DELETED + KEPT
    send(client, b"\r\n".join(b"DELE %d" % n for n in range(1, DELETED + 1)))
    for _ in range(DELETED):
        assert read_line(client).startswith(b"+OK")
    send(client, b"QUIT")
    answer: bytes | None = None
    if delay is None:
        answer = read_line(client)
    else:
        time.sleep(delay)
    server.kill()
    if answer is None:
        client.sock.settimeout(2)
        try:
            answer = read_line(client)
        except (TimeoutError, EOFError, OSError):
            answer = None
    client.close()
    return answer


def _check_round(server: PostelServer, uids: list[int], answer: bytes | None, label: str) -> str:
    """After the restart: all of ``uids`` remain (untouched) or only the KEPT last
    (updated), both as IMAP and as POP3 sees it; updated whenever QUIT got ``+OK``.
    Returns the outcome."""
    now = inbox_uids(server, USER)
    if now == uids[-KEPT:]:
        outcome = "updated"
    else:
        assert now == uids, f"{label}: {len(now)} messages remain of {len(uids)}: half an UPDATE"
        outcome = "untouched"
    if answer is not None and answer.startswith(b"+OK"):
        assert outcome == "updated", f"{label}: QUIT answered {answer!r} but nothing deleted"
    client = login_within(server, USER)
    assert not isinstance(client, bytes), client
    count, octets = client.stat()
    assert count == len(now)
    _, listing, _ = client.list()
    assert sum(int(line.split()[1]) for line in listing) == octets
    client.quit()
    return outcome


def test_kill_during_update_is_all_or_nothing(server: PostelServer) -> None:
    rng = random.Random(SEED)
    delays: list[float | None] = [rng.uniform(0, MAX_DELAY) for _ in range(ROUNDS)]
    outcomes: list[str] = []
    for n, delay in enumerate([*delays, None]):
        uids = _fill(server, n)
        answer = _quit_and_kill(server, delay)
        server.start()
        label = f"round {n} (kill {'after +OK' if delay is None else f'{delay * 1000:.1f} ms'})"
        outcomes.append(_check_round(server, uids, answer, label))
    assert outcomes[-1] == "updated"
