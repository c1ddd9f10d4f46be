"""SMTP on the wire, over raw sockets: smuggling (RELIABILITY.md test 3), STARTTLS
injection (test 4), command line, size and recipient limits, timeouts, mail loops.

Spec: RFC 5321 §4.1.1.4, §4.5.2 (only <CRLF>.<CRLF> ends DATA), §4.5.3.1 (limits),
§4.5.3.2 (timeouts), §6.3 (loops); RFC 3207 §4.2 and CVE-2011-0411 (STARTTLS);
RFC 1870 (SIZE); RFC 3463 (enhanced codes); RELIABILITY.md D3, D4.
"""

from __future__ import annotations

import smtplib
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .rawsmtp import RawSmtp, Reply
from .server import PostelServer
from .stored import read_inbox

DOMAIN = "example.test"
RCPT = f"wire@{DOMAIN}"
SENDER = "sender@remote.test"
TIMEOUT = 2
"""command_timeout and data_timeout of the test servers, seconds."""
SIZE_MAX = 1_000_000
"""message_size_max of the test servers, octets."""


def _server(factory: ServerFactory, name: str, **smtp: object) -> PostelServer:
    server = factory(
        name,
        command_timeout=TIMEOUT,
        data_timeout=TIMEOUT,
        send_timeout=TIMEOUT,
        message_size_max=SIZE_MAX,
        **smtp,
    )
    server.add_accounts(DOMAIN, "wire", "twin", "author")
    server.start()
    return server


@pytest.fixture(scope="module")
def mx(module_servers: ServerFactory) -> PostelServer:
    return _server(module_servers, "wire")


@pytest.fixture(scope="module")
def strict_mx(module_servers: ServerFactory) -> PostelServer:
    return _server(module_servers, "wire-strict", bare_line_endings="strict")


def inbox_count(server: PostelServer) -> int:
    return len(read_inbox(server, RCPT))


def open_transaction(client: RawSmtp) -> None:
    client.greet()
    assert client.command(f"MAIL FROM:<{SENDER}>").code == 250
    assert client.command(f"RCPT TO:<{RCPT}>").code == 250
    assert client.command("DATA").code == 354


# -- smuggling (RELIABILITY.md test 3) ------------------------------------------------

SMUGGLING_VECTORS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.LF": b"\r.\n",
    "LF.CR": b"\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
    "CRCRLF.CRCRLF": b"\r\r\n.\r\r\n",
    "CRLF.NUL.CRLF": b"\r\n.\x00\r\n",
    "CRLF-NUL.CRLF": b"\r\n\x00.\r\n",
    "CRLF-SP.CRLF": b"\r\n .\r\n",
    "CRLF.SP-CRLF": b"\r\n. \r\n",
    "LF..LF": b"\n..\n",
}

SMUGGLED = (
    b"MAIL FROM:<smuggler@evil.test>\r\n"
    b"RCPT TO:<" + RCPT.encode() + b">\r\n"
    b"DATA\r\n"
    b"Subject: smuggled\r\n"
    b"\r\n"
    b"smuggled body\r\n"
)


@pytest.mark.parametrize("mode", ["normalize", "strict"])
@pytest.mark.parametrize("vector", list(SMUGGLING_VECTORS), ids=list(SMUGGLING_VECTORS))
def test_smuggling_never_makes_a_second_message(
    mx: PostelServer, strict_mx: PostelServer, vector: str, mode: str
) -> None:
    server = mx if mode == "normalize" else strict_mx
    before = inbox_count(server)
    with RawSmtp(server.address) as client:
        open_transaction(client)
        client.send(
            b"Subject: carrier\r\n\r\nfirst body"
            + SMUGGLING_VECTORS[vector]
            + SMUGGLED
            + b"\r\n.\r\nQUIT\r\n"
        )
        replies = client.replies_until_close()
    codes = [r.code for r in replies]
    # exactly one answer to the whole DATA, then QUIT's 221: the smuggled MAIL, RCPT and
    # DATA were content, never commands
    assert len(codes) == 2 and codes[1] == 221, [str(r) for r in replies]
    assert codes[0] == 250 or 500 <= codes[0] < 600, [str(r) for r in replies]
    stored = read_inbox(server, RCPT)[before:]
    assert len(stored) == (1 if codes[0] == 250 else 0), [s.content for s in stored]
    for message in stored:
        assert message.content.startswith(b"Subject: carrier\r\n"), message.content
        assert b"smuggled body" in message.content
        assert message.field("return-path") == f"<{SENDER}>".encode()


