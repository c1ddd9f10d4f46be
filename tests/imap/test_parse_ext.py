"""Parsing GENURLAUTH, RESETKEY, URLFETCH, NOTIFY and COMPRESS.
Spec: RFC 4467 §9; RFC 5465 §8; RFC 4978 §4."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.errors import ProtocolError
from postel.imap.commands import (
    Compress,
    FilterKind,
    GenUrlAuth,
    Notify,
    NotifyEvent,
    NotifyGroup,
    ResetKey,
    UrlFetch,
    parse_command,
)
from postel.imap.fetch_items import FetchAttr
from postel.imap.grammar import ImapSyntaxError


def test_urlauth_commands() -> None:
    assert parse_command([b'a GENURLAUTH "imap://u@h/X/;uid=1;urlauth=anonymous" internal']) == (
        GenUrlAuth("a", (("imap://u@h/X/;uid=1;urlauth=anonymous", "INTERNAL"),))
    )
    assert parse_command([b"a RESETKEY"]) == ResetKey("a", None)
    assert parse_command([b"a RESETKEY Sent INTERNAL"]) == ResetKey("a", "Sent", ("INTERNAL",))
    assert parse_command([b'a URLFETCH "u1" u2']) == UrlFetch("a", ("u1", "u2"))
    assert parse_command([b"a COMPRESS deflate"]) == Compress("a", "DEFLATE")


def test_notify() -> None:
    command = parse_command(
        [
            b"a NOTIFY SET STATUS (selected (MessageNew (uid flags) MessageExpunge)) "
            b"(subtree (Lists Work) (MessageNew MessageExpunge FlagChange)) (personal NONE)"
        ]
    )
    assert command == Notify(
        "a",
        (
            NotifyGroup(
                FilterKind.SELECTED,
                (),
                (NotifyEvent.MESSAGE_NEW, NotifyEvent.MESSAGE_EXPUNGE),
                (FetchAttr.UID, FetchAttr.FLAGS),
            ),
            NotifyGroup(
                FilterKind.SUBTREE,
                ("Lists", "Work"),
                (NotifyEvent.MESSAGE_NEW, NotifyEvent.MESSAGE_EXPUNGE, NotifyEvent.FLAG_CHANGE),
            ),
            NotifyGroup(FilterKind.PERSONAL, (), ()),
        ),
        status=True,
    )
    assert parse_command([b"a NOTIFY NONE"]) == Notify("a", None)
    unknown = parse_command([b"a NOTIFY SET (inboxes (Fancy))"])
    assert isinstance(unknown, Notify) and unknown.unknown == ("Fancy",)


@pytest.mark.parametrize(
    "line",
    [
        b"a NOTIFY",
        b"a NOTIFY SET",
        b"a NOTIFY SET (nowhere (MessageNew))",
        b"a NOTIFY SET (mailboxes (MessageNew))",
        b"a GENURLAUTH",
        b'a GENURLAUTH "x"',
        b"a URLFETCH",
        b"a COMPRESS",
    ],
)
def test_syntax_errors(line: bytes) -> None:
    with pytest.raises(ImapSyntaxError):
        parse_command([line])


@given(st.binary(max_size=120))
def test_notify_parser_raises_only_protocol_errors(tail: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_command([b"a NOTIFY SET " + tail.replace(b"\r", b"").replace(b"\n", b"")])
