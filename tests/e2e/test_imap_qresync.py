"""QRESYNC resynchronisation of a client that was offline while 1,000 changes happened
(flag changes, expunges, new mail over SMTP) on a 10,000-message mailbox, with
imapclient and with mbsync, against a real ``postel serve``.

imapclient: the client keeps (UIDVALIDITY, HIGHESTMODSEQ, UID -> flags), disconnects,
another connection makes the changes, the client comes back with SELECT (QRESYNC
(uidvalidity modseq known-uids)) and applies ``* VANISHED (EARLIER)`` and the FETCH
responses; its picture must equal the server's, read fresh. The same is done with UID
FETCH (CHANGEDSINCE n VANISHED) after a plain SELECT.

mbsync (isync 1.4.4, Debian) does not use CONDSTORE or QRESYNC: its binary holds
neither word. Its incremental sync downloads only messages above the UIDNEXT it saved
and reads the flags of the others with ``UID FETCH`` (UID FLAGS); the test shows from
its protocol trace that the second run fetched exactly the new messages' bodies and
that the Maildir then equals the server.

Spec: RFC 7162 §3.2.5 (SELECT QRESYNC), §3.2.5.1 (known-uids), §3.2.6 (VANISHED UID
FETCH modifier), §3.2.10 (VANISHED); RFC 3502 (MULTIAPPEND, used to fill the mailbox).
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

from .conftest import ServerFactory
from .imap_helpers import (
    DOMAIN,
    PASSWORD,
    add_accounts,
    cert_file,
    imapclient_tls,
    message,
    smtp_send,
)
from .imap_raw import RawImap
from .server import PostelServer

USER = f"qresync@{DOMAIN}"
MB_USER = f"qresync-mb@{DOMAIN}"
MESSAGES = 10_000
"""Messages in the mailbox before the client goes offline."""
CHANGES = 1_000
"""Changes made while it is offline."""
APPEND_BATCH = 1_000
"""Messages per MULTIAPPEND command when filling the mailbox."""
FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft")
"""Flags the changes set and clear (the ones a Maildir can hold too)."""
KEYWORD = "$Label1"
RECENT = b"\\Recent"
TOOL_TIMEOUT = 120

Snapshot = dict[int, frozenset[str]]
"""UID -> flags (``\\Recent`` left out)."""


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("imap-qresync")
    add_accounts(srv, USER, MB_USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def fill(server: PostelServer, user: str, count: int, tag: str) -> None:
    """Put ``count`` small messages into ``user``'s INBOX with MULTIAPPEND (LITERAL+),
    APPEND_BATCH per command."""
    raw = RawImap.tls(server.imaps_port, timeout=120)
    try:
        raw.login(user, PASSWORD)
        for start in range(0, count, APPEND_BATCH):
            parts = [b"APPEND INBOX"]
            for n in range(start, min(start + APPEND_BATCH, count)):
                body = message(tag, n)
                parts.append(b" {%d+}\r\n" % len(body) + body)
            done = raw.command(b"".join(parts))
            assert done.status == "OK", done.tagged
    finally:
        raw.close()


def _flags(items: object) -> frozenset[str]:
    assert isinstance(items, tuple)
    return frozenset(f.decode() for f in items if f != RECENT)


def server_state(server: PostelServer, user: str) -> tuple[int, int, Snapshot]:
    """(UIDVALIDITY, HIGHESTMODSEQ, UID -> flags) read fresh with EXAMINE."""
    client = imapclient_tls(server, user)
    try:
        selected = client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["FLAGS"])
        state = {int(uid): _flags(d[b"FLAGS"]) for uid, d in fetched.items()}
        return int(selected[b"UIDVALIDITY"]), int(selected[b"HIGHESTMODSEQ"]), state
    finally:
        client.logout()


@dataclass(slots=True)
class Applied:
    """What the offline changes did: counts of each kind."""

    flag_changes: int = 0
    expunged: int = 0
    delivered: int = 0


def make_changes(
    server: PostelServer, user: str, uids: list[int], rng: random.Random, *, keyword: bool
) -> Applied:
    """CHANGES random changes from another connection: flag changes (single UID
    STOREs), expunges (batches of \\Deleted + UID EXPUNGE) and deliveries over SMTP."""
    done = Applied()
    flags = (*FLAGS, KEYWORD) if keyword else FLAGS
    live = list(uids)
    kinds = ["flags"] * 600 + ["expunge"] * 250 + ["deliver"] * 150
    rng.shuffle(kinds)
    to_expunge: list[int] = []
    to_deliver: list[bytes] = []
    raw = RawImap.tls(server.imaps_port, timeout=60)
    raw.login(user, PASSWORD)
    assert raw.command("SELECT INBOX").status == "OK"
    for kind in kinds:
        if kind == "flags":
            uid = rng.choice(live)
            mode = rng.choice(["+FLAGS", "-FLAGS", "FLAGS"])
            chosen = " ".join(rng.sample(flags, rng.randint(1, 2)))
            assert raw.command(f"UID STORE {uid} {mode}.SILENT ({chosen})").status == "OK"
            done.flag_changes += 1
        elif kind == "expunge":
            uid = live.pop(rng.randrange(len(live)))
            to_expunge.append(uid)
            done.expunged += 1
        else:
            to_deliver.append(message("late", done.delivered + len(to_deliver)))
        if len(to_expunge) >= 50:
            _expunge(raw, to_expunge)
        if len(to_deliver) >= 30:
            done.delivered += len(smtp_send(server, user, to_deliver))
            to_deliver = []
    _expunge(raw, to_expunge)
    if to_deliver:
        done.delivered += len(smtp_send(server, user, to_deliver))
    raw.command("LOGOUT")
    raw.close()
    assert done.flag_changes + done.expunged + done.delivered == CHANGES
    return done


def _expunge(raw: RawImap, uids: list[int]) -> None:
    if not uids:
        return
    uid_set = ",".join(str(u) for u in uids)
    assert raw.command(f"UID STORE {uid_set} +FLAGS.SILENT (\\Deleted)").status == "OK"
    assert raw.command(f"UID EXPUNGE {uid_set}").status == "OK"
    uids.clear()


def uid_set_members(text: bytes) -> set[int]:
    """The UIDs of a uid-set such as ``3:5,9``."""
    out: set[int] = set()
    for part in text.decode().split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out.update(range(min(a, b), max(a, b) + 1))
    return out


def apply_resync(snapshot: Snapshot, untagged: dict[str, list[bytes]]) -> tuple[Snapshot, int]:
    """The client's picture after VANISHED (EARLIER) and FETCH responses (imaplib's
    untagged data, parsed with imapclient's FETCH parser); and how many UIDs vanished."""
    after = dict(snapshot)
    gone: set[int] = set()
    for line in untagged.get("VANISHED", []):
        assert line.startswith(b"(EARLIER) "), line
        gone |= uid_set_members(line.split(b" ", 1)[1])
    for uid in gone:
        after.pop(uid, None)
    fetched = parse_fetch_response(untagged.get("FETCH", []), uid_is_key=True)
    for uid, data in fetched.items():
        assert b"MODSEQ" in data, data
        after[int(uid)] = _flags(data[b"FLAGS"])
    return after, len(gone)


