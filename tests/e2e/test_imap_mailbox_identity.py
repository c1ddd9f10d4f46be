"""A selected or watched mailbox is known by its id, UIDVALIDITY and owner together.

SQLite may give a deleted mailbox's row id to the next mailbox created, of any account
(a new account's INBOX included). A session that had the deleted mailbox selected must
be ended (BYE) before it reads anything by that id, and NOTIFY must not report another
account's mailbox under the deleted one's name. Every way the reused id could be read
is tried: NOOP (sync), FETCH before any sync, IDLE, and a NOTIFY STATUS watch.

Spec: RFC 9051 §2.3.1.1 (UIDVALIDITY), §7.1.5 (BYE); RFC 5465 §5.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts
from .imap_raw import RawImap
from .server import PostelServer

ALICE = "alice@ident.test"
BOB = "bob@ident.test"
SECRET = b"Subject: bob's secret\r\n\r\nthe code is 424242\r\n"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("identity")
    add_accounts(srv, ALICE, BOB)
    srv.start()
    yield srv


def _login(server: PostelServer, user: str) -> RawImap:
    client = RawImap.tls(server.imaps_port)
    client.login(user, PASSWORD)
    return client


def _reuse(server: PostelServer, name: str) -> None:
    """Alice's mailbox ``name`` is deleted by another of her sessions; bob creates a
    mailbox (taking the freed id on SQLite) and puts a message in it."""
    with _login(server, ALICE) as other:
        assert other.command(f"DELETE {name}").status == "OK"
    with _login(server, BOB) as bob:
        assert bob.command(f"CREATE Bob{name}").status == "OK"
        done = bob.command(b"APPEND Bob%s {%d+}\r\n" % (name.encode(), len(SECRET)) + SECRET)
        assert done.status == "OK", done


@pytest.mark.parametrize("first", ["NOOP", "FETCH 1:* BODY[]", "UID FETCH 1:* BODY[]"])
def test_a_session_on_a_deleted_mailbox_never_reads_the_next_one(
    server: PostelServer, first: str
) -> None:
    name = "Gone" + "".join(c for c in first if c.isalpha())[:8]
    with _login(server, ALICE) as alice:
        assert alice.command(f"CREATE {name}").status == "OK"
        assert alice.command(f"SELECT {name}").status == "OK"
        _reuse(server, name)
        alice.send(b"a1 " + first.encode() + b"\r\n")
        seen = b""
        try:
            while b"a1 " not in seen and b"* BYE" not in seen:
                seen += alice.sock.recv(65536)
        except OSError:
            pass
        assert b"424242" not in seen and b"bob" not in seen.lower(), seen
        assert b"* BYE" in seen, seen


def test_notify_does_not_report_another_accounts_mailbox(server: PostelServer) -> None:
    with _login(server, ALICE) as alice:
        assert alice.command("CREATE Watched").status == "OK"
        done = alice.command("NOTIFY SET STATUS (MAILBOXES Watched (MessageNew MessageExpunge))")
        assert done.status == "OK", done
        _reuse(server, "Watched")
        done = alice.command("NOOP")
        assert not any(b"STATUS" in line for line in done.untagged), done
