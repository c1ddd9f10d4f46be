"""OBJECTID identifiers and their FETCH/STATUS syntax. Spec: RFC 8474 §4, §5, §7."""

from __future__ import annotations

import datetime as dt

from postel.imap import responses as r
from postel.imap.commands import Fetch, Status, StatusItem, parse_command
from postel.imap.fetch import FetchSource, render_items
from postel.imap.fetch_items import FetchAttr
from postel.imap.objectid import email_id, is_objectid, mailbox_id
from postel.mail import parse_message

KEY = "a" * 64


def test_ids_are_objectids() -> None:
    assert mailbox_id(12, 1700000000) == "F12-1700000000"
    one = email_id(KEY, b"")
    assert is_objectid(one) and len(one) == 33
    assert email_id(KEY, b"") == one
    assert email_id(KEY, b"Received: x\r\n") != one
    assert not is_objectid("") and not is_objectid("a b") and not is_objectid("x" * 256)


def test_parse_and_render() -> None:
    parsed = parse_command([b"a FETCH 1 (EMAILID THREADID)"])
    assert isinstance(parsed, Fetch)
    assert parsed.items == (FetchAttr.EMAILID, FetchAttr.THREADID)
    status = parse_command([b"a STATUS INBOX (MAILBOXID)"])
    assert isinstance(status, Status) and status.items == (StatusItem.MAILBOXID,)
    when = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    source = FetchSource(1, frozenset(), when, 3, parse_message(b"\r\n"), email_id="Mx")
    assert render_items([FetchAttr.EMAILID, FetchAttr.THREADID], source) == [
        (b"EMAILID", b"(Mx)"),
        (b"THREADID", b"NIL"),
    ]
    assert r.status("INBOX", [("MAILBOXID", "(F1-2)"), ("MESSAGES", 3)]) == (
        b"* STATUS INBOX (MAILBOXID (F1-2) MESSAGES 3)\r\n"
    )
