"""The directory changing under a transaction: an account removed (with the CLI, from
another process) after RCPT TO accepted it and before the final dot. The transaction
gets 451 4.3.0 (nothing delivered, so nothing is delivered twice), logged on its
transaction line without a traceback; retried, the removed address is refused at RCPT
TO (550 5.1.1) and the others are delivered.

Spec: RFC 5321 §3.3 (RCPT replies), §4.2.5 (a 4yz after DATA: retry later);
RELIABILITY.md D3.
"""

from __future__ import annotations

import smtplib
import time

from .conftest import ServerFactory
from .imap_helpers import add_accounts
from .stored import read_inbox

STAYS = "stays@race.test"
GOES = "goes@race.test"


def test_an_account_removed_mid_transaction_defers_it_and_the_retry_delivers(
    postel_factory: ServerFactory,
) -> None:
    server = postel_factory("race")
    add_accounts(server, STAYS, GOES)
    server.start()
    message = b"Subject: race\r\n\r\nbody\r\n"
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.ehlo("t.test")
        client.mail("a@far.test")
        assert client.rcpt(STAYS)[0] == 250
        assert client.rcpt(GOES)[0] == 250
        server.cli("account", "remove", GOES)
        code, reply = client.data(message)
        assert (code, reply[:5]) == (451, b"4.3.0")
    assert not read_inbox(server, STAYS)
    time.sleep(2.5)  # the directory cache's TTL for changes made by another process
    with smtplib.SMTP(*server.address, timeout=30) as client:
        refused = client.sendmail("a@far.test", [STAYS, GOES], message)
        assert refused == {GOES: (550, refused[GOES][1])}
        assert refused[GOES][1].startswith(b"5.1.1")
    assert len(read_inbox(server, STAYS)) == 1
    log = server.log.read_text()
    assert "Traceback" not in log
    assert "deferred: " in log
