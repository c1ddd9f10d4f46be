"""Real POP3 clients against postel's POP3 server: Debian's fetchmail and getmail6 pull
a 300-message maildrop over POP3S (995, the server's certificate trusted and checked)
byte-exact, leave it in place with ``keep`` (a second run downloads nothing new:
fetchmail's UIDL list, getmail's oldmail file), and empty it when told to delete
(checked over IMAP STATUS).

Messages arrive over SMTP, so each begins with postel's trace fields (Return-Path,
Delivered-To, Received), split off before comparing with what was sent. fetchmail adds a
Received field of its own after Delivered-To and delivers CRLF lines to its MDA
(``no stripcr``); getmail's Maildir stores LF line ends, undone before comparing.

Spec: RFC 1939 §7 (UIDL, TOP, RETR, DELE); RFC 8314 §3 (implicit TLS).
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_accounts, cert_file, message, smtp_send
from .pop3_helpers import inbox_status
from .server import HOSTNAME, PostelServer
from .stored import split_trace, strip_trace

FM_USER = f"fm@{DOMAIN}"
GM_USER = f"gm@{DOMAIN}"
COUNT = 300
"""Messages in each maildrop."""
TOOL_TIMEOUT = 120
"""Seconds one run of a tool may take."""
NOBODY = 65534
"""getmail refuses to deliver to a Maildir as root: as root it delivers as nobody."""
GETMAIL_PYTHON = "/usr/bin/python3"
"""The interpreter Debian's getmail runs with (its modules are in dist-packages)."""
GETMAIL_REAPER = Path(__file__).with_name("getmail_reaper.py")
"""getmail with its delivery children reaped race-free (see that file)."""

pytestmark = pytest.mark.skipif(
    shutil.which("fetchmail") is None or shutil.which("getmail") is None,
    reason="needs Debian's fetchmail and getmail6",
)


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("pop3-tools")
    add_accounts(srv, FM_USER, GM_USER)
    srv.start()
    yield srv
    assert srv.stop() == 0


def _content(tag: str, n: int) -> bytes:
    filler = "".join(f"line {i} of message {n}\r\n" for i in range(n % 17))
    return message(tag, n, f".dot line\r\n..two dots\r\n.\r\n{filler}bye")


def _deliver(server: PostelServer, user: str, tag: str) -> dict[str, bytes]:
    """COUNT messages sent to ``user`` over SMTP, by Message-ID."""
    sent = [_content(tag, n) for n in range(COUNT)]
    smtp_send(server, user, sent)
    return {_message_id(content): content for content in sent}


def _message_id(content: bytes) -> str:
    parsed = email.parser.BytesHeaderParser().parsebytes(content)
    return str(parsed["Message-ID"]).strip()


def _by_id(contents: list[bytes]) -> dict[str, bytes]:
    found = {_message_id(content): content for content in contents}
    assert len(found) == len(contents), "a message was delivered twice"
    return found


# -- fetchmail ----------------------------------------------------------------------------


def _strip_fetchmail(delivered: bytes) -> bytes:
    """``delivered`` without fetchmail's Received field (the first one naming
    fetchmail, among the first four fields) and postel's trace fields."""
    split = split_trace(delivered, 4)
    assert split is not None, delivered[:300]
    fields, rest = split
    ours = [raw for name, raw in fields if name == "received" and b"fetchmail" in raw]
    assert len(ours) == 1, fields
    kept = b"".join(raw for _, raw in fields if raw is not ours[0])
    return strip_trace(kept + rest)


