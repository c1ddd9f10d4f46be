"""The email corpus through a running postel over SMTP: stored byte-exact after the trace
fields postel adds (Return-Path, Delivered-To, Received), with smtplib and with swaks;
transparency (dot-stuffing) round-trips; bare line ends are normalised or refused.

Spec: RFC 5321 §4.1.1.4 (DATA), §4.4 (trace fields), §4.5.2 (transparency);
RELIABILITY.md D4.
"""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .corpus import CorpusMessage, corpus_names, dot_stuff, load
from .rawsmtp import RawSmtp
from .server import PostelServer
from .stored import find_queued, queue_id_of, read_inbox, stored_once

DOMAIN = "example.test"
RCPT = f"alice@{DOMAIN}"
SENDER = "sender@remote.test"
SWAKS = "/usr/bin/swaks"
SWAKS_SAMPLE = 10
"""Corpus messages also sent with swaks (evenly spread over the corpus)."""

NAMES = corpus_names()
pytestmark = pytest.mark.skipif(not NAMES, reason="email corpus not present")


@pytest.fixture(scope="module")
def mx(module_servers: ServerFactory) -> PostelServer:
    server = module_servers("corpus")
    server.add_accounts(DOMAIN, "alice")
    server.start()
    return server


@pytest.fixture(scope="module")
def strict_mx(module_servers: ServerFactory) -> PostelServer:
    server = module_servers("strict", bare_line_endings="strict")
    server.add_accounts(DOMAIN, "alice")
    server.start()
    return server


def send_smtplib(server: PostelServer, content: bytes) -> str:
    """Send ``content`` with smtplib (which dot-stuffs); returns the queue id."""
    options = ["BODY=8BITMIME"] if any(b > 0x7F for b in content) else []
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.ehlo("client.test")
        code, text = client.mail(SENDER, options)
        assert code == 250, text
        code, text = client.rcpt(RCPT)
        assert code == 250, text
        code, text = client.data(content)
        assert code == 250, text
    return queue_id_of(text)


@pytest.mark.parametrize("name", NAMES)
def test_corpus_message_stored_byte_exact(mx: PostelServer, name: str) -> None:
    message = load(name)
    queue_id = send_smtplib(mx, message.content)
    assert stored_once(mx, RCPT, queue_id) == message.content


def _swaks_sample() -> list[str]:
    step = max(1, len(NAMES) // SWAKS_SAMPLE)
    sample = NAMES[::step][:SWAKS_SAMPLE]
    # make sure the sample has a message with leading dots and one without final CRLF
    for extra in ("crymap/enron_scholtes-d_transmission_29.eml",):
        if extra in NAMES and extra not in sample:
            sample[-1] = extra
    return sample


def send_swaks(server: PostelServer, message: CorpusMessage, tmp: Path) -> str:
    """Send with swaks, data raw: ``--no-data-fixup`` turns off swaks' token expansion,
    header additions, From_ stripping and dot handling, and swaks appends only CRLF to
    the file, so the file holds the dot-stuffed content and the final ``.``."""
    data = tmp / "data.eml"
    data.write_bytes(dot_stuff(message.content) + b".")
    run = subprocess.run(
        [
            SWAKS,
            "--server",
            f"127.0.0.1:{server.smtp_port}",
            "--ehlo",
            "client.test",
            "--from",
            SENDER,
            "--to",
            RCPT,
            "--data",
            f"@{data}",
            "--no-data-fixup",
            "--suppress-data",
            "--timeout",
            "30",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout.decode(errors="replace")
    replies = [line for line in run.stdout.splitlines() if b"queued as" in line]
    assert replies, run.stdout.decode(errors="replace")
    return queue_id_of(replies[-1])


@pytest.mark.skipif(not Path(SWAKS).exists(), reason="swaks not installed")
@pytest.mark.parametrize("name", _swaks_sample() if NAMES else [])
def test_swaks_sample_stored_byte_exact(mx: PostelServer, name: str, tmp_path: Path) -> None:
    message = load(name)
    queue_id = send_swaks(mx, message, tmp_path)
    assert stored_once(mx, RCPT, queue_id) == message.content


DOTS = (
    b"Subject: dots\r\n"
    b"\r\n"
    b".\r\n"
    b"..\r\n"
    b"...\r\n"
    b".leading dot\r\n"
    b"..two leading dots\r\n"
    b". \r\n"
    b"middle . dot\r\n"
    b".\r\n"
)


def test_dot_stuffing_round_trips_with_smtplib(mx: PostelServer) -> None:
    queue_id = send_smtplib(mx, DOTS)
    assert stored_once(mx, RCPT, queue_id) == DOTS


@pytest.mark.parametrize(
    "content",
    [DOTS, b".first line starts with a dot\r\nSubject: x\r\n\r\nbody\r\n"],
    ids=["body-dots", "first-line-dot"],
)
def test_dot_stuffing_round_trips_raw(mx: PostelServer, content: bytes) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        reply = client.transaction(SENDER, [RCPT], dot_stuff(content) + b".\r\n")
        assert reply.code == 250, reply
        client.command("QUIT")
    assert stored_once(mx, RCPT, queue_id_of(reply.text)) == content


BARE = b"Subject: bare line ends\n\nbare LF\nbare CR\rCR LF\r\nlast\n\r\n"
BARE_NORMALISED = b"Subject: bare line ends\r\n\r\nbare LF\r\nbare CR\r\nCR LF\r\nlast\r\n\r\n"


def test_bare_line_ends_are_normalised_by_default(mx: PostelServer) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        reply = client.transaction(SENDER, [RCPT], BARE + b".\r\n")
        assert reply.code == 250, reply
    assert stored_once(mx, RCPT, queue_id_of(reply.text)) == BARE_NORMALISED


def test_bare_line_ends_are_refused_in_strict_mode(strict_mx: PostelServer) -> None:
    with RawSmtp(strict_mx.address) as client:
        client.greet()
        reply = client.transaction(SENDER, [RCPT], BARE + b".\r\n")
        assert 500 <= reply.code < 600, reply
        assert reply.text.startswith(b"5.5.2"), reply
        # the session goes on: a clean message is accepted afterwards
        clean = client.transaction(SENDER, [RCPT], b"Subject: clean\r\n\r\nok\r\n.\r\n")
        assert clean.code == 250, clean
    assert len(find_queued(strict_mx, RCPT, queue_id_of(clean.text))) == 1
    assert _inbox_size(strict_mx) == 1, "the refused message was stored"


def _inbox_size(server: PostelServer) -> int:
    return len(read_inbox(server, RCPT))
