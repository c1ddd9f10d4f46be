"""CATENATE, URLAUTH, NOTIFY and COMPRESS=DEFLATE against a real ``postel serve``,
over raw sockets (imaplib knows none of them): the compressed session wraps the TLS
socket in raw deflate as RFC 4978 describes.

Spec: RFC 4469 §5; RFC 4467 §6; RFC 5465 §3, §5; RFC 4978 §3, §4.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .imap_helpers import DOMAIN, PASSWORD, add_accounts
from .imap_raw import RawImap
from .server import PostelServer

ALICE = f"ext-alice@{DOMAIN}"
BOB = f"ext-bob@{DOMAIN}"
MESSAGE = b"From: a@example.test\r\nSubject: hello\r\n\r\nbody text\r\n"


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers("ext")
    srv.start()
    add_accounts(srv, ALICE, BOB)
    yield srv


def _session(server: PostelServer, user: str = ALICE) -> RawImap:
    client = RawImap.tls(server.imaps_port)
    client.login(user, PASSWORD)
    return client


class _DeflateSocket:
    """A TLS socket carrying raw deflate both ways (RFC 4978 §4)."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.compressed_in = 0

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, n: int) -> bytes:
        while True:
            chunk = self.sock.recv(n)
            if not chunk:
                return b""
            self.compressed_in += len(chunk)
            out = self.inflate.decompress(chunk)
            if out:
                return out

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def close(self) -> None:
        self.sock.close()


def _compressed(server: PostelServer) -> tuple[RawImap, _DeflateSocket]:
    client = _session(server)
    done = client.command("COMPRESS DEFLATE")
    assert done.status == "OK", done
    assert not client.buffer
    wrapper = _DeflateSocket(client.sock)
    client.sock = wrapper  # type: ignore[assignment]
    return client, wrapper


def test_compress_deflate_session(server: PostelServer) -> None:
    client, wrapper = _compressed(server)
    with client:
        assert client.command("CREATE ziptest").status == "OK"
        for _ in range(20):
            assert client.append("ziptest", MESSAGE * 50).status == "OK"
        assert client.command("SELECT ziptest").status == "OK"
        done = client.command("FETCH 1:* BODY.PEEK[]")
        assert done.status == "OK"
        assert len(done.untagged) == 20
        assert all(line.count(b"body text") == 50 for line in done.untagged)
        assert wrapper.compressed_in < 20 * len(MESSAGE) * 50 // 4  # it did compress
        again = client.command("COMPRESS DEFLATE")
        assert again.status == "NO" and b"[COMPRESSIONACTIVE]" in again.tagged
        assert client.command("LOGOUT").status == "OK"


def test_compress_refuses_unknown_algorithm(server: PostelServer) -> None:
    with _session(server) as client:
        assert b"COMPRESS=DEFLATE" in client.command("CAPABILITY").untagged[0]
        assert client.command("COMPRESS LZW").status == "NO"
        assert client.command("NOOP").status == "OK"  # still uncompressed


def test_compress_bomb_is_bounded_by_line_limit(server: PostelServer) -> None:
    """64 MiB of one octet inflate from ~64 KiB: the server inflates it step by step
    into the core, which refuses the over-long line; the session stays usable."""
    client, wrapper = _compressed(server)
    with client:
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        tag = client.tag()
        payload = bomb.compress(tag.encode() + b" NOOP " + b"x" * (64 * 1024 * 1024))
        payload += bomb.compress(b"\r\n") + bomb.flush(zlib.Z_SYNC_FLUSH)
        wrapper.deflate = bomb  # the stream goes on from the bomb's compressor state
        wrapper.send_raw(payload)
        done = client.until_tagged(tag)
        assert done.status == "BAD"
        assert client.command("NOOP").status == "OK"


def test_catenate_with_url_and_text(server: PostelServer) -> None:
    with _session(server) as client:
        assert client.command("CREATE cat").status == "OK"
        assert client.append("cat", MESSAGE).status == "OK"
        text = b"\r\nsuffix\r\n"
        head = b'APPEND cat CATENATE (URL "/cat/;uid=1/;section=HEADER" TEXT {%d+}\r\n' % len(text)
        done = client.command(head + text + b")")
        assert done.status == "OK", done
        assert b"[APPENDUID" in done.tagged
        for url in (
            b"/cat/;uid=99",
            b"/cat/;uid=4294967296",
            b"/cat/;uid=1/;partial=0.4294967296",
            b"/cat/;uid=1/;section=2",  # a one-part message: no part 2 (RFC 4469 §5)
            b"/cat/;uid=1/;section=1.HEADER",  # part 1 is not a message/rfc822
        ):
            bad = client.command(b'APPEND cat CATENATE (URL "%s")' % url)
            assert bad.status == "NO" and b"[BADURL " + url + b"]" in bad.tagged, bad
        assert client.command("SELECT cat").status == "OK"
        fetched = client.command("FETCH 2 BODY.PEEK[]").untagged[0]
        assert fetched.endswith(b"Subject: hello\r\n\r\n\r\nsuffix\r\n)")


