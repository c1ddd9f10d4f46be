"""Real synchronisation tools against postel's IMAP server: mbsync (isync) and
offlineimap pull a mailbox into a local Maildir byte-exact, push local messages, flag
changes and deletions back, change nothing on a second run, and see each other's flags.

mbsync stores messages with LF line endings (isync's Maildir convention) and sends
CRLF; the comparisons undo exactly that. Messages arrive over SMTP, so each begins with
postel's trace fields (Return-Path, Delivered-To, Received), split off before comparing.

Spec: RFC 9051 (FETCH, STORE, APPEND, EXPUNGE, UIDPLUS); RFC 8314 §3 (implicit TLS).
"""

from __future__ import annotations

import email.parser
import hashlib
import imaplib
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_accounts, cert_file, imaps, message, ok, smtp_send
from .server import PostelServer
from .stored import strip_trace

MB_USER = f"mb@{DOMAIN}"
OI_USER = f"oi@{DOMAIN}"
MB_COUNT = 500
"""Messages in the mailbox mbsync pulls."""
OI_COUNT = 40
"""Messages in the mailbox offlineimap pulls (it is much slower than mbsync)."""
TOOL_TIMEOUT = 120
"""Seconds one run of a sync tool may take."""

pytestmark = pytest.mark.skipif(
    shutil.which("mbsync") is None or shutil.which("offlineimap") is None,
    reason="needs Debian's isync and offlineimap3",
)


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-sync")
    add_accounts(srv, MB_USER, OI_USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _sync_message(tag: str, n: int) -> bytes:
    return message(tag, n, f"Message {n} for the sync tools.\r\n.dot line\r\n\r\nbye")


@pytest.fixture(scope="module")
def mb_sent(server: PostelServer) -> dict[str, bytes]:
    """The MB_COUNT messages delivered to MB_USER's INBOX, by Message-ID."""
    sent = [_sync_message("mb", n) for n in range(MB_COUNT)]
    smtp_send(server, MB_USER, sent)
    return {_message_id(content): content for content in sent}


@pytest.fixture(scope="module")
def oi_sent(server: PostelServer) -> dict[str, bytes]:
    """The OI_COUNT messages delivered to OI_USER's INBOX, by Message-ID."""
    sent = [_sync_message("oi", n) for n in range(OI_COUNT)]
    smtp_send(server, OI_USER, sent)
    return {_message_id(content): content for content in sent}


def _message_id(content: bytes) -> str:
    parsed = email.parser.BytesHeaderParser().parsebytes(content)
    return str(parsed["Message-ID"]).strip()


# -- Maildir -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaildirMessage:
    """One Maildir file: its path, its flag letters (after ``:2,``) and content."""

    path: Path
    flags: str
    content: bytes

    @property
    def message_id(self) -> str:
        return _message_id(self.content)

    def with_flags(self, flags: str) -> MaildirMessage:
        """Rename the file to carry ``flags`` (moving it to ``cur``); the new message."""
        base = self.path.name.split(":2,", 1)[0]
        target = self.path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
        self.path.rename(target)
        return MaildirMessage(target, "".join(sorted(flags)), self.content)


def maildir(folder: Path) -> dict[str, MaildirMessage]:
    """The messages of Maildir ``folder`` (``cur`` and ``new``), by Message-ID."""
    found: dict[str, MaildirMessage] = {}
    for sub in ("cur", "new"):
        for path in sorted((folder / sub).iterdir()):
            flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            msg = MaildirMessage(path, flags, path.read_bytes())
            found[msg.message_id] = msg
    return found


def drop_new(folder: Path, name: str, content: bytes) -> None:
    """Deliver ``content`` into Maildir ``folder``'s ``new`` as a local program would."""
    (folder / "tmp" / name).write_bytes(content)
    (folder / "tmp" / name).rename(folder / "new" / name)


def as_crlf(content: bytes) -> bytes:
    """LF line endings back to CRLF (the stored files hold no bare CR)."""
    return content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


_TUID = re.compile(rb"^X-TUID: [^\r\n]*\r?\n", re.MULTILINE)


def as_sent(content: bytes) -> bytes:
    """A pulled Maildir file as the server holds it: CRLF, without the ``X-TUID`` header
    field mbsync adds to the messages it copies (its own tracking id)."""
    lf = content.replace(b"\r\n", b"\n")
    end = lf.find(b"\n\n") + 1
    return as_crlf(_TUID.sub(b"", lf[:end]) + lf[end:])


# -- server state --------------------------------------------------------------------------


FLAG_LETTERS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Draft": "D"}
"""IMAP system flags and their Maildir letters (\\Deleted is T)."""


@dataclass(frozen=True, slots=True)
class ServerState:
    """A mailbox as the server reports it: the STATUS line (UIDNEXT, UIDVALIDITY,
    MESSAGES) and (Message-ID, UID, sorted flags) of each message."""

    status: bytes
    messages: tuple[tuple[str, int, tuple[str, ...]], ...]


def server_state(server: PostelServer, user: str, mailbox: str = "INBOX") -> ServerState:
    """``mailbox``'s state, read over IMAP with EXAMINE (\\Recent left out)."""
    client = imaps(server, user)
    try:
        status = ok(client.status(mailbox, "(UIDNEXT UIDVALIDITY MESSAGES)"))
        ok(client.select(mailbox, readonly=True))
        data = ok(client.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"))
        rows = []
        for item in data:
            if isinstance(item, tuple):
                head = item[0].decode()
                uid = int(head.split("UID ", 1)[1].split()[0])
                flags = head.split("FLAGS (", 1)[1].split(")", 1)[0].split()
                mid = item[1].decode().split(":", 1)[1].strip()
                rows.append((mid, uid, tuple(sorted(f for f in flags if f != "\\Recent"))))
        return ServerState(status[0], tuple(sorted(rows)))
    finally:
        client.logout()


def server_flags(server: PostelServer, user: str, mailbox: str = "INBOX") -> dict[str, set[str]]:
    """Message-ID -> the message's flags on the server."""
    return {mid: set(flags) for mid, _, flags in server_state(server, user, mailbox).messages}


# -- mbsync ----------------------------------------------------------------------------------


def mbsync_config(server: PostelServer, user: str, local: Path, auth: str = "LOGIN") -> Path:
    """An mbsync config syncing all of ``user``'s mailboxes with Maildir ``local``."""
    local.mkdir(parents=True, exist_ok=True)
    config = local.parent / f"mbsyncrc-{local.name}"
    config.write_text(
        f"""IMAPAccount postel
Host 127.0.0.1
Port {server.imaps_port}
User {user}
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {cert_file(server)}
AuthMechs {auth}
PipelineDepth 50

IMAPStore remote
Account postel

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Remove None
Expunge Both
Sync All
SyncState *
"""
    )
    return config


def mbsync(config: Path) -> subprocess.CompletedProcess[str]:
    """One ``mbsync -V`` run of channel ``sync``; asserts it exits 0."""
    result = subprocess.run(
        ["mbsync", "-V", "-c", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_mbsync_pull_push_and_second_run_is_a_no_op(
    server: PostelServer, mb_sent: dict[str, bytes], tmp_path: Path
) -> None:
    local = tmp_path / "mbsync"
    config = mbsync_config(server, MB_USER, local)
    first = mbsync(config)
    pulled = maildir(local / "INBOX")
    assert len(pulled) == MB_COUNT, first.stdout[-2000:]
    for mid, content in mb_sent.items():
        assert strip_trace(as_sent(pulled[mid].content)) == content, mid
    assert {p.name for p in local.iterdir() if p.is_dir()} >= {"INBOX", "Sent", "Trash"}

    # Local changes: new messages, a new folder, flags, a deletion.
    ids = sorted(mb_sent)
    pulled[ids[0]].with_flags("S")
    pulled[ids[1]].with_flags("FS")
    pulled[ids[2]].with_flags("RS")
    pulled[ids[3]].with_flags("T")
    new_local = [message("local", n).replace(b"\r\n", b"\n") for n in range(2)]
    for n, content in enumerate(new_local):
        drop_new(local / "INBOX", f"1700000000.local{n}.client", content)
    for sub in ("cur", "new", "tmp"):
        (local / "Local-Only" / sub).mkdir(parents=True)
    folder_msg = message("folder", 1).replace(b"\r\n", b"\n")
    drop_new(local / "Local-Only", "1700000000.folder.client", folder_msg)
    # And on the server, from another client: a flag and an expunge.
    client = imaps(server, MB_USER)
    ok(client.select("INBOX"))
    ok(client.uid("STORE", "5", "+FLAGS.SILENT", "(\\Answered)"))
    ok(client.uid("STORE", "6", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(client.expunge())
    client.logout()

    mbsync(config)
    flags = server_flags(server, MB_USER)
    assert len(flags) == MB_COUNT - 2 + 2
    assert ids[3] not in flags
    assert flags[ids[0]] == {"\\Seen"}
    assert flags[ids[1]] == {"\\Flagged", "\\Seen"}
    assert flags[ids[2]] == {"\\Answered", "\\Seen"}
    for content in new_local:
        assert _message_id(content) in flags
    _assert_uploaded(server, MB_USER, "INBOX", [as_crlf(c) for c in new_local])
    _assert_uploaded(server, MB_USER, "Local-Only", [as_crlf(folder_msg)])
    after = maildir(local / "INBOX")
    assert len(after) == MB_COUNT - 2 + 2
    by_uid = {m.path.name.split(",U=", 1)[1].split(":", 1)[0]: m for m in after.values()}
    assert "R" in by_uid["5"].flags and "6" not in by_uid

    # A second run changes nothing, on either side.
    server_before = server_state(server, MB_USER)
    local_before = sorted(p.relative_to(local) for p in local.rglob("*") if "/." not in str(p))
    again = mbsync(config)
    assert server_state(server, MB_USER) == server_before
    local_after = sorted(p.relative_to(local) for p in local.rglob("*") if "/." not in str(p))
    assert local_after == local_before
    assert "Error" not in again.stderr, again.stderr


def _assert_uploaded(server: PostelServer, user: str, mailbox: str, contents: list[bytes]) -> None:
    """Each of ``contents`` is in ``mailbox`` on the server, byte for byte (but for an
    ``X-TUID`` field added by mbsync)."""
    client = imaps(server, user)
    try:
        ok(client.select(mailbox, readonly=True))
        data = ok(client.fetch("1:*", "(BODY.PEEK[])"))
        bodies = [as_sent(item[1]) for item in data if isinstance(item, tuple)]
        for content in contents:
            assert content in bodies, (content, [b[:100] for b in bodies])
    finally:
        client.logout()


def test_mbsync_scram_authentication_is_clean(
    server: PostelServer, oi_sent: dict[str, bytes], tmp_path: Path
) -> None:
    """mbsync's SCRAM-SHA-256 (Cyrus SASL) verifies the server signature; without the
    server-final-message it warns "SASL reported failure despite successful IMAP
    authentication". Spec: RFC 5802 §5, RFC 9051 §6.2.2."""
    config = mbsync_config(server, OI_USER, tmp_path / "scram", auth="SCRAM-SHA-256")
    result = mbsync(config)
    assert "SASL" not in result.stderr, result.stderr


# -- offlineimap -----------------------------------------------------------------------------


def fingerprint(server: PostelServer) -> str:
    """SHA-256 of the server certificate (DER), hex: offlineimap's ``cert_fingerprint``."""
    der = ssl.PEM_cert_to_DER_cert(cert_file(server).read_text())
    return hashlib.sha256(der).hexdigest()


def offlineimap_config(server: PostelServer, user: str, base: Path) -> Path:
    """An offlineimap config syncing ``user``'s INBOX and Archive into ``base/mail``."""
    base.mkdir(parents=True, exist_ok=True)
    config = base / "offlineimaprc"
    config.write_text(
        f"""[general]
accounts = postel
metadata = {base}/meta
ui = basic

[Account postel]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {base}/mail

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {server.imaps_port}
ssl = yes
cert_fingerprint = {fingerprint(server)}
remoteuser = {user}
remotepass = {PASSWORD}
folderfilter = lambda name: name in ["INBOX", "Archive"]
maxconnections = 1
"""
    )
    return config


def offlineimap(config: Path) -> subprocess.CompletedProcess[str]:
    """One offlineimap run (``-o``: once); asserts it exits 0 without an ERROR."""
    result = subprocess.run(
        ["offlineimap", "-c", str(config), "-o", "-u", "basic"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "ERROR" not in output, output[-4000:]
    return result


def test_offlineimap_and_mbsync_see_each_others_flags(
    server: PostelServer, oi_sent: dict[str, bytes], tmp_path: Path
) -> None:
    base = tmp_path / "offlineimap"
    oi_config = offlineimap_config(server, OI_USER, base)
    offlineimap(oi_config)
    inbox = base / "mail" / "INBOX"
    pulled = maildir(inbox)
    assert len(pulled) == OI_COUNT
    for mid, content in oi_sent.items():
        assert strip_trace(as_sent(pulled[mid].content)) == content, mid

    mb_local = tmp_path / "mbsync"
    mb_config = mbsync_config(server, OI_USER, mb_local)
    mbsync(mb_config)
    assert len(maildir(mb_local / "INBOX")) == OI_COUNT

    ids = sorted(oi_sent)
    # offlineimap -> server -> mbsync: \Flagged and \Seen.
    pulled[ids[0]].with_flags("FS")
    offlineimap(oi_config)
    assert server_flags(server, OI_USER)[ids[0]] == {"\\Flagged", "\\Seen"}
    mbsync(mb_config)
    assert maildir(mb_local / "INBOX")[ids[0]].flags == "FS"

    # mbsync -> server -> offlineimap: \Answered, and a deletion.
    mb_msgs = maildir(mb_local / "INBOX")
    mb_msgs[ids[1]].with_flags("RS")
    mb_msgs[ids[2]].with_flags("T")
    mbsync(mb_config)
    flags = server_flags(server, OI_USER)
    assert flags[ids[1]] == {"\\Answered", "\\Seen"} and ids[2] not in flags
    offlineimap(oi_config)
    seen_by_oi = maildir(inbox)
    assert seen_by_oi[ids[1]].flags == "RS"
    assert ids[2] not in seen_by_oi

    # A local message from offlineimap is uploaded and reaches mbsync.
    local_msg = message("oi-local", 1).replace(b"\r\n", b"\n")
    drop_new(inbox, "1700000001.oilocal.client", local_msg)
    offlineimap(oi_config)
    _assert_uploaded(server, OI_USER, "INBOX", [as_crlf(local_msg)])
    mbsync(mb_config)
    assert as_sent(maildir(mb_local / "INBOX")[_message_id(local_msg)].content) == as_crlf(
        local_msg
    )

    # A second offlineimap run changes nothing on the server.
    before = server_state(server, OI_USER)
    offlineimap(oi_config)
    assert server_state(server, OI_USER) == before


def test_imaplib_sees_500_messages_in_one_fetch(
    server: PostelServer, mb_sent: dict[str, bytes]
) -> None:
    """A bulk FETCH of every message's UID and RFC822.SIZE answers for all of them."""
    client = imaps(server, MB_USER)
    try:
        count = int(ok(client.select("INBOX", readonly=True))[0])
        data = ok(client.fetch("1:*", "(UID RFC822.SIZE)"))
        assert len(data) == count >= len(mb_sent) - 2
    except imaplib.IMAP4.error as exc:
        pytest.fail(str(exc))
    finally:
        client.logout()
