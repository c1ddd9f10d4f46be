"""postel's IMAP server driven by real client libraries: Python's imaplib (and raw bytes
where imaplib has no method) and imapclient, through every command the server offers,
and two sessions on one mailbox seeing each other's changes.

One server for the module; each test works in its own mailboxes or account.

Spec: RFC 9051 (IMAP4rev2), RFC 3501 (IMAP4rev1), RFC 4959 (SASL-IR), RFC 7677
(SCRAM-SHA-256), RFC 5161 (ENABLE), RFC 6855 (UTF8=ACCEPT), RFC 5258 (LIST-EXTENDED),
RFC 5819 (LIST-STATUS), RFC 6154 (SPECIAL-USE), RFC 3502 (MULTIAPPEND), RFC 7888
(LITERAL+), RFC 4315 (UIDPLUS), RFC 6851 (MOVE), RFC 4731 (ESEARCH), RFC 3516 (BINARY),
RFC 8438 (STATUS=SIZE), RFC 2971 (ID), RFC 2177 (IDLE).
"""

from __future__ import annotations

import base64
import imaplib
import re
import socket
import time
from collections.abc import Iterator

import pytest
import scramp

from .conftest import ServerFactory
from .imap_helpers import (
    DOMAIN,
    PASSWORD,
    RawImap,
    add_accounts,
    group,
    imapclient_tls,
    imaps,
    message,
    ok,
    smtp_send,
    tagged_ok,
    tls_context,
)
from .server import PostelServer

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
CAROL = f"carol@{DOMAIN}"

MULTIPART = (
    b"From: Sender <sender@remote.test>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: parts\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Message-ID: <parts@remote.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 au lait\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQF\r\n"
    b"--b1--\r\n"
)
"""A two-part message: quoted-printable UTF-8 text and six base64 binary octets."""


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-clients")
    add_accounts(srv, ALICE, BOB, CAROL)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _fresh_mailbox(client: imaplib.IMAP4, name: str, *messages: bytes) -> None:
    """Create ``name`` holding ``messages`` (APPENDed in order, no flags) and select it."""
    ok(client.create(name))
    for content in messages:
        ok(client.append(name, "", None, content))
    ok(client.select(name))


# -- connection state: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE ---------------


def test_capability_starttls_login_noop_logout(server: PostelServer) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    caps = set(client.capabilities)
    assert {"IMAP4REV1", "IMAP4REV2", "STARTTLS", "LOGINDISABLED"} <= caps
    assert "AUTH=SCRAM-SHA-256" in caps and "AUTH=PLAIN" not in caps
    # LOGINDISABLED: a plaintext LOGIN is refused before TLS.
    typ, data = client._simple_command("LOGIN", ALICE, PASSWORD)
    assert typ == "NO" and b"PRIVACYREQUIRED" in data[0]
    ok(client.starttls(ssl_context=tls_context(server)))
    caps = set(client.capabilities)
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= caps
    ok(client.login(ALICE, PASSWORD))
    assert client.state == "AUTH"
    after = set(ok(client.capability())[0].decode().upper().split())
    assert {"IDLE", "MOVE", "UIDPLUS", "ESEARCH", "LIST-STATUS", "BINARY"} <= after
    assert not any(c.startswith("AUTH=") for c in after)
    ok(client.noop())
    typ, data = client.logout()
    assert typ == "BYE"


def test_login_wrong_password_is_refused(server: PostelServer) -> None:
    client = imaps(server)
    typ, data = client._simple_command("LOGIN", ALICE, "not-the-password")
    assert typ == "NO" and b"AUTHENTICATIONFAILED" in data[0]
    ok(client.login(ALICE, PASSWORD))
    client.logout()


def test_authenticate_plain_and_login(server: PostelServer) -> None:
    client = imaps(server)
    plain = f"\0{ALICE}\0{PASSWORD}".encode()
    ok(client.authenticate("PLAIN", lambda challenge: plain))
    assert client.state == "AUTH"
    client.logout()

    answers = iter([ALICE.encode(), PASSWORD.encode()])
    prompts: list[bytes] = []

    def login_step(challenge: bytes) -> bytes:
        prompts.append(challenge)
        return next(answers)

    client = imaps(server)
    ok(client.authenticate("LOGIN", login_step))
    assert len(prompts) == 2
    client.logout()

    client = imaps(server)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("PLAIN", lambda challenge: f"\0{ALICE}\0wrong".encode())
    client.logout()


def test_authenticate_plain_with_sasl_ir(server: PostelServer) -> None:
    raw = RawImap(server)
    ir = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    lines = raw.command(b"a1 AUTHENTICATE PLAIN " + ir)
    assert lines[-1].startswith(b"a1 OK"), lines
    raw.close()


def _scram_steps() -> tuple[scramp.ScramClient, list[bytes]]:
    client = scramp.ScramClient(["SCRAM-SHA-256"], ALICE, PASSWORD)
    return client, []


def test_authenticate_scram_sha_256_without_tls(server: PostelServer) -> None:
    """SCRAM needs no TLS: imaplib's authenticate callback runs the scramp client."""
    scram, seen = _scram_steps()

    def step(challenge: bytes) -> bytes:
        seen.append(challenge)
        if len(seen) == 1:
            return str(scram.get_client_first()).encode()
        if len(seen) == 2:
            scram.set_server_first(challenge.decode())
            return str(scram.get_client_final()).encode()
        scram.set_server_final(challenge.decode())
        return b""

    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    ok(client.authenticate("SCRAM-SHA-256", step))
    ok(client.select("INBOX"))
    client.logout()


