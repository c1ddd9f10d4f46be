"""CATENATE in the sans-IO core: APPEND ... CATENATE (URL ... TEXT {n}) as events,
MULTIAPPEND mixing catenated and plain messages, URL-only lines, refused TEXT
literals, malformed part lists, random splits of the input.
Spec: RFC 4469 §5, RFC 3502 §6.3.11, RFC 7888."""

from __future__ import annotations

import random

from postel.imap import events as ev
from postel.imap.commands import State
from postel.imap.connection import ConnectionConfig, ServerConnection


def _events(data: bytes, *, accept: bool = True, seed: int | None = None) -> list[ev.Event]:
    conn = ServerConnection(ConnectionConfig(append_limit=1000), state=State.AUTHENTICATED)
    chunks = [data]
    if seed is not None:
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(data)), min(8, len(data) - 1)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    out: list[ev.Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if isinstance(event, ev.NeedData):
                break
            out.append(event)
            if isinstance(event, ev.CatenateText | ev.AppendStarted):
                if accept:
                    conn.accept_literal()
                else:
                    conn.reject_literal()
    return out


def _merged(events: list[ev.Event]) -> list[ev.Event]:
    """AppendData chunks joined (random splits cut them anywhere)."""
    out: list[ev.Event] = []
    for event in events:
        if isinstance(event, ev.AppendData) and out and isinstance(out[-1], ev.AppendData):
            out[-1] = ev.AppendData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


COMMAND = (
    b'a APPEND Drafts (\\Seen) CATENATE (URL "/INBOX/;uid=1/;section=HEADER" TEXT {5+}\r\n'
    b'hello URL "/INBOX/;uid=2" TEXT {2+}\r\nhi) CATENATE (TEXT {1+}\r\nx) {3+}\r\nabc\r\n'
    b"b NOOP\r\n"
)
EXPECTED = [
    ev.CatenateStarted("a", "Drafts", ("\\Seen",), None, 0),
    ev.CatenateUrl("/INBOX/;uid=1/;section=HEADER"),
    ev.CatenateText("a", 5, False, False),
    ev.AppendData(b"hello"),
    ev.CatenateUrl("/INBOX/;uid=2"),
    ev.CatenateText("a", 2, False, False),
    ev.AppendData(b"hi"),
    ev.CatenateEnd(),
    ev.CatenateStarted("a", "Drafts", (), None, 1),
    ev.CatenateText("a", 1, False, False),
    ev.AppendData(b"x"),
    ev.CatenateEnd(),
    ev.AppendStarted("a", "Drafts", (), None, 3, False, False, 2),
    ev.AppendData(b"abc"),
    ev.AppendMessageEnd(),
    ev.AppendCommandEnd("a"),
]


def test_catenate_events_in_order() -> None:
    events = _merged(_events(COMMAND))
    assert events[:-1] == EXPECTED
    assert isinstance(events[-1], ev.CommandReceived)


def test_catenate_random_splits() -> None:
    for seed in range(50):
        events = _merged(_events(COMMAND, seed=seed))
        assert events[:-1] == EXPECTED, seed


def test_catenate_urls_only_line() -> None:
    events = _events(b'a APPEND INBOX CATENATE (URL "/INBOX/;uid=1" URL /INBOX/;uid=2)\r\n')
    assert events == [
        ev.CatenateStarted("a", "INBOX", (), None, 0),
        ev.CatenateUrl("/INBOX/;uid=1"),
        ev.CatenateUrl("/INBOX/;uid=2"),
        ev.CatenateEnd(),
        ev.AppendCommandEnd("a"),
    ]


def test_refused_text_drops_the_command() -> None:
    events = _events(b"a APPEND INBOX CATENATE (TEXT {3+}\r\nabc)\r\nb NOOP\r\n", accept=False)
    assert events[0] == ev.CatenateStarted("a", "INBOX", (), None, 0)
    assert events[1] == ev.CatenateText("a", 3, False, False)
    assert len(events) == 3 and isinstance(events[2], ev.CommandReceived)


def test_text_over_append_limit_is_toobig() -> None:
    events = _events(b"a APPEND INBOX CATENATE (TEXT {5000+}\r\n" + b"x" * 5000 + b")\r\n")
    assert events[1] == ev.CommandRefused("a", "message too large", "TOOBIG")
    assert len(events) == 2


def test_malformed_part_lists() -> None:
    for line in (
        b"a APPEND INBOX CATENATE (FOO bar)\r\n",
        b'a APPEND INBOX CATENATE (URL "/x/;uid=1"\r\n',
        b"a APPEND INBOX CATENATE (URL )\r\n",
        b"a APPEND INBOX CATENATE ()\r\n",  # 1*cat-part: an empty list is no message
        b"a APPEND INBOX CATENATE ( )\r\n",
    ):
        events = _events(line + b"b NOOP\r\n")
        assert any(isinstance(e, ev.BadCommand) for e in events), line
        assert isinstance(events[-1], ev.CommandReceived), line


def test_malformed_after_first_message_aborts() -> None:
    events = _events(b'a APPEND INBOX CATENATE (URL "/x/;uid=1") CATENATE (BAD)\r\nb NOOP\r\n')
    assert ev.AppendAborted("a", "expected a CATENATE part") in events
    assert isinstance(events[-1], ev.CommandReceived)


def test_an_empty_part_list_after_the_first_message_aborts() -> None:
    events = _events(b'a APPEND INBOX CATENATE (URL "/x/;uid=1") CATENATE ()\r\nb NOOP\r\n')
    assert ev.AppendAborted("a", "CATENATE needs at least one part") in events
    assert isinstance(events[-1], ev.CommandReceived)