def _fetchmail(server: PostelServer, work: Path, *, keep: bool) -> list[bytes]:
    """One fetchmail run over 995 with an MDA writing one file per message (CRLF
    kept), UIDL tracking in ``work/ids``; returns the messages it delivered."""
    out = work / f"out-{len(list(work.glob('out-*')))}"
    out.mkdir()
    rc = work / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll 127.0.0.1 service {server.pop3s_port} protocol pop3 uidl\n"
        f'  user "{FM_USER}" there with password "{PASSWORD}"\n'
        f'  ssl sslcertck sslcertfile "{cert_file(server)}" sslcommonname "{HOSTNAME}"\n'
        f"  {'keep' if keep else 'no keep fetchall'} no stripcr\n"
        f'  mda "cat > $(mktemp {out}/m.XXXXXXXX)"\n'
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "-i", str(work / "ids"), "--nodetach"],
        env={**os.environ, "HOME": str(work), "FETCHMAILHOME": str(work)},
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    # 0: mail delivered; 1: no new mail (fetchmail(1), EXIT CODES).
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return [path.read_bytes() for path in sorted(out.iterdir())]


def test_fetchmail_keep_then_delete(server: PostelServer, tmp_path: Path) -> None:
    sent = _deliver(server, FM_USER, "fm")
    first = _by_id([_strip_fetchmail(got) for got in _fetchmail(server, tmp_path, keep=True)])
    assert first == sent
    assert inbox_status(server, FM_USER)[0] == COUNT
    assert len((tmp_path / "ids").read_text().splitlines()) == COUNT
    assert _fetchmail(server, tmp_path, keep=True) == []  # nothing new by UIDL
    assert inbox_status(server, FM_USER)[0] == COUNT
    again = _by_id([_strip_fetchmail(got) for got in _fetchmail(server, tmp_path, keep=False)])
    assert again == sent
    assert inbox_status(server, FM_USER)[0] == 0


# -- getmail ------------------------------------------------------------------------------


@pytest.fixture
def maildir() -> Iterator[Path]:
    """An empty Maildir the delivering user may write (outside pytest's 0700 tree when
    that user is nobody)."""
    path = Path(tempfile.mkdtemp(prefix="postel-getmail-"))
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir()
    if os.geteuid() == 0:
        for entry in (path, *path.iterdir()):
            os.chown(entry, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path)


def _getmail(server: PostelServer, home: Path, maildir: Path, *, delete: bool) -> list[bytes]:
    """One getmail run (SimplePOP3SSLRetriever, certificate checked, Maildir
    destination without getmail's own Delivered-To/Received) through GETMAIL_REAPER;
    returns the messages it added to ``maildir``/new, with CRLF line ends restored."""
    before = set((maildir / "new").iterdir())
    user = "user = nobody\n" if os.geteuid() == 0 else ""
    (home / "getmailrc").write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        f"server = 127.0.0.1\nport = {server.pop3s_port}\n"
        f"username = {GM_USER}\npassword = {PASSWORD}\n"
        f"ca_certs = {cert_file(server)}\nssl_cert_hostname = {HOSTNAME}\n"
        f"\n[destination]\ntype = Maildir\npath = {maildir}/\n{user}"
        "\n[options]\nverbose = 0\n"
        f"read_all = {'true' if delete else 'false'}\n"
        f"delete = {'true' if delete else 'false'}\n"
        "delivered_to = false\nreceived = false\n"
    )
    result = subprocess.run(
        [GETMAIL_PYTHON, str(GETMAIL_REAPER), "--getmaildir", str(home), "--rcfile", "getmailrc"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    added = sorted(set((maildir / "new").iterdir()) - before)
    return [path.read_bytes().replace(b"\n", b"\r\n") for path in added]


def test_getmail_keep_then_delete(server: PostelServer, tmp_path: Path, maildir: Path) -> None:
    sent = _deliver(server, GM_USER, "gm")
    first = _by_id([strip_trace(got) for got in _getmail(server, tmp_path, maildir, delete=False)])
    assert first == sent
    assert inbox_status(server, GM_USER)[0] == COUNT
    assert list(tmp_path.glob("oldmail-*")), "getmail kept no oldmail file"
    assert _getmail(server, tmp_path, maildir, delete=False) == []  # nothing new
    assert inbox_status(server, GM_USER)[0] == COUNT
    again = _by_id([strip_trace(got) for got in _getmail(server, tmp_path, maildir, delete=True)])
    assert again == sent
    assert inbox_status(server, GM_USER)[0] == 0
