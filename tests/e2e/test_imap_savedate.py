"""SAVEDATE over real sockets (imaplib): APPEND with an old INTERNALDATE and COPY get
today's save date, delivery its arrival time; SAVEDSINCE/SAVEDON/SAVEDBEFORE search
it. Spec: RFC 8514 §2.1, §2.2."""

from __future__ import annotations

import datetime as dt
import imaplib
import re
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import add_accounts, imaps, message, ok, smtp_send
from .server import PostelServer

USER = "sd@sd.test"
_SAVEDATE = re.compile(rb'SAVEDATE "([^"]*)"')
_INTERNAL = re.compile(rb'INTERNALDATE "([^"]*)"')


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-savedate")
    add_accounts(srv, USER)
    srv.start()
    yield srv


def _date(pattern: re.Pattern[bytes], data: object) -> dt.datetime:
    match = pattern.search(data if isinstance(data, bytes) else repr(data).encode())
    assert match is not None, data
    return dt.datetime.strptime(match.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")


def test_savedate(server: PostelServer) -> None:
    smtp_send(server, USER, [message("delivered")])
    client = imaps(server, USER)
    try:
        assert b"SAVEDATE" in ok(client.capability())[0].split()
        old = imaplib.Time2Internaldate(dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
        ok(client.append("INBOX", None, old, b"Subject: old\r\n\r\nold\r\n"))
        ok(client.create("Copies"))
        ok(client.select("INBOX"))
        data = ok(client.fetch("1:2", "(INTERNALDATE SAVEDATE)"))
        delivered, appended = data
        assert _date(_SAVEDATE, delivered) == _date(_INTERNAL, delivered)
        now = dt.datetime.now(dt.UTC)
        assert _date(_INTERNAL, appended).year == 2001
        assert abs(_date(_SAVEDATE, appended) - now) < dt.timedelta(minutes=5)
        today = imaplib.Time2Internaldate(now)[1:12].strip()
        assert ok(client.search(None, "SAVEDSINCE", today)) == [b"1 2"]
        assert ok(client.search(None, "SINCE", today)) == [b"1"]
        assert ok(client.search(None, "SAVEDBEFORE", "1-Jan-2002")) == [b""]
        assert ok(client.search(None, "SAVEDATESUPPORTED")) == [b"1 2"]
        ok(client.copy("2", "Copies"))
        ok(client.select("Copies"))
        (copied,) = ok(client.fetch("1", "(INTERNALDATE SAVEDATE)"))
        assert _date(_INTERNAL, copied).year == 2001
        assert _date(_SAVEDATE, copied) >= _date(_SAVEDATE, appended)
        assert ok(client.search(None, "SAVEDON", today)) == [b"1"]
    finally:
        client.logout()
