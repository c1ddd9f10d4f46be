"""IMAP sessions at the edges of their life: the selected mailbox deleted by another
session, a refused CREATE or RENAME leaving nothing behind, shutdown during IDLE, and
TLS sessions ending without log noise.

Spec: RFC 9051 §6.3.4 (CREATE), §6.3.5 (DELETE), §6.3.6 (RENAME), §7.1.5 (BYE).
"""

from __future__ import annotations

import imaplib
import time

import pytest

from .conftest import ServerFactory
from .imap_helpers import add_account, imaps
from .server import PostelServer

USER = "life@cycle.test"


@pytest.fixture
def server(postel_factory: ServerFactory) -> PostelServer:
    srv = postel_factory("imap-lifecycle")
    add_account(srv, USER)
    srv.start()
    return srv


def test_selected_mailbox_deleted_elsewhere_ends_the_session_with_bye(
    server: PostelServer,
) -> None:
    a, b = imaps(server, USER), imaps(server, USER)
    assert a.create("Doomed")[0] == "OK"
    assert a.append("Doomed", "", None, b"Subject: x\r\n\r\nx\r\n")[0] == "OK"
    assert b.select("Doomed")[0] == "OK"
    assert a.delete("Doomed")[0] == "OK"
    with pytest.raises(imaplib.IMAP4.abort, match="deleted"):
        b.noop()
    assert a.noop()[0] == "OK"  # the other session goes on
    a.logout()


def test_refused_create_and_rename_leave_nothing_behind(server: PostelServer) -> None:
    client = imaps(server, USER)
    before = client.list()[1]
    for bad in ("x1//y", "x2/y//z", "/lead"):
        typ, _ = client.create(bad)
        assert typ == "NO", bad
    assert client.list()[1] == before
    assert client.create("Cafe")[0] == "OK"
    typ, data = client.rename("Cafe", "Cafe/Sub")
    assert typ == "NO" and b"CANNOT" in data[0]
    typ, _ = client.rename("Cafe", "a//b")
    assert typ == "NO"
    names = b" ".join(client.list()[1])
    assert b"Cafe/Sub" not in names and b"a/b" not in names and b'"/" a' not in names
    client.logout()


def test_shutdown_during_idle_says_bye(server: PostelServer) -> None:
    client = imaps(server, USER)
    client.select("INBOX")
    tag = client._new_tag().decode()
    client.send(f"{tag} IDLE\r\n".encode())
    assert client.readline().startswith(b"+")
    server.proc.send_signal(15)  # type: ignore[union-attr]
    client.sock.settimeout(10)
    lines = []
    while True:
        try:
            line = client.readline()
        except (TimeoutError, OSError):
            break
        if not line:
            break
        lines.append(line)
    assert any(line.startswith(b"* BYE") for line in lines), lines
    assert server.proc.wait(30) == 0  # type: ignore[union-attr]


def test_tls_sessions_end_without_warnings_in_the_log(server: PostelServer) -> None:
    for _ in range(3):
        client = imaps(server, USER)
        client.logout()
    time.sleep(0.3)
    log = server.log.read_text()
    assert "eof_received" not in log
    assert "Traceback" not in log
    assert "imap.session.closed" in log
    assert "proto=imap" in log