def test_qresync_after_1000_offline_changes_on_10000_messages(server: PostelServer) -> None:
    started = time.monotonic()
    fill(server, USER, MESSAGES, "q")
    filled = time.monotonic()

    client = imapclient_tls(server, USER)
    assert b"QRESYNC" in client.capabilities()
    client.enable("QRESYNC")
    selected = client.select_folder("INBOX")
    validity, modseq = int(selected[b"UIDVALIDITY"]), int(selected[b"HIGHESTMODSEQ"])
    fetched = client.fetch(client.search("ALL"), ["FLAGS"])
    snapshot = {int(uid): _flags(d[b"FLAGS"]) for uid, d in fetched.items()}
    assert len(snapshot) == MESSAGES
    client.logout()

    applied = make_changes(server, USER, sorted(snapshot), random.Random(7162), keyword=True)
    changed = time.monotonic()

    # Back online: SELECT (QRESYNC (uidvalidity modseq known-uids)).
    client = imapclient_tls(server, USER)
    client.enable("QRESYNC")
    imap = client._imap
    known = f"1:{max(snapshot)}"
    typ, _ = imap.select(f"INBOX (QRESYNC ({validity} {modseq} {known}))")
    assert typ == "OK"
    untagged = {k: list(v) for k, v in imap.untagged_responses.items()}
    after, vanished = apply_resync(snapshot, untagged)
    new_modseq = client._process_select_response(imap.untagged_responses)[b"HIGHESTMODSEQ"]
    client.logout()

    fresh_validity, fresh_modseq, fresh = server_state(server, USER)
    assert fresh_validity == validity
    assert int(new_modseq) == fresh_modseq > modseq
    assert vanished == applied.expunged
    assert len(fresh) == MESSAGES - applied.expunged + applied.delivered
    assert after == fresh
    # A resynchronisation sends what changed, not the whole mailbox.
    assert len(untagged.get("FETCH", [])) < 2 * CHANGES
    print(
        f"fill {filled - started:.1f}s, changes {changed - filled:.1f}s, "
        f"resync+check {time.monotonic() - changed:.1f}s"
    )


