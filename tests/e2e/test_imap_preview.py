"""FETCH PREVIEW over real sockets (imaplib): capability, plain and HTML messages,
``PREVIEW (LAZY)``. Spec: RFC 8970 §3, §5."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import add_accounts, imaps, ok
from .server import PostelServer

USER = "pv@pv.test"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-preview")
    add_accounts(srv, USER)
    srv.start()
    yield srv


def test_preview(server: PostelServer) -> None:
    client = imaps(server, USER)
    try:
        caps = ok(client.capability())[0].split()
        assert b"PREVIEW" in caps
        plain = b"From: a@pv.test\r\nSubject: p\r\n\r\nHello,\r\n\r\n  this is   a test.\r\n"
        html = (
            b"From: a@pv.test\r\nSubject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            b"<html><head><style>b{}</style></head><body><b>Bold</b>&nbsp;caf\xc3\xa9</body>"
            b"</html>\r\n"
        )
        ok(client.append("INBOX", None, None, plain))
        ok(client.append("INBOX", None, None, html))
        ok(client.select("INBOX"))
        data = ok(client.fetch("1", "(PREVIEW)"))
        assert data == [b'1 (PREVIEW "Hello, this is a test.")'], data
        data = ok(client.uid("FETCH", "2", "(PREVIEW (LAZY))"))
        assert data[0][0] == b"2 (UID 2 PREVIEW {10}", data
        assert data[0][1] == "Bold café".encode(), data
        # PREVIEW does not set \Seen.
        data = ok(client.fetch("1:2", "(FLAGS)"))
        assert b"Seen" not in b" ".join(data)
    finally:
        client.logout()