# -- STARTTLS injection (RELIABILITY.md test 4) ----------------------------------------


@pytest.mark.parametrize(
    "injected", [b"RSET\r\n", b"MAIL FROM:<injected@evil.test>\r\n", b"NOOP\r\nNOOP\r\n"]
)
def test_starttls_injection_is_never_answered(mx: PostelServer, injected: bytes) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        client.send(b"STARTTLS\r\n" + injected)
        ready = client.reply()
        assert ready.code == 220, ready
        time.sleep(0.2)  # let a wrongly answered injection arrive before the handshake
        client.sock.setblocking(False)
        try:
            leaked = client.sock.recv(4096)
        except BlockingIOError:
            leaked = b""
        client.sock.setblocking(True)
        client.sock.settimeout(10)
        assert leaked == b"", f"plaintext answer to injected commands: {leaked!r}"
        client.start_tls()
        client.send(b"EHLO client.test\r\nQUIT\r\n")
        replies = client.replies_until_close()
    assert [r.code for r in replies] == [250, 221], [str(r) for r in replies]
    assert replies[0].lines[0].startswith(b"mx.test"), "first TLS reply is not EHLO's"
    assert len(replies[0].lines) > 1


STARTTLS_ROUNDS = 200
"""Handshakes tried; the race below hit about one in twenty on a 2-core machine."""


def test_starttls_handshake_right_after_the_220(mx: PostelServer) -> None:
    for _ in range(STARTTLS_ROUNDS):
        with RawSmtp(mx.address, timeout=3) as client:
            client.greet()
            assert client.command("STARTTLS").code == 220
            client.start_tls()  # ClientHello at once, as every real client does
            assert client.command("EHLO client.test").code == 250


# -- limits ------------------------------------------------------------------------------


def test_megabyte_command_line_is_refused_and_the_session_continues(mx: PostelServer) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        client.send(b"NOOP " + b"x" * (1024 * 1024) + b"\r\n")
        reply = client.reply()
        assert reply.code == 500 and reply.text.startswith(b"5.5.2"), reply
        assert client.command("NOOP").code == 250
        assert client.command(f"MAIL FROM:<{SENDER}>").code == 250


def test_size_parameter_over_the_limit_is_refused(mx: PostelServer) -> None:
    with RawSmtp(mx.address) as client:
        ehlo = client.greet()
        assert f"SIZE {SIZE_MAX}".encode() in ehlo.lines
        reply = client.command(f"MAIL FROM:<{SENDER}> SIZE={SIZE_MAX + 1}")
        assert reply.code == 552 and reply.text.startswith(b"5.3.4"), reply
        assert client.command(f"MAIL FROM:<{SENDER}> SIZE={SIZE_MAX}").code == 250


