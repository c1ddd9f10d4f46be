"""``[submission] copy_to_sent``: the server files the sender's copy in Sent (as sent,
with the Date and Message-ID it added, marked \\Seen); off by default, since clients
save their own copy. Spec: RFC 6409 §8; RFC 6154 §2 (\\Sent)."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from .imap_helpers import PASSWORD, add_accounts, tls_context
from .outbound_helpers import simple_message, submit
from .server import PostelServer

ALICE = "alice@a.test"
BOB = "bob@a.test"


def _sent(server: PostelServer) -> list[tuple[bytes, bytes]]:
    """(FLAGS, message) of every message in ALICE's Sent."""
    client = imaplib.IMAP4_SSL(
        server.host, server.imaps_port, ssl_context=tls_context(server), timeout=10
    )
    try:
        client.login(ALICE, PASSWORD)
        _, exists = client.select("Sent", readonly=True)
        if exists[0] == b"0":
            return []
        _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[])")
        return [(item[0], bytes(item[1])) for item in data if isinstance(item, tuple)]
    finally:
        client.logout()


@pytest.fixture(scope="module", params=[False, True], ids=["default", "copy_to_sent"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostelServer]:
    extra = "[submission]\ncopy_to_sent = true\n" if request.param else ""
    instance = PostelServer(tmp_path_factory.mktemp("sent"), config_extra=extra)
    add_accounts(instance, ALICE, BOB)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def test_the_sent_copy_only_when_configured(server: PostelServer) -> None:
    submit(server, ALICE, [BOB], simple_message(ALICE, BOB, "kept", "sent-copy-body"))
    copies = _sent(server)
    if "copy_to_sent" not in server.config.read_text():
        assert copies == []
        return
    assert len(copies) == 1
    flags, message = copies[0]
    assert b"\\Seen" in flags
    header = message.split(b"\r\n\r\n", 1)[0]
    assert b"Message-ID: <" in header and b"Date: " in header
    assert b"Received:" not in header  # the copy as sent, not as received
    assert message.endswith(b"sent-copy-body\r\n")
