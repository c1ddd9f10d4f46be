"""SEARCH through the full-text index, end to end: messages delivered over SMTP are
indexed in the background (``fulltext.indexed``), and SEARCH answers with the index
exactly what the evaluation of every message answers, for indexed and not yet indexed
messages alike (RFC 9051 §6.4.4 substring semantics, case-insensitive).
"""

from __future__ import annotations

import time

import pytest

from .conftest import ServerFactory
from .imap_helpers import add_accounts, imaps, smtp_send
from .server import PostelServer

USER = "finder@ft.test"
WORDS = ["apricot", "Blueberry", "cherry", "dragonfruit", "elderberry", "fig"]


def _content(n: int) -> bytes:
    word = WORDS[n % len(WORDS)]
    subject = f"=?utf-8?q?Stra=C3=9Fe_{n}?=" if n % 5 == 0 else f"note {n}"
    return (
        f"From: sender{n % 3}@ft.test\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"line about {word} number {n}=0D=0Aand caf=C3=A9\r\n"
    ).encode()


def _search(server: PostelServer, *criteria: str) -> list[int]:
    """UID SEARCH; a last criterion that is not ASCII goes as a UTF-8 literal."""
    client = imaps(server, USER)
    try:
        client.select("INBOX", readonly=True)
        args = list(criteria)
        if not args[-1].isascii():
            client.literal = args.pop().strip('"').encode()  # type: ignore[attr-defined]
        typ, data = client.uid("SEARCH", "CHARSET", "UTF-8", *args)
        assert typ == "OK", data
        return sorted(int(n) for n in data[0].split())
    finally:
        client.logout()


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> PostelServer:
    srv = module_servers("fulltext")
    add_accounts(srv, USER)
    srv.start()
    smtp_send(srv, USER, [_content(n) for n in range(1, 61)])
    return srv


def test_search_answers_the_same_before_and_after_indexing(server: PostelServer) -> None:
    queries = [
        ("TEXT", "blueberry"),
        ("BODY", "CHERRY"),
        ("SUBJECT", "strasse"),
        ("SUBJECT", "note 1"),
        ("FROM", "sender1@"),
        ("TEXT", "café"),
        ("BODY", "number 4"),
        ("TEXT", "nowhere-at-all"),
        ("TO", USER),
    ]
    before = {q: _search(server, q[0], f'"{q[1]}"') for q in queries}
    deadline = time.monotonic() + 60
    while "fulltext.indexed" not in server.log.read_text():
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.2)
    after = {q: _search(server, q[0], f'"{q[1]}"') for q in queries}
    assert after == before
    expected_blue = [n for n in range(1, 61) if WORDS[n % len(WORDS)] == "Blueberry"]
    assert after[("TEXT", "blueberry")] == expected_blue
    assert after[("SUBJECT", "strasse")] == [n for n in range(1, 61) if n % 5 == 0]
    assert after[("TEXT", "nowhere-at-all")] == []
    assert len(after[("TEXT", "café")]) == 60
    # A conjunction and a negation still follow the evaluator.
    both = _search(server, "BODY", "cherry", "FROM", "sender0@")
    assert both == [n for n in range(1, 61) if n % 6 == 2 and n % 3 == 0]
    negated = _search(server, "NOT", "BODY", "cherry")
    assert len(negated) == 60 - len(after[("BODY", "CHERRY")])