def test_content_over_the_limit_is_refused_after_the_final_dot(mx: PostelServer) -> None:
    before = inbox_count(mx)
    with RawSmtp(mx.address) as client:
        open_transaction(client)
        line = b"x" * 998 + b"\r\n"
        client.send(b"Subject: big\r\n\r\n" + line * (SIZE_MAX // len(line) + 10) + b".\r\n")
        reply = client.reply()
        assert reply.code == 552 and reply.text.startswith(b"5.3.4"), reply
        assert client.command("NOOP").code == 250
    assert inbox_count(mx) == before


def test_recipient_1001_gets_452(mx: PostelServer) -> None:
    before = inbox_count(mx)
    with RawSmtp(mx.address) as client:
        client.greet()
        assert client.command(f"MAIL FROM:<{SENDER}>").code == 250
        client.send(
            b"".join(b"RCPT TO:<wire+%d@%s>\r\n" % (n, DOMAIN.encode()) for n in range(1001))
        )
        replies = [client.reply() for _ in range(1001)]
        assert all(r.code == 250 for r in replies[:1000]), {str(r) for r in replies[:1000]}
        last = replies[1000]
        assert last.code == 452 and last.text.startswith(b"4.5.3"), last
        assert client.command("DATA").code == 354
        client.send(b"Subject: many recipients\r\n\r\nbody\r\n.\r\n")
        assert client.reply().code == 250
    assert inbox_count(mx) == before + 1, "one copy per account, however many addresses"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_pipelined_flood_during_a_lookup_is_answered_in_order_with_bounded_memory(
    mx: PostelServer,
) -> None:
    """Commands pipelined behind a RCPT TO wait while its lookup runs; the server holds
    at most PIPELINE_BUFFER_MAX of them and reads the rest as it answers (RFC 2920 §3.1),
    so memory stays bounded (RELIABILITY.md test 5: < 16 MB per attacking connection)."""
    assert mx.proc is not None
    noops = 300_000  # 1.8 MB of commands behind one lookup
    before = _rss_kib(mx.proc.pid)
    peak = before
    with RawSmtp(mx.address, timeout=60) as client:
        client.greet()
        assert client.command(f"MAIL FROM:<{SENDER}>").code == 250
        client.send(f"RCPT TO:<wire@{DOMAIN}>\r\n".encode() + b"NOOP\r\n" * noops)
        assert client.reply().code == 250
        for n in range(noops):
            assert client.reply().code == 250
            if n % 50_000 == 0:
                peak = max(peak, _rss_kib(mx.proc.pid))
        assert client.command("QUIT").code == 221
    assert peak - before < 16 * 1024, f"RSS grew {peak - before} KiB"


def test_a_pipelining_flood_does_not_starve_other_sessions(mx: PostelServer) -> None:
    """One client pipelining NOOPs as fast as it can while another sends mail: the
    second is answered promptly, because each session's turn is bounded
    (PUMP_EVENTS_MAX) (RELIABILITY.md test 12: other clients keep being served)."""
    stop = threading.Event()

    def flood() -> None:
        with RawSmtp(mx.address, timeout=30) as client:
            client.greet()
            client.sock.setblocking(True)
            chunk = b"NOOP\r\n" * 20_000
            drained = threading.Thread(target=_drain, args=(client, stop), daemon=True)
            drained.start()
            while not stop.is_set():
                client.sock.sendall(chunk)
            drained.join(5)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    time.sleep(0.5)
    try:
        worst = 0.0
        for _ in range(5):
            began = time.monotonic()
            with smtplib.SMTP(*mx.address, timeout=30) as control:
                control.sendmail(SENDER, [f"wire@{DOMAIN}"], b"Subject: control\r\n\r\nhi\r\n")
            worst = max(worst, time.monotonic() - began)
    finally:
        stop.set()
        flooder.join(10)
    assert worst < 2.0, f"a control transaction took {worst:.2f} s during the flood"


def _drain(client: RawSmtp, stop: threading.Event) -> None:
    client.sock.settimeout(0.5)
    while not stop.is_set():
        try:
            if not client.sock.recv(1 << 16):
                return
        except OSError:
            continue


# -- timeouts ----------------------------------------------------------------------------


def _time_to_close(client: RawSmtp) -> tuple[float, list[Reply]]:
    began = time.monotonic()
    replies = client.replies_until_close()
    return time.monotonic() - began, replies


def test_idle_client_is_cut_at_the_command_timeout(mx: PostelServer) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        elapsed, replies = _time_to_close(client)
    assert [r.code for r in replies] == [421], [str(r) for r in replies]
    assert replies[0].text.startswith(b"4.4.2")
    assert TIMEOUT - 0.5 <= elapsed <= TIMEOUT + 2, elapsed


def test_each_command_restarts_the_command_timeout(mx: PostelServer) -> None:
    """A command answered late in one timeout period moves the deadline: the client is
    cut a whole timeout after its last command, not when the first deadline would
    have passed (the session's timer, due at that first deadline, re-arms itself)."""
    with RawSmtp(mx.address) as client:
        client.greet()
        for _ in range(3):
            time.sleep(TIMEOUT * 0.6)
            assert client.command("NOOP").code == 250
        elapsed, replies = _time_to_close(client)
    assert [r.code for r in replies] == [421], [str(r) for r in replies]
    assert TIMEOUT - 0.5 <= elapsed <= TIMEOUT + 2, elapsed


def test_idle_client_in_data_is_cut_at_the_data_timeout(mx: PostelServer) -> None:
    before = inbox_count(mx)
    with RawSmtp(mx.address) as client:
        open_transaction(client)
        client.send(b"Subject: unfinished\r\n\r\npart")
        elapsed, replies = _time_to_close(client)
    assert [r.code for r in replies] == [421], [str(r) for r in replies]
    assert TIMEOUT - 0.5 <= elapsed <= TIMEOUT + 2, elapsed
    assert inbox_count(mx) == before


CUT_WITHIN = 5 * TIMEOUT
"""Seconds after it stops reading by which a client must have been cut."""


@pytest.mark.parametrize(
    "policy",
    [b"", f"RSET\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<{RCPT}>\r\n".encode()],
    ids=["commands only", "with policy steps"],
)
def test_a_client_that_stops_reading_is_cut_at_the_send_timeout(
    mx: PostelServer, policy: bytes
) -> None:
    """A client pipelines commands and never reads a reply: once our replies back up,
    it is cut within the send timeout, also when a command still waiting in its
    pipeline (MAIL, RCPT) is answered after a policy step."""
    chunk = b"NOOP\r\n" * 300 + policy
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(mx.address)
    try:
        sock.recv(1000)
        sock.sendall(b"EHLO client.test\r\n")
        sock.setblocking(False)
        blocked_since = None
        began = time.monotonic()
        while time.monotonic() - began < CUT_WITHIN:  # until our sends back up too
            try:
                sock.send(chunk)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 0.5:
                    break
                time.sleep(0.05)
        stopped = time.monotonic()
        cut = False
        while time.monotonic() - stopped < CUT_WITHIN:
            try:
                sock.send(b"NOOP\r\n")
            except BlockingIOError:
                pass
            except OSError:  # reset by the server
                cut = True
                break
            time.sleep(0.2)
        assert cut, f"still connected {CUT_WITHIN} s after it stopped reading"
    finally:
        sock.close()


TRICKLE_LIMIT = 3 * TIMEOUT
"""Seconds a trickling client is given before the test calls it not cut."""


def test_trickling_client_is_cut_at_its_deadline(mx: PostelServer) -> None:
    with RawSmtp(mx.address) as client:
        client.greet()
        began = time.monotonic()
        closed = False
        while time.monotonic() - began < TRICKLE_LIMIT:
            try:
                client.send(b"N")
            except OSError:
                closed = True
                break
            client.sock.settimeout(TIMEOUT / 2)
            try:
                if not client.sock.recv(4096):
                    closed = True
                    break
                closed = True  # a reply to half a command is the 421 before the close
                break
            except TimeoutError:
                continue
    assert closed, f"a trickling client was still connected after {TRICKLE_LIMIT}s"
    assert time.monotonic() - began <= TIMEOUT + 2


# -- mail loops (RFC 5321 §6.3) -------------------------------------------------------


def _send_headers(server: PostelServer, headers: bytes) -> Reply:
    with RawSmtp(server.address) as client:
        open_transaction(client)
        client.send(headers + b"Subject: loop\r\n\r\nbody\r\n.\r\n")
        return client.reply()


def _received(n: int) -> bytes:
    return b"".join(
        b"Received: from hop%d.test by hop%d.test with ESMTP id %d;\r\n"
        b" Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i + 1, i)
        for i in range(n)
    )


def test_fifty_received_fields_are_accepted(mx: PostelServer) -> None:
    assert _send_headers(mx, _received(50)).code == 250


def test_fifty_one_received_fields_are_a_loop(mx: PostelServer) -> None:
    before = inbox_count(mx)
    reply = _send_headers(mx, _received(51))
    assert reply.code == 554 and reply.text.startswith(b"5.4.6"), reply
    assert inbox_count(mx) == before


@pytest.mark.parametrize("value", [RCPT, RCPT.upper(), f" {RCPT} "])
def test_delivered_to_the_recipient_is_a_loop(mx: PostelServer, value: str) -> None:
    before = inbox_count(mx)
    reply = _send_headers(mx, f"Delivered-To: {value}\r\n".encode())
    assert reply.code == 554 and reply.text.startswith(b"5.4.6"), reply
    assert inbox_count(mx) == before


def test_delivered_to_someone_else_is_not_a_loop(mx: PostelServer) -> None:
    assert _send_headers(mx, b"Delivered-To: other@example.test\r\n").code == 250


TWIN = f"twin@{DOMAIN}"
AUTHOR = f"author@{DOMAIN}"


def _to_both(
    server: PostelServer, head: str, wire_notify: str = "", twin_notify: str = ""
) -> Reply:
    """From AUTHOR to RCPT and TWIN (each with its NOTIFY text), header ``head``; the
    reply to the message."""
    with RawSmtp(server.address) as client:
        client.greet()
        assert client.command(f"MAIL FROM:<{AUTHOR}>").code == 250
        assert client.command(f"RCPT TO:<{RCPT}>{wire_notify}").code == 250
        assert client.command(f"RCPT TO:<{TWIN}>{twin_notify}").code == 250
        assert client.command("DATA").code == 354
        client.send(f"{head}\r\nbody\r\n.\r\n".encode())
        return client.reply()


def _reports_to_author(server: PostelServer, before: int, timeout: float = 10.0) -> list[bytes]:
    """The author's messages after the first ``before``, waiting up to ``timeout`` for one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m.content for m in read_inbox(server, AUTHOR)[before:]]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("notify", ["", " NOTIFY=FAILURE", " NOTIFY=NEVER"])
def test_a_loop_for_one_recipient_leaves_it_out_and_reports_it(
    mx: PostelServer, notify: str
) -> None:
    """Delivered-To names one of two recipients: the other gets the message (250), the
    looped one does not, and the sender gets a failure report (5.4.6) for it unless
    its RCPT said NOTIFY=NEVER. RFC 5321 §6.3; RFC 3461 §5.2.2, §6.1."""
    before, twins, reports = inbox_count(mx), len(read_inbox(mx, TWIN)), len(read_inbox(mx, AUTHOR))
    subject = f"half loop{notify}"
    head = f"Delivered-To: {RCPT}\r\nSubject: {subject}\r\n"
    assert _to_both(mx, head, wire_notify=notify).code == 250
    assert inbox_count(mx) == before
    assert [subject.encode() in m.content for m in read_inbox(mx, TWIN)[twins:]] == [True]
    found = _reports_to_author(mx, reports, timeout=10.0 if not notify.endswith("NEVER") else 1.0)
    if notify.endswith("NEVER"):
        assert found == []
        return
    assert len(found) == 1, found
    report = found[0]
    assert b"multipart/report" in report and b"report-type=delivery-status" in report
    assert b"Final-Recipient: rfc822; " + RCPT.encode() in report
    assert b"Action: failed" in report and b"Status: 5.4.6" in report
    assert TWIN.encode() not in report.split(b"\r\n\r\n", 1)[1].split(b"Subject:")[0]


def test_a_loop_and_a_success_notice_share_one_report(mx: PostelServer) -> None:
    """One recipient looped, the other asked NOTIFY=SUCCESS: one report with a failed
    and a delivered block. RFC 3464 §2.3; RFC 3461 §5.2."""
    reports = len(read_inbox(mx, AUTHOR))
    head = f"Delivered-To: {RCPT}\r\nSubject: both\r\n"
    assert _to_both(mx, head, twin_notify=" NOTIFY=SUCCESS").code == 250
    found = _reports_to_author(mx, reports)
    assert len(found) == 1, found
    assert b"Action: failed" in found[0] and b"Action: delivered" in found[0]
    assert b"Final-Recipient: rfc822; " + TWIN.encode() in found[0]


def test_a_loop_for_every_recipient_refuses_the_message(mx: PostelServer) -> None:
    before, twins = inbox_count(mx), len(read_inbox(mx, TWIN))
    reply = _to_both(mx, f"Delivered-To: {TWIN}\r\nDelivered-To: {RCPT}\r\n")
    assert reply.code == 554 and reply.text.startswith(b"5.4.6"), reply
    assert (inbox_count(mx), len(read_inbox(mx, TWIN))) == (before, twins)


def test_server_keeps_serving_after_the_wire_tests(mx: PostelServer) -> None:
    with socket.create_connection(mx.address, timeout=5) as sock:
        assert sock.recv(100).startswith(b"220")


def test_a_reset_right_after_pipelined_commands_ends_the_session_quietly(
    mx: PostelServer,
) -> None:
    """EHLO, MAIL and RCPT in one write, then a TCP reset: the RCPT step still queued
    when the connection is lost is answered into the void, never a crash report."""
    for _ in range(10):
        sock = socket.create_connection(mx.address, timeout=10)
        sock.recv(1024)
        sock.sendall(
            b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n" + f"RCPT TO:<{RCPT}>\r\n".encode()
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(1.0)
    with smtplib.SMTP(*mx.address, timeout=30) as client:
        assert client.noop()[0] == 250
    assert "smtp.session.crashed" not in mx.log.read_text()
