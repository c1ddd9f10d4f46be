"""IMAP QUOTA on real sockets (imaplib): GETQUOTAROOT and GETQUOTA report the account's
one root ``""`` with STORAGE (1024-octet units) and MESSAGE; SETQUOTA is refused
[NOPERM]; APPEND (refused before the literal is sent when its size cannot fit, exactly
in the store otherwise) and COPY over a limit get [OVERQUOTA] and store nothing; MOVE
within the account takes no more space and is allowed.

Spec: RFC 9208 §4.1-§4.3, §5.1, §5.2, §6.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import add_accounts, imaps
from .server import PostelServer

USER = "boxed@iq.test"
FREE = "free@iq.test"


def _message(n: int, size: int = 200) -> bytes:
    head = f"From: a@iq.test\r\nSubject: q{n}\r\n\r\n".encode()
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-quota")
    add_accounts(srv, USER, FREE)
    srv.cli("account", "quota", USER, "--storage", "4K", "--messages", "5")
    srv.start()
    yield srv


def _status(client: object, box: str = "INBOX") -> int:
    typ, data = client.status(box, "(MESSAGES)")  # type: ignore[attr-defined]
    assert typ == "OK"
    return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))  # type: ignore[union-attr]


def test_quota_reported_and_appends_refused_at_the_limit(server: PostelServer) -> None:
    client = imaps(server, USER)
    try:
        typ, caps = client.capability()
        assert b"QUOTA" in caps[0].split() and b"QUOTA=RES-STORAGE" in caps[0]
        typ, data = client.getquotaroot("INBOX")
        assert typ == "OK"
        assert data[0][0] in (b'INBOX ""', b'"INBOX" ""'), data
        assert data[1] == [b'"" (STORAGE 0 4 MESSAGE 0 5)']
        for n in range(3):
            assert client.append("INBOX", None, None, _message(n, 1000))[0] == "OK"
        typ, data = client.getquota('""')
        assert typ == "OK" and data == [b'"" (STORAGE 3 4 MESSAGE 3 5)'], data
        # Known too large from the literal's size: refused before the octets are sent.
        typ, data = client.append("INBOX", None, None, _message(9, 1500))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
        # COPY of three messages would need 3000 more octets.
        client.select("INBOX")
        typ, data = client.copy("1:3", "Archive")
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
        assert _status(client, "Archive") == 0
        # MOVE within the account takes no more space: allowed.
        assert client._simple_command("MOVE", "1", "Archive")[0] == "OK"  # type: ignore[attr-defined]
        # Fill to the message limit with small ones, then one more is refused.
        assert client.append("INBOX", None, None, _message(10, 100))[0] == "OK"
        assert client.append("INBOX", None, None, _message(11, 100))[0] == "OK"
        typ, data = client.append("INBOX", None, None, _message(12, 100))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
        assert _status(client) + _status(client, "Archive") == 5
        typ, data = client._simple_command("SETQUOTA", '""', "(STORAGE 100)")  # type: ignore[attr-defined]
    except client.error as exc:
        typ, data = "NO", [str(exc).encode()]
    finally:
        client.logout()
    assert typ == "NO" and b"NOPERM" in data[0], data
    # Every refusal is in the operator's log, with the user.
    refused = [x for x in server.log.read_text().splitlines() if "imap.over_quota" in x]
    assert sum("command=Append" in x for x in refused) == 2, refused
    assert sum("command=Copy" in x for x in refused) == 1, refused
    assert all(f"user={USER}" in x for x in refused), refused


def test_an_unlimited_account_has_no_quota_root(server: PostelServer) -> None:
    client = imaps(server, FREE)
    try:
        typ, data = client.getquotaroot("INBOX")
        assert typ == "OK" and data[1] in ([], [None]), data  # no root: no QUOTA line
        typ, data = client.getquota('""')
        assert typ == "OK" and data == [b'"" ()'], data
        typ, data = client.getquotaroot("Nope")
        assert typ == "NO", data
    finally:
        client.logout()
