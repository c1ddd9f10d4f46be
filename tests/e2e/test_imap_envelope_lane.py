"""FETCH of a message list (attributes and ENVELOPE only) reads each message's ENVELOPE
pre-rendered in its summary; a message whose summary has none (stored before it was
pre-rendered) gets the same ENVELOPE from its whole summary. Both equal the general
FETCH path's answer and the offline renderer's. Spec: RFC 9051 §6.4.5, §7.5.2."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from mail.imapsexp import fetch_items, parse
from postel.mail import parse_message, render_envelope

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_account
from .imap_raw import RawImap
from .server import PostelServer

USER = f"lane@{DOMAIN}"
MESSAGES = [
    b"From: Ann <ann@example.org>\r\nSubject: first\r\n\r\nbody\r\n",
    b'From: "B \\"q\\"" <b@example.org>\r\nTo: c@example.org\r\nSubject: ","size": x\r\n\r\nb\r\n',
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nCc: d@example.org\r\n\r\nc\r\n",
]


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("envelope-lane")
    add_account(srv, USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _envelopes(client: RawImap, items: str) -> list[object]:
    done = client.command(f"FETCH 1:* {items}")
    assert done.status == "OK", done
    return [fetch_items(line)["ENVELOPE"] for line in done.untagged if b" FETCH " in line]


def test_envelope_with_and_without_a_prerendered_one(server: PostelServer) -> None:
    with RawImap.tls(server.imaps_port) as client:
        assert client.login(USER, PASSWORD).status == "OK"
        for data in MESSAGES:
            assert client.append("INBOX", data).status == "OK"
        # The second message's summary as written before ENVELOPEs were pre-rendered.
        database = server.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as db:
            (summary,) = db.execute("SELECT summary FROM messages WHERE uid = 2").fetchone()
            obj = json.loads(summary)
            del obj["ie1"]
            db.execute(
                "UPDATE messages SET summary = ? WHERE uid = 2",
                (json.dumps(obj, separators=(",", ":")),),
            )
        assert client.command("SELECT INBOX").status == "OK"
        lane = _envelopes(client, "(UID ENVELOPE)")
        general = _envelopes(client, "(UID ENVELOPE BODYSTRUCTURE)")
    offline = [parse(render_envelope(parse_message(m))) for m in MESSAGES]
    assert lane == general == offline
