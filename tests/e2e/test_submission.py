"""The submission service (587 with STARTTLS, 465 with implicit TLS): AUTH required,
the user sends only as their own addresses, local recipients delivered at once,
remote ones queued before the 250, no relay without AUTH.

Spec: RFC 6409 §4.3, §6.1; RFC 4954; RFC 8314 §3; RFC 3848 (ESMTPSA).
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import subprocess
from collections.abc import Iterator

import pytest

from postel.clock import SystemClock
from postel.mail import MessageSummary
from postel.store import open_store
from postel.store.queue_api import QueueFilter

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .rawsmtp import RawSmtp
from .server import PostelServer
from .stored import read_inbox

ALICE = "alice@sub.test"
BOB = "bob@sub.test"
ALIAS = "sales@sub.test"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("submission")
    add_accounts(srv, ALICE, BOB)
    srv.cli("alias", "add", ALIAS, ALICE)
    srv.start()
    yield srv
    assert srv.stop() == 0


def message(sender: str, rcpt: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@sub.test>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\n"
        f"{subject} body\r\n"
    ).encode()


def submit(server: PostelServer) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30)
    client.ehlo("client.test")
    client.starttls(context=tls_context(server))
    client.ehlo("client.test")
    return client


def test_auth_is_offered_only_after_starttls_and_required_for_mail(server: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30) as client:
        code, text = client.ehlo("client.test")
        assert code == 250 and b"STARTTLS" in text and b"AUTH" not in text
        code, text = client.mail(ALICE)
        assert (code, text[:5]) == (530, b"5.7.0")
    with submit(server) as client:
        assert "auth" in client.esmtp_features
        assert set(client.esmtp_features["auth"].split()) >= {"PLAIN", "LOGIN", "SCRAM-SHA-256"}


def test_authenticated_user_reaches_a_local_account(server: PostelServer) -> None:
    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        refused = client.sendmail(ALICE, [BOB], message(ALICE, BOB, "local1"))
        assert refused == {}
    stored = [m for m in read_inbox(server, BOB) if b"local1 body" in m.content]
    assert len(stored) == 1
    assert b"with ESMTPSA" in stored[0].field("received")


def test_sending_as_an_alias_is_allowed(server: PostelServer) -> None:
    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALIAS, [BOB], message(ALIAS, BOB, "alias1")) == {}


def test_sending_as_someone_else_is_refused(server: PostelServer) -> None:
    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        code, text = client.mail(BOB)
        assert (code, text[:5]) == (550, b"5.7.1")
        client.rset()
        # An envelope of one's own, but a From: of someone else.
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail(ALICE, [BOB], message(BOB, BOB, "forged"))
        assert caught.value.smtp_code == 550
    assert not [m for m in read_inbox(server, BOB) if b"forged body" in m.content]


def test_wrong_password_is_535(server: PostelServer) -> None:
    with submit(server) as client, pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        client.login(ALICE, "not the password")
    assert caught.value.smtp_code == 535


def test_remote_recipients_are_queued_before_the_250(server: PostelServer) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.submissions_port, context=tls_context(server), timeout=30
    ) as client:
        client.login(ALICE, PASSWORD)
        refused = client.sendmail(
            ALICE, ["carol@remote.test", BOB], message(ALICE, "carol@remote.test", "remote1")
        )
        assert refused == {}

    async def queued() -> list[str]:
        store = open_store(server.database_url, server.blob_dir, clock=SystemClock())
        await store.open(recovery=False)
        try:
            entries = await store.queue_list(QueueFilter())
            return [r.address for e in entries for r in e.recipients]
        finally:
            await store.close()

    assert "carol@remote.test" in asyncio.run(queued())
    assert [m for m in read_inbox(server, BOB) if b"remote1 body" in m.content]


def test_swaks_with_auth_over_starttls(server: PostelServer) -> None:
    result = subprocess.run(
        [
            "swaks", "--server", f"127.0.0.1:{server.submission_port}", "--tls",
            "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
            "--from", ALICE, "--to", BOB, "--header", f"From: {ALICE}",
            "--header", "Subject: swaks1", "--body", "swaks1 body",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert [m for m in read_inbox(server, BOB) if b"swaks1 body" in m.content]


def test_port_25_never_relays(server: PostelServer) -> None:
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.ehlo("client.test")
        assert client.mail(ALICE)[0] == 250
        code, text = client.rcpt("carol@remote.test")
        assert (code, text[:5]) == (550, b"5.7.1")


def test_missing_date_and_message_id_are_added_once(server: PostelServer) -> None:
    """RFC 6409 §8.2-8.3: the MSA adds Date and Message-ID; a message to a local and a
    remote recipient gets the same Message-ID in both copies."""
    bare = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: bare1\r\n\r\nbare1 body\r\n".encode()
    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [BOB, "dave@remote.test"], bare) == {}
    (stored,) = [m for m in read_inbox(server, BOB) if b"bare1 body" in m.content]
    raw = stored.meta.trace_prefix
    assert b"\r\nDate: " in raw and b"\r\nMessage-ID: <" in raw
    local_id = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0]
    # IMAP's ENVELOPE (and so SORT, THREAD) reads the added fields as the message's own.
    envelope = MessageSummary.from_json(stored.meta.summary).envelope
    assert envelope.message_id == local_id
    assert envelope.date is not None and envelope.date in raw

    async def queued_prefix() -> bytes:
        store = open_store(server.database_url, server.blob_dir, clock=SystemClock())
        await store.open(recovery=False)
        try:
            for entry in await store.queue_list(QueueFilter()):
                if any(r.address == "dave@remote.test" for r in entry.recipients):
                    return entry.message.trace_prefix
        finally:
            await store.close()
        raise AssertionError("not queued")

    assert local_id in asyncio.run(queued_prefix())


def test_mail_for_other_domains_is_dkim_signed_with_the_domains_keys(
    server: PostelServer,
) -> None:
    """``postel dkim generate`` makes an RSA and an Ed25519 key; a queued message from the
    domain carries a signature per key, and each verifies with dkimpy against the
    printed records (RFC 6376, RFC 8463)."""
    import json

    import dkim

    out = server.cli("dkim", "generate", "sub.test", "--json").stdout
    records = {row["name"]: row["value"] for row in json.loads(out)}
    assert len(records) == 2
    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        content = message(ALICE, "erin@remote.test", "signed1")
        assert client.sendmail(ALICE, ["erin@remote.test"], content) == {}

    async def queued() -> bytes:
        store = open_store(server.database_url, server.blob_dir, clock=SystemClock())
        await store.open(recovery=False)
        try:
            for entry in await store.queue_list(QueueFilter()):
                if any(r.address == "erin@remote.test" for r in entry.recipients):
                    chunks = [c async for c in store.open_queued_message(entry.message.id)]
                    return b"".join(chunks)
        finally:
            await store.close()
        raise AssertionError("not queued")

    sent = asyncio.run(queued())
    assert sent.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in sent and b"a=ed25519-sha256" in sent

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    # dkimpy checks the first signature; drop fields one by one to check the other too.
    assert dkim.verify(sent, dnsfunc=dnsfunc)
    head, body = sent.split(b"\r\n\r\n", 1)
    fields = head.split(b"\r\nDKIM-Signature:")
    assert len(fields) == 3
    first_dropped = fields[0] + b"\r\nDKIM-Signature:" + fields[2]
    assert dkim.verify(first_dropped + b"\r\n\r\n" + body, dnsfunc=dnsfunc)


def test_queue_commands(server: PostelServer) -> None:
    """``postel queue list|show|hold|release|retry|delete|flush`` on a queued message,
    beside the running server."""
    import json

    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        reply = client.sendmail(
            ALICE, ["frank@remote.test"], message(ALICE, "frank@remote.test", "q1")
        )
        assert reply == {}
    rows = json.loads(server.cli("queue", "list", "--json", "--domain", "remote.test").stdout)
    (row,) = [r for r in rows if r["recipient"] == "frank@remote.test"]
    queue_id = row["queue_id"]
    assert row["state"] == "queued" and row["from"] == ALICE
    assert "1 recipient" in server.cli("queue", "hold", queue_id).stdout
    shown = json.loads(server.cli("queue", "show", queue_id, "--json").stdout)
    assert [r["state"] for r in shown] == ["held"]
    assert "1 recipient" in server.cli("queue", "release", queue_id).stdout
    server.cli("queue", "retry", queue_id)
    server.cli("queue", "flush")
    assert "deleted" in server.cli("queue", "delete", queue_id).stdout
    missing = server.cli("queue", "show", queue_id, check=False)
    assert missing.returncode != 0 and "no queued message" in missing.stderr
    table = server.cli("queue", "list").stdout
    assert "frank@remote.test" not in table


def test_address_literals_are_not_relayed(server: PostelServer) -> None:
    """``user@[192.0.2.1]`` names a host, not a domain with MX records: refused at RCPT
    rather than queued for a DNS lookup that cannot succeed (RFC 5321 §4.1.3, §5.1)."""
    with submit(server) as client:
        client.login(ALICE, PASSWORD)
        assert client.mail(ALICE)[0] == 250
        code, text = client.rcpt("someone@[192.0.2.1]")
        assert (code, text[:5]) == (550, b"5.1.2")


def test_an_overlong_auth_response_is_refused_and_the_session_goes_on(
    server: PostelServer,
) -> None:
    """A response line to the 334 past the command line bound (a few KB, or 200 KB that
    would fill the held-input buffer) gets 500 5.5.6 at once and the session goes on:
    AUTH works after it. Spec: RFC 4954 §4."""
    with RawSmtp(("127.0.0.1", server.submission_port)) as client:
        client.greet()
        assert client.command("STARTTLS").code == 220
        client.start_tls()
        client.command("EHLO client.test")
        for size in (5_000, 200_000):
            assert client.command("AUTH LOGIN").code == 334
            reply = client.command(b"A" * size)
            assert (reply.code, reply.text[:5]) == (500, b"5.5.6"), reply
        assert client.command("NOOP").code == 250
        plain = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        assert client.command(f"AUTH PLAIN {plain}").code == 235