def _scram_sasl_ir(server: PostelServer) -> tuple[scramp.ScramClient, RawImap, bytes]:
    """SCRAM-SHA-256 with SASL-IR up to the client-final-message; returns the client,
    the connection and the line the server sent next."""
    scram, _ = _scram_steps()
    raw = RawImap(server, tls=False)
    first = base64.b64encode(scram.get_client_first().encode())
    raw.send(b"a1 AUTHENTICATE SCRAM-SHA-256 " + first + b"\r\n")
    challenge = raw.read_line()
    assert challenge.startswith(b"+ "), challenge
    scram.set_server_first(base64.b64decode(challenge[2:].strip()).decode())
    raw.send(base64.b64encode(scram.get_client_final().encode()) + b"\r\n")
    return scram, raw, raw.read_line()


def test_authenticate_scram_sha_256_with_sasl_ir(server: PostelServer) -> None:
    _, raw, reply = _scram_sasl_ir(server)
    if reply.startswith(b"+ "):
        raw.send(b"\r\n")
        reply = raw.read_line()
    assert reply.startswith(b"a1 OK"), reply
    assert raw.command(b"a2 SELECT INBOX")[-1].startswith(b"a2 OK")
    raw.close()


def test_scram_server_final_message_is_sent(server: PostelServer) -> None:
    """IMAP has no additional data with success: the server-final-message comes as one
    more continuation, answered with an empty line, then the tagged OK.
    Spec: RFC 9051 §6.2.2, RFC 4422 §3.6, RFC 5802 §5 (the client MUST verify v=)."""
    scram, raw, reply = _scram_sasl_ir(server)
    assert reply.startswith(b"+ "), f"expected the server-final-message, got {reply!r}"
    scram.set_server_final(base64.b64decode(reply[2:].strip()).decode())
    raw.send(b"\r\n")
    assert raw.read_line().startswith(b"a1 OK")
    raw.close()


def test_authenticate_scram_wrong_password(server: PostelServer) -> None:
    scram = scramp.ScramClient(["SCRAM-SHA-256"], ALICE, "wrong-password")
    raw = RawImap(server, tls=False)
    raw.send(
        b"a1 AUTHENTICATE SCRAM-SHA-256 "
        + base64.b64encode(scram.get_client_first().encode())
        + b"\r\n"
    )
    challenge = raw.read_line()
    assert challenge.startswith(b"+ "), challenge
    scram.set_server_first(base64.b64decode(challenge[2:].strip()).decode())
    raw.send(base64.b64encode(scram.get_client_final().encode()) + b"\r\n")
    reply = raw.read_line()
    assert reply.startswith(b"a1 NO [AUTHENTICATIONFAILED]"), reply
    raw.close()


def test_authenticate_cancel(server: PostelServer) -> None:
    raw = RawImap(server, tls=False)
    raw.send(b"a1 AUTHENTICATE SCRAM-SHA-256\r\n")
    assert raw.read_line().startswith(b"+")
    raw.send(b"*\r\n")
    assert raw.read_line().startswith(b"a1 BAD"), "RFC 9051 §6.2.2: cancel ends in BAD"
    assert raw.command(b"a2 NOOP")[-1].startswith(b"a2 OK")
    raw.close()


def test_enable_imap4rev2_and_utf8(server: PostelServer) -> None:
    raw = RawImap(server)
    raw.login(ALICE)
    untagged = tagged_ok(raw.command(b"e1 ENABLE UTF8=ACCEPT"))
    assert untagged == [b"* ENABLED UTF8=ACCEPT\r\n"]
    name = "Caf\u00e9-\u65e5\u672c".encode()
    tagged_ok(raw.command(b'e2 CREATE "' + name + b'"'))
    listed = tagged_ok(raw.command(b'e3 LIST "" "Caf*"'))
    assert listed == [b'* LIST (\\HasNoChildren) "/" "' + name + b'"\r\n'], listed
    untagged = tagged_ok(raw.command(b"e4 ENABLE IMAP4rev2"))
    assert untagged == [b"* ENABLED IMAP4rev2\r\n"]
    # ENABLE again: nothing newly enabled (RFC 5161 §3.1: only what this command enabled).
    assert tagged_ok(raw.command(b"e5 ENABLE IMAP4rev2")) == [b"* ENABLED\r\n"]
    raw.close()


def test_enable_both_in_one_command_lists_both(server: PostelServer) -> None:
    """RFC 5161 §3.2: the ENABLED response lists each extension the command enabled."""
    raw = RawImap(server)
    raw.login(ALICE)
    untagged = tagged_ok(raw.command(b"e1 ENABLE IMAP4rev2 UTF8=ACCEPT"))
    assert len(untagged) == 1
    enabled = set(untagged[0].split()[2:])
    assert enabled == {b"IMAP4rev2", b"UTF8=ACCEPT"}, untagged
    raw.close()