def test_urlauth_between_users(server: PostelServer) -> None:
    with _session(server) as alice, _session(server, BOB) as bob:
        assert alice.append("INBOX", MESSAGE).status == "OK"
        uid = re.search(rb"APPENDUID \d+ (\d+)", alice.append("INBOX", MESSAGE).tagged)
        assert uid is not None
        user = ALICE.replace("@", "%40")
        rump = f"imap://{user}@{DOMAIN}/INBOX/;uid={uid.group(1).decode()};urlauth=authuser"
        gen = alice.command(f'GENURLAUTH "{rump}" INTERNAL')
        assert gen.status == "OK"
        url = re.search(rb'GENURLAUTH "?([^" ]+)"?$', gen.untagged[0])
        assert url is not None and url.group(1).startswith(rump.encode() + b":internal:")
        fetched = bob.command(b'URLFETCH "' + url.group(1) + b'"')
        assert fetched.status == "OK" and fetched.untagged[0].endswith(MESSAGE)
        forged = url.group(1)[:-4] + b"0000"
        assert bob.command(b'URLFETCH "' + forged + b'"').untagged[0].endswith(b" NIL")
        assert bob.command(f'GENURLAUTH "{rump}" INTERNAL').status == "NO"  # not his
        beyond = rump.replace(f";uid={uid.group(1).decode()};", ";uid=4294967296;")
        assert alice.command(f'GENURLAUTH "{beyond}" INTERNAL').status in ("NO", "BAD")
        assert bob.command("CREATE fromalice").status == "OK"
        part = b'APPEND fromalice CATENATE (URL "' + url.group(1) + b'")'
        assert bob.command(part).status == "OK"  # a URLAUTH URL as a CATENATE part
        assert alice.command("RESETKEY").status == "OK"
        assert bob.command(b'URLFETCH "' + url.group(1) + b'"').untagged[0].endswith(b" NIL")


def test_notify_status_on_new_message(server: PostelServer) -> None:
    with _session(server) as watcher, _session(server) as writer:
        assert watcher.command("CREATE watched").status == "OK"
        done = watcher.command("NOTIFY SET STATUS (mailboxes watched (MessageNew MessageExpunge))")
        assert done.status == "OK" and done.untagged[0].startswith(b"* STATUS watched")
        assert writer.append("watched", MESSAGE).status == "OK"
        watcher.settimeout(5)
        line = watcher.response()  # sent between commands, unasked
        assert line.startswith(b"* STATUS watched (MESSAGES 1 UIDNEXT 2")
        bad = watcher.command("NOTIFY SET (personal (AnnotationChange))")
        assert bad.status == "NO" and b"[BADEVENT" in bad.tagged
        assert watcher.command("NOTIFY NONE").status == "OK"
        assert writer.append("watched", MESSAGE).status == "OK"
        time.sleep(0.5)
        assert watcher.command("NOOP").untagged == ()


@pytest.mark.skipif(shutil.which("offlineimap") is None, reason="needs offlineimap3")
def test_offlineimap_with_compression(server: PostelServer, tmp_path: Path) -> None:
    """offlineimap3 with ``usecompression = yes`` pulls INBOX over COMPRESS=DEFLATE (its
    debug trace shows the command and the OK)."""
    from .test_imap_sync_tools import offlineimap_config

    user = f"ext-oi@{DOMAIN}"
    add_accounts(server, user)
    with _session(server, user) as client:
        for n in range(5):
            body = b"Subject: oi %d\r\nMessage-ID: <oi%d@example.test>\r\n\r\n" % (n, n)
            assert client.append("INBOX", body + b"line\r\n" * 200).status == "OK"
    config = offlineimap_config(server, user, tmp_path / "oi")
    config.write_text(config.read_text() + "usecompression = yes\n")
    result = subprocess.run(
        ["offlineimap", "-c", str(config), "-o", "-u", "basic", "-d", "imap"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "ERROR" not in output, output[-4000:]
    assert re.search(r"COMPRESS DEFLATE", output), output[-4000:]
    assert "DEFLATE active" in output, output[-4000:]
    pulled = list((tmp_path / "oi" / "mail" / "INBOX" / "cur").iterdir())
    pulled += list((tmp_path / "oi" / "mail" / "INBOX" / "new").iterdir())
    assert len(pulled) == 5
