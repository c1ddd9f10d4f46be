"""The per-account sender policy of submission (``postel account sender``): ``own``
(the default) accepts only the account's addresses and aliases, ``domain`` any address
at its domain, ``any`` every address, for MAIL FROM and From: alike (550 5.7.1
otherwise, logged as ``submission.sender_refused``); a change made with the CLI while
the server runs applies from the account's next session.

Spec: RFC 6409 §6.1; RFC 3463 (5.7.1).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer
from .stored import read_inbox

D = "policy.test"
ALICE = f"alice@{D}"
"""Default policy (own)."""
BOB = f"bob@{D}"
ROLE = f"role@{D}"
"""Policy ``domain``, set with ``account sender``."""
GATEWAY = f"gw@{D}"
"""Policy ``any``, set with ``account add --sender any``."""
DANA = f"dana@{D}"
"""Default policy, changed while the server runs."""
CAROL = "carol@other.test"
"""An account of another local domain."""


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("sender-policy")
    add_accounts(srv, ALICE, BOB, ROLE, DANA, CAROL)
    secret = srv.home / "gateway-password"
    secret.write_text(PASSWORD + "\n")
    srv.cli("account", "add", GATEWAY, "--password-file", str(secret), "--sender", "any")
    srv.cli("account", "sender", ROLE, "domain")
    srv.start()
    yield srv
    assert srv.stop() == 0


def message(sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@{D}>\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n\r\n"
        f"{subject} body\r\n"
    ).encode()


def login(server: PostelServer, user: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30)
    client.ehlo("client.test")
    client.starttls(context=tls_context(server))
    client.ehlo("client.test")
    client.login(user, PASSWORD)
    return client


def mail_reply(client: smtplib.SMTP, sender: str) -> tuple[int, bytes]:
    """The reply to MAIL FROM:<sender>, then RSET."""
    code, text = client.mail(sender)
    client.rset()
    return code, text[:5]


def refused_at_data(client: smtplib.SMTP, envelope: str, header_from: str, subject: str) -> int:
    with pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail(envelope, [BOB], message(header_from, subject))
    return caught.value.smtp_code


def delivered(server: PostelServer, subject: str) -> bool:
    return any(f"{subject} body".encode() in m.content for m in read_inbox(server, BOB))


def test_own_is_the_default_and_refuses_other_users(server: PostelServer) -> None:
    listing = server.cli("account", "list", "--json").stdout
    assert f'"address": "{ALICE}", "admin": false, "sender": "own"' in listing
    with login(server, ALICE) as client:
        assert mail_reply(client, BOB) == (550, b"5.7.1")
        assert mail_reply(client, f"noreply@{D}") == (550, b"5.7.1")
        assert mail_reply(client, "") == (550, b"5.7.1")  # the null reverse-path
        assert refused_at_data(client, ALICE, BOB, "own-forged") == 550
        assert client.sendmail(ALICE, [BOB], message(f"Alice <{ALICE}>", "own-ok")) == {}
    assert delivered(server, "own-ok") and not delivered(server, "own-forged")
    log = server.log.read_text()
    assert any(
        f"user={ALICE}" in line and f"mail_from={BOB}" in line
        for line in log.splitlines()
        if "submission.sender_refused" in line
    )


def test_domain_allows_the_accounts_domain_only(server: PostelServer) -> None:
    with login(server, ROLE) as client:
        assert mail_reply(client, CAROL) == (550, b"5.7.1")  # another local domain
        assert mail_reply(client, "someone@remote.test") == (550, b"5.7.1")
        assert mail_reply(client, f"someone@{D.upper()}")[0] == 250
        # A shared role address without an alias, in the envelope and in From:.
        shared = f"support@{D}"
        assert client.sendmail(shared, [BOB], message(f"Support <{shared}>", "dom-ok")) == {}
        assert client.sendmail(ROLE, [BOB], message(BOB, "dom-as-bob")) == {}
        assert refused_at_data(client, ROLE, CAROL, "dom-forged") == 550
    assert delivered(server, "dom-ok") and delivered(server, "dom-as-bob")
    assert not delivered(server, "dom-forged")


def test_any_allows_every_sender(server: PostelServer) -> None:
    with login(server, GATEWAY) as client:
        for sender in (BOB, CAROL, "list-owner@remote.test", ""):
            assert mail_reply(client, sender)[0] == 250, sender
        content = message("Someone <someone@elsewhere.test>", "any-ok")
        assert client.sendmail("list-bounces@remote.test", [BOB], content) == {}
    assert delivered(server, "any-ok")


def test_a_policy_changed_while_running_applies_to_the_next_session(
    server: PostelServer,
) -> None:
    shared = f"news@{D}"
    with login(server, DANA) as client:
        assert mail_reply(client, shared) == (550, b"5.7.1")
    assert "domain" in server.cli("account", "sender", DANA, "domain").stdout
    with login(server, DANA) as client:
        assert client.sendmail(shared, [BOB], message(shared, "changed-ok")) == {}
        assert mail_reply(client, CAROL) == (550, b"5.7.1")
    server.cli("account", "sender", DANA, "any")
    with login(server, DANA) as client:
        assert mail_reply(client, CAROL)[0] == 250
    server.cli("account", "sender", DANA, "own")
    with login(server, DANA) as client:
        assert mail_reply(client, shared) == (550, b"5.7.1")
        assert mail_reply(client, DANA)[0] == 250
    assert delivered(server, "changed-ok")