def test_id_and_namespace(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    assert client.xatom("ID", '("name" "imaplib" "version" "3.11")')[0] == "OK"
    answer = client.untagged_responses.pop("ID")[0]
    assert isinstance(answer, bytes) and answer.startswith(b'("name" "postel"'), answer
    assert ok(client.namespace()) == [b'(("" "/")) NIL NIL']
    client.logout()
    with imapclient_tls(server, ALICE) as ic:
        fields = ic.id_({"name": "imapclient"})[0]
        assert dict(zip(fields[::2], fields[1::2], strict=True))[b"name"] == b"postel"
        ns = ic.namespace()
        assert ns.personal == (("", "/"),) and ns.other is None and ns.shared is None


# -- mailboxes: CREATE DELETE RENAME SUBSCRIBE LIST LSUB STATUS ---------------------------


def _list_names(lines: list[bytes]) -> list[str]:
    names = []
    for line in lines:
        match = re.match(rb'\* LIST \(([^)]*)\) "/" "?([^"\r]*)"?', line)
        if match:
            names.append(match.group(2).decode())
    return names


def test_create_hierarchy_special_use_delete_rename(server: PostelServer) -> None:
    raw = RawImap(server)
    raw.login(ALICE)
    tagged_ok(raw.command(b"c1 CREATE h1/a/b"))
    listed = tagged_ok(raw.command(b'c2 LIST "" "h1*"'))
    assert listed == [
        b'* LIST (\\HasChildren) "/" h1\r\n',
        b'* LIST (\\HasChildren) "/" h1/a\r\n',
        b'* LIST (\\HasNoChildren) "/" h1/a/b\r\n',
    ], listed
    # A trailing separator names the same mailbox (RFC 9051 §6.3.4).
    assert raw.command(b"c3 CREATE h1/")[-1].startswith(b"c3 NO")
    tagged_ok(raw.command(b"c4 CREATE h1-archive (USE (\\Archive))"))
    listed = tagged_ok(raw.command(b'c5 LIST "" h1-archive'))
    assert listed == [b'* LIST (\\HasNoChildren \\Archive) "/" h1-archive\r\n'], listed
    bad_use = raw.command(b"c6 CREATE h1-bad (USE (\\Nonsense))")
    assert bad_use[-1].startswith(b"c6 NO") and b"USEATTR" in bad_use[-1], bad_use
    assert raw.command(b"c7 CREATE INBOX")[-1].startswith(b"c7 NO")
    assert raw.command(b"c8 CREATE h1/a")[-1].startswith(b"c8 NO")
    # RENAME moves the children too.
    tagged_ok(raw.command(b"c9 RENAME h1/a h1/z"))
    assert _list_names(tagged_ok(raw.command(b'c10 LIST "" "h1/*"'))) == ["h1/z", "h1/z/b"]
    assert raw.command(b"c11 RENAME h1/nothere h1/q")[-1].startswith(b"c11 NO")
    assert raw.command(b"c12 RENAME h1/z h1")[-1].startswith(b"c12 NO")
    # DELETE of a leaf, then of a mailbox with children (\Noselect remains, RFC 9051 §6.3.5).
    tagged_ok(raw.command(b"c13 DELETE h1/z/b"))
    tagged_ok(raw.command(b"c14 DELETE h1-archive"))
    assert _list_names(tagged_ok(raw.command(b'c15 LIST "" "h1*"'))) == ["h1", "h1/z"]
    assert raw.command(b"c16 DELETE INBOX")[-1].startswith(b"c16 NO")
    assert raw.command(b"c17 DELETE h1-none")[-1].startswith(b"c17 NO")
    tagged_ok(raw.command(b"c18 DELETE h1/z"))
    tagged_ok(raw.command(b"c19 DELETE h1"))
    assert tagged_ok(raw.command(b'c20 LIST "" "h1*"')) == []
    raw.close()


def test_list_patterns_and_extended(server: PostelServer) -> None:
    raw = RawImap(server)
    raw.login(ALICE)
    for name in (b"lx", b"lx/one", b"lx/one/deep", b"lx/two"):
        tagged_ok(raw.command(b"p0 CREATE " + name))
    tagged_ok(raw.command(b"p1 SUBSCRIBE lx/two"))
    tagged_ok(raw.command(b"p1 SUBSCRIBE lx/one/deep"))
    assert _list_names(tagged_ok(raw.command(b'p2 LIST "" lx/%'))) == ["lx/one", "lx/two"]
    assert _list_names(tagged_ok(raw.command(b'p3 LIST "" lx/*'))) == [
        "lx/one",
        "lx/one/deep",
        "lx/two",
    ]
    assert _list_names(tagged_ok(raw.command(b'p4 LIST "lx/" %'))) == ["lx/one", "lx/two"]
    # Empty pattern: the hierarchy delimiter and root (RFC 9051 §6.3.9).
    assert tagged_ok(raw.command(b'p5 LIST "" ""')) == [b'* LIST (\\Noselect) "/" ""\r\n']
    # LIST-EXTENDED selection: SUBSCRIBED.
    subscribed = tagged_ok(raw.command(b'p6 LIST (SUBSCRIBED) "" "lx*"'))
    assert _list_names(subscribed) == ["lx/one/deep", "lx/two"], subscribed
    assert all(b"\\Subscribed" in line for line in subscribed), subscribed
    # RECURSIVEMATCH: a parent whose child is subscribed gets CHILDINFO (RFC 5258 §3.5).
    recursive = tagged_ok(raw.command(b'p7 LIST (SUBSCRIBED RECURSIVEMATCH) "" "lx/%"'))
    assert b'"lx/one" ("CHILDINFO" ("SUBSCRIBED"))' in b"".join(recursive) or any(
        b"CHILDINFO" in line and b"lx/one" in line for line in recursive
    ), recursive
    special = tagged_ok(raw.command(b'p8 LIST (SPECIAL-USE) "" *'))
    assert sorted(_list_names(special)) == ["Archive", "Drafts", "Junk", "Sent", "Trash"]
    ret = tagged_ok(
        raw.command(
            b'p9 LIST "" "lx*" RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN))'
        )
    )
    lines = {name: line for name, line in zip(_list_names(ret), ret, strict=False)}
    text = b"".join(ret)
    assert b'* LIST (\\HasChildren) "/" lx\r\n' in ret, ret
    assert b"* STATUS lx/two (MESSAGES 0 UNSEEN 0)\r\n" in ret, ret
    assert b"\\Subscribed" in text
    assert "lx/one/deep" in lines
    # LSUB (IMAP4rev1): only subscribed names; a parent that is not subscribed but has a
    # subscribed child shows as \Noselect with "%" (RFC 3501 §6.3.9).
    lsub = tagged_ok(raw.command(b'p10 LSUB "" "lx*"'))
    assert [line for line in lsub if line.startswith(b"* LSUB")] == [
        b'* LSUB () "/" lx/one/deep\r\n',
        b'* LSUB () "/" lx/two\r\n',
    ], lsub
    tagged_ok(raw.command(b"p11 UNSUBSCRIBE lx/two"))
    assert _list_names(tagged_ok(raw.command(b'p12 LIST (SUBSCRIBED) "" "lx*"'))) == ["lx/one/deep"]
    raw.close()


def test_status_items(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    ok(client.create("st"))
    ok(client.append("st", "(\\Seen)", None, message("st", 1)))
    ok(client.append("st", "(\\Deleted)", None, message("st", 2)))
    ok(client.append("st", "", None, message("st", 3)))
    items = "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE DELETED-STORAGE)"
    data = ok(client.status("st", items))
    text = data[0].decode()
    fields = dict(re.findall(r"([\w-]+) (\d+)", text.split("(", 1)[1]))
    size = sum(len(message("st", n)) for n in (1, 2, 3))
    assert fields["MESSAGES"] == "3" and fields["UIDNEXT"] == "4", text
    assert fields["UNSEEN"] == "2" and fields["DELETED"] == "1", text
    assert fields["SIZE"] == str(size), text
    assert fields["DELETED-STORAGE"] == str(len(message("st", 2))), text
    assert int(fields["UIDVALIDITY"]) > 0
    typ, data = client.status("st-none", "(MESSAGES)")
    assert typ == "NO"
    client.logout()


def test_rename_inbox_moves_messages_and_keeps_inbox(server: PostelServer) -> None:
    smtp_send(server, BOB, [message("to-bob", n) for n in range(3)])
    client = imaps(server, BOB)
    assert ok(client.select("INBOX")) == [b"3"]
    ok(client.close())
    ok(client.rename("INBOX", "Old-Inbox"))
    assert ok(client.select("INBOX")) == [b"0"]
    assert ok(client.select("Old-Inbox")) == [b"3"]
    data = ok(client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    subjects = [item[1].strip() for item in data if isinstance(item, tuple)]
    assert subjects == [b"Subject: to-bob 0", b"Subject: to-bob 1", b"Subject: to-bob 2"]
    # Mail delivered afterwards goes to the (new, empty) INBOX.
    smtp_send(server, BOB, [message("to-bob", 9)])
    assert ok(client.select("INBOX")) == [b"1"]
    client.logout()


# -- APPEND ---------------------------------------------------------------------------


def test_append_flags_internaldate_appenduid(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    ok(client.create("ap"))
    date = imaplib.Time2Internaldate(1_600_000_000)
    content = message("ap", 1)
    typ, data = client.append("ap", "(\\Flagged $Important)", date, content)
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\]", data[0]), data
    ok(client.select("ap"))
    fetched = ok(client.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"))
    head = fetched[0][0]
    assert b"\\Flagged" in head and b"$Important" in head, head
    assert b'INTERNALDATE "13-Sep-2020 12:26:40 +0000"' in head, head
    assert b"RFC822.SIZE %d" % len(content) in head
    assert fetched[0][1] == content
    # The new keyword shows in FLAGS at the next SELECT.
    typ, _ = client.select("ap")
    assert b"$Important" in client.untagged_responses["FLAGS"][0]
    # APPEND to a mailbox that does not exist: NO [TRYCREATE].
    typ, data = client.append("ap-none", "", None, content)
    assert typ == "NO" and b"TRYCREATE" in data[0]
    client.logout()


def test_multiappend_and_literal_plus(server: PostelServer) -> None:
    raw = RawImap(server)
    raw.login(ALICE)
    tagged_ok(raw.command(b"m0 CREATE ma"))
    one, two, three = (message("ma", n) for n in (1, 2, 3))
    # LITERAL+: no continuation; MULTIAPPEND: three messages in one command.
    raw.send(
        b'm1 APPEND ma (\\Seen) {%d+}\r\n%s (\\Draft) "01-Jan-2021 00:00:00 +0100" {%d+}\r\n%s'
        b" {%d+}\r\n%s\r\n" % (len(one), one, len(two), two, len(three), three)
    )
    lines = raw.until_tagged(b"m1")
    assert re.match(rb"m1 OK \[APPENDUID \d+ 1:3\]", lines[-1]), lines
    # Synchronising literals get a continuation each.
    raw.send(b"m2 APPEND ma {%d}\r\n" % len(one))
    assert raw.read_line().startswith(b"+")
    raw.send(one + b" {%d}\r\n" % len(two))
    assert raw.read_line().startswith(b"+")
    raw.send(two + b"\r\n")
    assert re.match(rb"m2 OK \[APPENDUID \d+ 4:5\]", raw.until_tagged(b"m2")[-1])
    tagged_ok(raw.command(b"m3 SELECT ma"))
    fetched = tagged_ok(raw.command(b"m4 FETCH 1:5 (FLAGS INTERNALDATE)"))
    assert b"\\Seen" in fetched[0] and b"\\Draft" in fetched[1], fetched
    # The same instant; the zone need not be kept (RFC 9051 §2.3.3).
    assert b'"31-Dec-2020 23:00:00 +0000"' in fetched[1] or b"+0100" in fetched[1], fetched
    body = tagged_ok(raw.command(b"m5 FETCH 3 BODY.PEEK[]"))
    assert body[0] == b"* 3 FETCH (BODY[] {%d}\r\n%s)\r\n" % (len(three), three), body
    # A failure in the middle of a MULTIAPPEND appends nothing (RFC 3502 §3).
    raw.send(
        b'm6 APPEND ma {%d+}\r\n%s "bad date" {%d+}\r\n%s\r\n' % (len(one), one, len(two), two)
    )
    assert raw.until_tagged(b"m6")[-1].startswith((b"m6 BAD", b"m6 NO"))
    status = tagged_ok(raw.command(b"m7 STATUS ma (MESSAGES)"))
    assert status == [b"* STATUS ma (MESSAGES 5)\r\n"], status
    raw.close()


def test_append_binary_literal8(server: PostelServer) -> None:
    """BINARY: APPEND takes a literal8 (``~{n}``) that may hold NUL. Spec: RFC 3516 §4.4."""
    raw = RawImap(server)
    raw.login(ALICE)
    tagged_ok(raw.command(b"b0 CREATE bin8"))
    content = b"Subject: nul\r\n\r\nh\x00llo\r\n"
    raw.send(b"b1 APPEND bin8 ~{%d+}\r\n%s\r\n" % (len(content), content))
    assert re.match(rb"b1 OK \[APPENDUID \d+ 1\]", raw.until_tagged(b"b1")[-1])
    raw.close()


def test_append_utf8_data_item(server: PostelServer) -> None:
    """After ENABLE UTF8=ACCEPT, APPEND takes ``UTF8 (~{n}...)``.
    Spec: RFC 6855 §4 (append-data =/ "UTF8" SP "(" literal8 ")")."""
    raw = RawImap(server)
    raw.login(ALICE)
    tagged_ok(raw.command(b"u0 ENABLE UTF8=ACCEPT"))
    tagged_ok(raw.command(b"u1 CREATE utf8-append"))
    content = "Subject: Gr\u00fc\u00dfe\r\n\r\nk\u00e4se\r\n".encode()
    raw.send(b"u2 APPEND utf8-append UTF8 (~{%d+}\r\n%s)\r\n" % (len(content), content))
    reply = raw.until_tagged(b"u2")
    raw.close()
    assert reply[-1].startswith(b"u2 OK"), reply


# -- SELECT / EXAMINE, FETCH, STORE, SEARCH ------------------------------------------------


def test_examine_is_read_only(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    ok(client.create("ex"))
    ok(client.append("ex", "", None, message("ex", 1)))
    typ, data = client.select("ex", readonly=True)
    assert typ == "OK"
    assert "READ-ONLY" in client.untagged_responses
    typ, data = client.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "NO", (typ, data)
    fetched = ok(client.fetch("1", "(BODY[] FLAGS)"))
    assert fetched[0][1] == message("ex", 1)
    assert b"\\Seen" not in ok(client.fetch("1", "(FLAGS)"))[0]
    assert client.expunge()[0] == "NO"
    ok(client.select("ex"))
    assert b"\\Seen" not in ok(client.fetch("1", "(FLAGS)"))[0]
    client.logout()


def test_fetch_items(server: PostelServer) -> None:
    raw = RawImap(server)
    raw.login(ALICE)
    tagged_ok(raw.command(b"f0 CREATE fe"))
    raw.send(b"f1 APPEND fe {%d+}\r\n%s\r\n" % (len(MULTIPART), MULTIPART))
    tagged_ok(raw.until_tagged(b"f1"))
    tagged_ok(raw.command(b"f2a ENABLE IMAP4rev2"))
    tagged_ok(raw.command(b"f2 SELECT fe"))
    got = tagged_ok(raw.command(b"f3 FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE)"))
    assert got == [
        b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE %d ENVELOPE "
        b'("Tue, 14 Nov 2023 22:13:20 +0000" "parts" (("Sender" NIL "sender" "remote.test"))'
        b' (("Sender" NIL "sender" "remote.test")) (("Sender" NIL "sender" "remote.test"))'
        b' ((NIL NIL "alice" "example.test")) NIL NIL NIL "<parts@remote.test>"))\r\n'
        % len(MULTIPART)
    ], got
    got = tagged_ok(raw.command(b"f4 FETCH 1 BODYSTRUCTURE"))
    assert got[0].startswith(
        b'* 1 FETCH (BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL'
        b' "quoted-printable" 17 0'
    ), got
    assert b'"mixed" ("boundary" "b1")' in got[0], got
    got = tagged_ok(raw.command(b"f5 FETCH 1 BODY"))
    assert got[0].startswith(b'* 1 FETCH (BODY (("text" "plain"'), got
    # Sections and partial fetches, with PEEK (no \Seen yet).
    got = tagged_ok(raw.command(b"f6 FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[]<0.6>)"))
    joined = b"".join(got)
    assert b"BODY[1] {17}\r\ncaf=C3=A9 au lait" in joined, got
    assert b"BODY[2.MIME] {" in joined and b"Content-Transfer-Encoding: base64" in joined
    assert b"BODY[]<0> {6}\r\nFrom: " in joined, got
    got = tagged_ok(raw.command(b"f7 FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] FLAGS)"))
    assert b"{18}\r\nSubject: parts\r\n\r\n" in got[0] and b"FLAGS ()" in got[0], got
    got = tagged_ok(raw.command(b"f8 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2])"))
    joined = b"".join(got)
    assert "BINARY[1] {13}\r\ncafé au lait".encode() in joined, got
    assert b"BINARY.SIZE[2] 6" in joined, got
    assert b"BINARY[2] ~{6}\r\n\x00\x01\x02\x03\x04\x05" in joined, got
    got = tagged_ok(raw.command(b"f9 FETCH 1 BODY.PEEK[TEXT]<10.5>"))
    assert b"BODY[TEXT]<10> {5}\r\n" in got[0], got
    # Non-PEEK BODY[] sets \Seen and says so (RFC 9051 §6.4.5).
    got = tagged_ok(raw.command(b"f10 FETCH 1 BODY[1]"))
    assert b"\\Seen" in b"".join(got), got
    got = tagged_ok(raw.command(b"f11 UID FETCH 1 (FLAGS)"))
    assert got == [b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"], got
    got = tagged_ok(raw.command(b"f12 FETCH 1 (BINARY[1])"))
    assert b"caf\xc3\xa9" in got[0]
    # A message number past the end: BAD (RFC 9051 §6.4.5 / §7.1.5); UID range: empty.
    assert raw.command(b"f13 FETCH 9 FLAGS")[-1].startswith(b"f13 BAD")
    assert raw.command(b"f14 UID FETCH 9 FLAGS") == [b"f14 OK FETCH completed\r\n"]
    raw.close()


def _no_recent(line: object) -> bytes:
    """``line`` without IMAP4rev1's session flag \\Recent."""
    assert isinstance(line, bytes)
    return re.sub(rb" ?\\Recent", b"", line).replace(b"( ", b"(")


def test_recent_is_consistent_for_imap4rev1(server: PostelServer) -> None:
    """The RECENT count of SELECT matches the \\Recent flags FETCH shows, and only the
    first session to select sees them. Spec: RFC 3501 §2.3.2, §7.3.2."""
    smtp_send(server, CAROL, [message("recent", n) for n in range(2)])
    one = RawImap(server)
    one.login(CAROL)
    tagged_ok(one.command(b"r0 CREATE recent"))
    for n in range(3):
        content = message("recent", n)
        tagged_ok(one.command(b"r1 APPEND recent {%d+}\r\n%s" % (len(content), content)))
    selected = tagged_ok(one.command(b"r2 SELECT recent"))
    fetched = tagged_ok(one.command(b"r3 FETCH 1:* FLAGS"))
    count = sum(b"\\Recent" in line for line in fetched)
    assert b"* %d RECENT\r\n" % count in selected, (selected, fetched)
    status = tagged_ok(one.command(b"r4 STATUS INBOX (RECENT)"))
    two = RawImap(server)
    two.login(CAROL)
    selected = tagged_ok(two.command(b"r5 SELECT recent"))
    assert b"* 0 RECENT\r\n" in selected, selected
    fetched = tagged_ok(two.command(b"r6 FETCH 1:* FLAGS"))
    assert not any(b"\\Recent" in line for line in fetched), fetched
    assert re.match(rb"\* STATUS INBOX \(RECENT \d+\)", status[0]), status
    one.close()
    two.close()


def test_store_flags(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    _fresh_mailbox(client, "sf", *(message("sf", n) for n in range(4)))
    data = ok(client.store("1:2", "+FLAGS", "(\\Flagged)"))
    assert [d for d in data if b"\\Flagged" in d] == data and len(data) == 2, data
    assert ok(client.store("3", "+FLAGS.SILENT", "(\\Answered)")) == [None]
    ok(client.uid("STORE", "4", "+FLAGS", "(\\Draft $Label1)"))
    data = ok(client.store("1", "-FLAGS", "(\\Flagged)"))
    assert [_no_recent(d) for d in data] in ([b"1 (FLAGS ())"], [b"1 (UID 1 FLAGS ())"]), data
    assert ok(client.store("2", "FLAGS.SILENT", "(\\Seen)")) == [None]
    data = ok(client.uid("STORE", "4", "-FLAGS.SILENT", "($Label1)"))
    assert data == [None], data
    data = ok(client.fetch("1:4", "(FLAGS)"))
    flags = [group(rb"FLAGS \(([^)]*)\)", _no_recent(d)) for d in data]
    assert flags == [b"", b"\\Seen", b"\\Answered", b"\\Draft"], flags
    client.logout()


def test_search_and_esearch(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    ok(client.create("se"))
    contents = [
        message("alpha", 1, "apples and oranges"),
        message("beta", 2, "bananas"),
        message("gamma", 3, "cherries " + "x" * 3000),
    ]
    ok(client.append("se", "(\\Seen)", imaplib.Time2Internaldate(1_500_000_000), contents[0]))
    ok(client.append("se", "(\\Flagged)", imaplib.Time2Internaldate(1_600_000_000), contents[1]))
    ok(client.append("se", "(\\Deleted $Todo)", None, contents[2]))
    ok(client.select("se"))

    def search(*criteria: str) -> list[int]:
        data = ok(client.search(None, *criteria))
        return [int(n) for n in data[0].split()]

    assert search("ALL") == [1, 2, 3]
    assert search("SEEN") == [1] and search("UNSEEN") == [2, 3]
    assert search("FLAGGED") == [2] and search("UNFLAGGED") == [1, 3]
    assert search("DELETED") == [3] and search("UNDELETED") == [1, 2]
    assert search("KEYWORD", "$Todo") == [3] and search("UNKEYWORD", "$Todo") == [1, 2]
    assert search("SUBJECT", "beta") == [2]
    assert search("BODY", "bananas") == [2] and search("TEXT", "oranges") == [1]
    assert search("FROM", "sender@remote.test") == [1, 2, 3]
    assert search("HEADER", "Message-ID", "<gamma.3@remote.test>") == [3]
    assert search("LARGER", "1000") == [3] and search("SMALLER", "1000") == [1, 2]
    assert search("BEFORE", "1-Jan-2018") == [1] and search("SINCE", "1-Jan-2020") == [2, 3]
    assert search("SENTON", "14-Nov-2023") == [1, 2, 3]
    assert search("OR", "SEEN", "FLAGGED") == [1, 2]
    assert search("NOT", "SEEN", "NOT", "DELETED") == [2]
    assert search("2:*") == [2, 3] and search("UID", "1,3") == [1, 3]
    assert search("(SEEN", "SUBJECT", "alpha)") == [1]
    data = ok(client.uid("SEARCH", "FLAGGED"))
    assert data == [b"2"], data
    typ, data = client.search("UTF-8", "SUBJECT", "gamma")
    assert typ == "OK" and data == [b"3"]
    raw_lines = tagged_ok(_raw_in(server, b"se", b"s1 SEARCH RETURN (MIN MAX COUNT ALL) ALL"))
    assert raw_lines[-1].startswith(b'* ESEARCH (TAG "s1") '), raw_lines
    words = raw_lines[-1].split()[4:]
    assert dict(zip(words[::2], words[1::2], strict=True)) == {
        b"MIN": b"1",
        b"MAX": b"3",
        b"COUNT": b"3",
        b"ALL": b"1:3",
    }, raw_lines
    raw_lines = tagged_ok(_raw_in(server, b"se", b"s2 UID SEARCH RETURN (COUNT) UNSEEN"))
    assert raw_lines[-1] == b'* ESEARCH (TAG "s2") UID COUNT 2\r\n', raw_lines
    raw_lines = tagged_ok(_raw_in(server, b"se", b"s3 SEARCH RETURN () KEYWORD nothere"))
    assert raw_lines[-1] == b'* ESEARCH (TAG "s3")\r\n', raw_lines
    client.logout()


def _raw_in(server: PostelServer, mailbox: bytes, line: bytes) -> list[bytes]:
    """``line``'s response in a fresh session with ``mailbox`` selected."""
    raw = RawImap(server)
    try:
        raw.login(ALICE)
        tagged_ok(raw.command(b"r0 SELECT " + mailbox))
        return raw.command(line)
    finally:
        raw.close()


def test_search_bad_key_is_bad(server: PostelServer) -> None:
    lines = _raw_in(server, b"INBOX", b"s1 SEARCH NOSUCHKEY")
    assert lines[-1].startswith(b"s1 BAD"), lines


# -- COPY, MOVE, EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT ---------------------------------------


def test_copy_move_expunge_close_unselect(server: PostelServer) -> None:
    client = imaps(server, ALICE)
    ok(client.create("cm-dst"))
    _fresh_mailbox(client, "cm", *(message("cm", n) for n in range(6)))
    typ, data = client.copy("1:2", "cm-dst")
    assert typ == "OK" and re.match(rb"\[COPYUID \d+ 1:2 1:2\]", data[0]), data
    typ, data = client.copy("1", "cm-none")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    typ, data = client._simple_command("MOVE", "3", "cm-dst")
    assert typ == "OK", data
    copyuid = client.untagged_responses.pop("OK", [b""])
    assert any(b"COPYUID" in line and b" 3 3" in line for line in copyuid), copyuid
    assert client.untagged_responses.pop("EXPUNGE") == [b"3"]
    typ, data = client.uid("MOVE", "4", "cm-dst")
    assert typ == "OK"
    assert client.untagged_responses.pop("EXPUNGE") == [b"3"]
    # Now: UIDs 1 2 5 6 in cm (MSNs 1-4).
    ok(client.store("1,2", "+FLAGS.SILENT", "(\\Deleted)"))
    typ, data = client.uid("EXPUNGE", "2")
    assert typ == "OK"
    assert client.untagged_responses.pop("EXPUNGE") == [b"2"]
    data = ok(client.expunge())
    assert data == [b"1"], data
    data = ok(client.uid("FETCH", "1:*", "(UID)"))
    assert [group(rb"UID (\d+)", d) for d in data] == [b"5", b"6"]
    # UNSELECT does not expunge; CLOSE does, silently.
    ok(client.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
    typ, _ = client.unselect()
    assert typ == "OK" and client.state == "AUTH"
    assert ok(client.select("cm")) == [b"2"]
    client.untagged_responses.clear()
    ok(client.close())
    assert "EXPUNGE" not in client.untagged_responses
    assert ok(client.select("cm")) == [b"1"]
    assert ok(client.select("cm-dst")) == [b"4"]
    data = ok(client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    subjects = [item[1].strip() for item in data if isinstance(item, tuple)]
    assert subjects == [b"Subject: cm %d" % n for n in (0, 1, 2, 3)], subjects
    client.logout()


# -- two sessions on one mailbox ------------------------------------------------------------


def test_two_sessions_see_each_other(server: PostelServer) -> None:
    one = imaps(server, CAROL)
    two = imaps(server, CAROL)
    ok(one.create("shared"))
    for n in range(3):
        ok(one.append("shared", "", None, message("two", n)))
    ok(one.select("shared"))
    ok(two.select("shared"))
    ok(one.store("2", "+FLAGS.SILENT", "(\\Flagged)"))
    data = ok(two.noop())
    fetches = two.untagged_responses.pop("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches), (data, fetches)
    ok(one.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(one.expunge())
    two.untagged_responses.clear()
    ok(two.noop())
    assert two.untagged_responses.pop("EXPUNGE", []) == [b"1"], two.untagged_responses
    smtp_send(server, CAROL, [message("inbox", 1)])
    ok(one.append("shared", "", None, message("two", 9)))
    ok(two.noop())
    assert two.untagged_responses.pop("EXISTS", []) == [b"3"], two.untagged_responses
    # A FETCH is not a point where EXPUNGE may be sent (RFC 9051 §7.5.1), NOOP is.
    ok(one.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(one.expunge())
    two.untagged_responses.clear()
    ok(two.fetch("1", "(FLAGS)"))
    assert "EXPUNGE" not in two.untagged_responses
    ok(two.noop())
    assert two.untagged_responses.pop("EXPUNGE", []) == [b"1"]
    one.logout()
    two.logout()


# -- imapclient -------------------------------------------------------------------------------


def test_imapclient_session(server: PostelServer) -> None:
    with imapclient_tls(server) as ic:
        assert ic.has_capability("IMAP4REV2")
        ic.login(ALICE, PASSWORD)
        ic.create_folder("ic/sub")
        assert ic.folder_exists("ic") and ic.folder_exists("ic/sub")
        assert ic.append("ic", message("ic", 1), flags=[b"\\Seen"]).startswith(b"[APPENDUID")
        ic.append("ic", message("ic", 2))
        info = ic.select_folder("ic")
        assert info[b"EXISTS"] == 2 and b"UIDVALIDITY" in info
        assert ic.search(["UNSEEN"]) == [2]
        fetched = ic.fetch([1, 2], ["FLAGS", "RFC822.SIZE", "ENVELOPE", "BODY.PEEK[]"])
        assert fetched[2][b"BODY[]"] == message("ic", 2)
        assert fetched[1][b"ENVELOPE"].subject == b"ic 1"
        assert fetched[2][b"RFC822.SIZE"] == len(message("ic", 2))
        ic.add_flags([2], [b"\\Flagged"])
        assert set(ic.get_flags([2])[2]) - {b"\\Recent"} == {b"\\Flagged"}
        ic.remove_flags([2], [b"\\Flagged"])
        ic.set_flags([1], [b"\\Answered"])
        flags = {uid: set(f) - {b"\\Recent"} for uid, f in ic.get_flags([1, 2]).items()}
        assert flags == {1: {b"\\Answered"}, 2: set()}
        ic.copy([1], "ic/sub")
        ic.move([2], "ic/sub")
        assert ic.folder_status("ic/sub", ["MESSAGES"])[b"MESSAGES"] == 2
        ic.delete_messages([1])
        ic.uid_expunge([1])
        assert ic.search("ALL") == []
        ic.rename_folder("ic/sub", "ic/renamed")
        names = [name for _, _, name in ic.list_folders("ic")]
        assert names == ["ic"] or "ic/renamed" in [n for _, _, n in ic.list_folders("ic/*")]
        ic.subscribe_folder("ic/renamed")
        assert "ic/renamed" in [n for _, _, n in ic.list_sub_folders("ic/*")]
        ic.unsubscribe_folder("ic/renamed")
        assert ic.find_special_folder(b"\\Trash") == "Trash"
        ic.unselect_folder()
        ic.select_folder("ic/renamed", readonly=True)
        ic.close_folder()
        ic.delete_folder("ic/renamed")
        assert ic.enable("UTF8=ACCEPT") == [b"UTF8=ACCEPT"]
        ic.create_folder("ic-\u00fcber")
        assert "ic-\u00fcber" in [n for _, _, n in ic.list_folders("ic-*")]
        ic.logout()


def test_imapclient_idle_sees_smtp_delivery(server: PostelServer) -> None:
    with imapclient_tls(server, CAROL) as ic:
        exists = ic.select_folder("INBOX")[b"EXISTS"]
        ic.idle()
        began = time.monotonic()
        smtp_send(server, CAROL, [message("idle", 1)])
        sent = time.monotonic()
        responses = ic.idle_check(timeout=5)
        arrived = time.monotonic()
        ic.idle_done()
    assert (exists + 1, b"EXISTS") in responses, responses
    latency = arrived - sent
    print(
        f"IDLE: EXISTS {latency * 1000:.1f} ms after the SMTP 250 (send took {sent - began:.3f} s)"
    )
    assert latency < 2.0


# -- responsiveness -------------------------------------------------------------------------


def test_listening_sockets_are_tcp_so_accepted_ones_get_nodelay() -> None:
    """Responses of several lines must not wait for the client's delayed ACK (Nagle):
    asyncio sets TCP_NODELAY on accepted sockets only when the listening socket was
    made with IPPROTO_TCP."""
    from postel.config import Listen, Service
    from postel.server.listener import bind_socket

    sock = bind_socket(Listen(Service.IMAP, "127.0.0.1", 0))
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