def test_uid_fetch_changedsince_vanished_after_plain_select(server: PostelServer) -> None:
    """The same client picture through UID FETCH 1:* (FLAGS) (CHANGEDSINCE n VANISHED)
    after a SELECT without parameters. Spec: RFC 7162 §3.2.6."""
    _, modseq, snapshot = server_state(server, USER)
    applied = make_changes(server, USER, sorted(snapshot), random.Random(2), keyword=False)
    client = imapclient_tls(server, USER)
    client.enable("QRESYNC")
    client.select_folder("INBOX")
    imap = client._imap
    imap.untagged_responses.clear()
    typ, data = imap.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert typ == "OK"
    untagged = {k: list(v) for k, v in imap.untagged_responses.items()}
    untagged["FETCH"] = [d for d in data if d is not None]
    after, vanished = apply_resync(snapshot, untagged)
    client.logout()
    _, _, fresh = server_state(server, USER)
    assert vanished == applied.expunged
    assert after == fresh


# -- mbsync ----------------------------------------------------------------------------


def mbsync_config(server: PostelServer, user: str, local: Path) -> Path:
    """An mbsync config syncing ``user``'s INBOX with Maildir ``local``."""
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
AuthMechs LOGIN
PipelineDepth 50

IMAPStore remote
Account postel

MaildirStore local
Path {local}/
Inbox {local}/INBOX

Channel sync
Far :remote:INBOX
Near :local:INBOX
Create Both
Remove None
Expunge Both
Sync All
SyncState *
"""
    )
    return config


def mbsync(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["mbsync", *extra, "-c", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


MAILDIR_FLAGS = {"S": "\\Seen", "F": "\\Flagged", "R": "\\Answered", "D": "\\Draft"}
_MID = re.compile(rb"^Message-ID: *(<[^>]+>)", re.MULTILINE | re.IGNORECASE)
_BODY_FETCH = re.compile(r"UID FETCH (\d+) \([^)]*BODY\.PEEK\[\]")


def maildir_state(folder: Path) -> dict[str, frozenset[str]]:
    """Message-ID -> flags of every message of Maildir ``folder``."""
    out: dict[str, frozenset[str]] = {}
    for sub in ("cur", "new"):
        for path in (folder / sub).iterdir():
            letters = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            found = _MID.search(path.read_bytes())
            assert found is not None, path
            out[found.group(1).decode()] = frozenset(
                MAILDIR_FLAGS[c] for c in letters if c in MAILDIR_FLAGS
            )
    return out


def server_by_message_id(server: PostelServer, user: str) -> dict[str, frozenset[str]]:
    client = imapclient_tls(server, user)
    try:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(
            client.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        )
        out = {}
        for data in fetched.values():
            header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
            found = _MID.search(header)
            assert found is not None, header
            out[found.group(1).decode()] = _flags(data[b"FLAGS"]) & frozenset(FLAGS)
        return out
    finally:
        client.logout()


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="needs Debian's isync")
def test_mbsync_incremental_sync_after_1000_changes(server: PostelServer, tmp_path: Path) -> None:
    fill(server, MB_USER, MESSAGES, "mb")
    config = mbsync_config(server, MB_USER, tmp_path / "mbsync")
    mbsync(config)
    assert maildir_state(tmp_path / "mbsync" / "INBOX") == server_by_message_id(server, MB_USER)

    client: IMAPClient = imapclient_tls(server, MB_USER)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search("ALL"))
    client.logout()
    applied = make_changes(server, MB_USER, uids, random.Random(4551), keyword=False)

    second = mbsync(config, "-Dn")
    pulled = {int(u) for u in _BODY_FETCH.findall(second.stdout)}
    assert len(pulled) == applied.delivered, sorted(pulled)[:20]
    assert min(pulled) > max(uids)  # only messages above the saved UIDNEXT
    assert maildir_state(tmp_path / "mbsync" / "INBOX") == server_by_message_id(server, MB_USER)
