"""Hostile input against the parts of a real `postel serve` that face the outbound and
web side: the web listener (MTA-STS policy file, health check), submission with
REQUIRETLS and DSN parameters, and `postel dns check` against hostile DNS records.

For every attack: a protocol answer (4xx/5xx, 501) or a disconnect, never a traceback
in postel's log, bounded RSS growth, and mail service (SMTP, IMAP) unaffected.
Tests marked ``xfail(strict=True)`` expose a bug named in their reason.

Spec: RFC 9112 §2.2, §3.2 (HTTP/1.1 message parsing, Host), RFC 9110 §15.5.6 (405),
RFC 6585 §5 (431); RFC 8461 §3.2, §3.3; RFC 6409 §5; RFC 8689 §4.1 (REQUIRETLS);
RFC 3461 §4 (xtext, NOTIFY, ORCPT, ENVID); RFC 1035 §3.3.14 (TXT), RFC 2782 (SRV).
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnsserver import DnsServer, DnsServerMissing
from postel.web.server import (
    WEB_CONNECTIONS_MAX,
    WEB_CONNECTIONS_PER_IP_MAX,
    WEB_HEADER_OCTETS_MAX,
    WEB_KEEP_ALIVE_S,
    WEB_REQUEST_HEAD_TIMEOUT_S,
)

from .conftest import ServerFactory
from .imap_helpers import PASSWORD, add_accounts, tls_context
from .server import PostelServer
from .stored import read_inbox

DOMAIN = "hostile.test"
POLICY_HOST = f"mta-sts.{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
"""Sends the pipelined RCPT burst (the account's recipient limit)."""
CAROL = f"carol@{DOMAIN}"
"""Sends NOTIFY=SUCCESS to many local recipients."""
DAVE = f"dave@{DOMAIN}"
"""Sends the hostile DSN parameters and REQUIRETLS."""
BOB = f"bob@{DOMAIN}"
"""The local recipient (subaddresses bob+N reach the same account)."""
RECIPIENTS_PER_HOUR = 40
"""``max_recipients_per_hour_per_account`` of the test server."""
MiB = 1024 * 1024
RSS_BOUND = 32 * MiB
"""RSS growth allowed for one attack on the web listener."""
CUT_SLACK = 3.0
"""Seconds past its timeout within which an idle or trickling connection must be cut."""
FLOODER = "127.0.0.9"
"""A client address outside the abuse tracker's exemptions (per-address bounds apply)."""
OTHER_CLIENT = "127.0.0.2"
"""A second loopback address to connect from: another client host for per-IP bounds."""
HTTP_TIMEOUT = 5.0
"""Seconds a test HTTP client waits for the whole answer."""
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


# -- the server and small clients ------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> Iterator[PostelServer]:
    srv = module_servers(
        "outbound-hostile",
        abuse={
            "max_messages_per_hour_per_account": 100,
            "max_recipients_per_hour_per_account": RECIPIENTS_PER_HOUR,
            # The mail attacks come from 127.0.0.1-7 (not banned); FLOODER is not exempt,
            # so the web listener's per-address cap applies to it.
            "exempt": ["127.0.0.0/29"],
            # The web listener takes its per-address cap from here.
            "max_connections_per_ip": WEB_CONNECTIONS_PER_IP_MAX,
        },
    )
    add_accounts(srv, ALICE, CAROL, DAVE, BOB)
    srv.start()
    yield srv
    srv.stop()


def rss_bytes(pid: int) -> int:
    """VmRSS of process ``pid`` in octets (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def pid_of(server: PostelServer) -> int:
    assert server.proc is not None
    return server.proc.pid


def http(
    server: PostelServer, raw: bytes, timeout: float = HTTP_TIMEOUT, source: str = ""
) -> bytes:
    """Send ``raw`` on a new web connection (from address ``source`` when given), read
    until EOF or timeout (no half-close: uvicorn drops a connection at the client's FIN,
    answered or not)."""
    address = (source, 0) if source else None
    with socket.create_connection(
        server.web_address, timeout=timeout, source_address=address
    ) as sock:
        sock.sendall(raw)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out


def status(answer: bytes) -> int:
    match = _STATUS.match(answer)
    assert match is not None, f"no HTTP status line: {answer[:200]!r}"
    return int(match.group(1))


def get(
    path: bytes = b"/.well-known/mta-sts.txt", host: bytes | None = POLICY_HOST.encode()
) -> bytes:
    head = b"GET " + path + b" HTTP/1.1\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    return head + b"Connection: close\r\n\r\n"


def mail_served(server: PostelServer) -> None:
    """An SMTP greeting and EHLO, and an IMAP greeting: the mail side still serves."""
    with smtplib.SMTP(*server.address, timeout=10) as client:
        assert client.ehlo("control.test")[0] == 250
    with socket.create_connection(server.imap_address, timeout=10) as sock:
        assert sock.recv(200).startswith(b"* OK")


def no_traceback(server: PostelServer) -> None:
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


@contextmanager
def idle_connections(
    server: PostelServer, count: int, source: str = ""
) -> Iterator[list[socket.socket]]:
    """``count`` connections to the web listener that send nothing (from ``source``)."""
    address = (source, 0) if source else None
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(
                socket.create_connection(server.web_address, timeout=5, source_address=address)
            )
            socks.append(sock)
        time.sleep(0.3)  # let the server accept them all
        yield socks


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (EOF or reset) -- non-blocking probe."""
    sock.setblocking(False)
    try:
        while sock.recv(1 << 16):  # answers not read yet
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def submission(server: PostelServer, user: str) -> smtplib.SMTP:
    client = smtplib.SMTP(*server.submission_address, timeout=30)
    client.ehlo("client.test")
    client.starttls(context=tls_context(server))
    client.ehlo("client.test")
    client.login(user, PASSWORD)
    return client


def message(sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@{DOMAIN}>\r\n\r\n{subject} body\r\n"
    ).encode()


# -- the web listener: requests it must refuse or answer -------------------------------


def test_the_policy_is_served_for_our_domain(server: PostelServer) -> None:
    answer = http(server, get())
    assert status(answer) == 200 and b"version: STSv1" in answer
    assert status(http(server, get(b"/healthz", b"anything"))) == 200


@pytest.mark.parametrize(
    "host",
    [
        b"mta-sts." + b"a" * 300 + b".test",
        b"mta-sts." + b"a" * 63 + (b"." + b"b" * 63) * 3,  # 264: over a name's 253
        "mta-sts.hostile.tést".encode(),  # UTF-8 in Host: not an A-label
        "mta-sts.hostile.test".encode("utf-16-be"),  # NULs: h11 refuses the value
        b"mta-sts.",
        b"mta-sts",
        b"mta-sts..",
        b"mta-sts.test",  # a domain postel does not serve
        b"mta-sts.hostile.test:notaport",
        b"[::1]:80",
        b"mta-sts.hostile.test/../x",
        b"",
        None,  # no Host at all: RFC 9112 section 3.2 requires 400
    ],
)
def test_absurd_host_headers_get_4xx(server: PostelServer, host: bytes | None) -> None:
    answer = http(server, get(host=host))
    assert 400 <= status(answer) < 500
    assert b"version: STSv1" not in answer


@pytest.mark.parametrize(
    "host", [b"mta-sts.hostile.test:8443", b"MTA-STS.HOSTILE.TEST", b"mta-sts.hostile.test."]
)
def test_host_variants_of_our_name_are_served(server: PostelServer, host: bytes) -> None:
    assert status(http(server, get(host=host))) == 200


def test_two_host_headers_get_400(server: PostelServer) -> None:
    raw = (
        b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: " + POLICY_HOST.encode() + b"\r\n"
        b"Host: evil.test\r\nConnection: close\r\n\r\n"
    )
    assert status(http(server, raw)) == 400  # RFC 9112 section 3.2


@pytest.mark.parametrize(
    "path",
    [
        b"/.well-known/../.well-known/mta-sts.txt",
        b"/.well-known/mta-sts.txt/../../../../etc/passwd",
        b"/%2e%2e/%2e%2e/etc/passwd",
        b"/.well-known/%2e%2e/%2e%2e/etc/passwd",
        b"//etc/passwd",
        b"/.well-known/mta-sts.txt%00.html",
        b"*",
        b"/" + b"a" * 8000,
    ],
)
def test_path_traversal_gets_404(server: PostelServer, path: bytes) -> None:
    answer = http(server, get(path))
    assert 400 <= status(answer) < 500
    assert b"root:" not in answer and b"version: STSv1" not in answer


@pytest.mark.parametrize(
    "method", [b"POST", b"PUT", b"DELETE", b"PATCH", b"TRACE", b"OPTIONS", b"CONNECT", b"FOO"]
)
def test_methods_other_than_get_get_405(server: PostelServer, method: bytes) -> None:
    raw = get().replace(b"GET ", method + b" ", 1)
    answer = http(server, raw)
    assert status(answer) in (400, 405)
    assert b"version: STSv1" not in answer


def test_a_request_with_a_body_is_refused_and_the_body_not_kept(server: PostelServer) -> None:
    body = b"x" * (4 * MiB)
    raw = (
        b"POST /.well-known/mta-sts.txt HTTP/1.1\r\nHost: " + POLICY_HOST.encode() + b"\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    before = rss_bytes(pid_of(server))
    with socket.create_connection(server.web_address, timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(raw)
        answer = sock.recv(4096)
        with pytest.raises(OSError):  # the server answers 405 and closes: no upload
            for n in range(0, len(body), 65536):
                sock.sendall(body[n : n + 65536])
            while sock.recv(65536):
                pass
            raise ConnectionResetError("closed")
    assert status(answer) == 405
    assert rss_bytes(pid_of(server)) - before < RSS_BOUND


def test_garbage_and_a_tls_hello_get_400(server: PostelServer) -> None:
    assert status(http(server, bytes(range(256)) * 4)) == 400
    hello = bytes.fromhex("160301002a0100002603031234") + bytes(64)
    answer = http(server, hello)
    assert answer == b"" or status(answer) == 400
    # h11 takes any HTTP/x.y as 1.1 (RFC 9110 section 2.5 would allow 505): a 4xx anyway
    assert (
        400 <= status(http(server, b"GET / HTTP/9.9\r\nHost: a\r\nConnection: close\r\n\r\n")) < 506
    )
    assert status(http(server, b"\r\n" * 1000 + get())) in (200, 400)


def test_pipelined_requests_are_answered_in_order(server: PostelServer) -> None:
    one = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    policy = b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: " + POLICY_HOST.encode() + b"\r\n\r\n"
    closing = b"GET /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answer = http(server, one * 20 + policy + one + closing)
    statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
    assert statuses == [200] * 22 + [404]
    assert answer.count(b"version: STSv1") == 1


def test_a_pipelined_flood_is_bounded(server: PostelServer) -> None:
    """5000 pipelined requests in one write, the client reading nothing until the end:
    the answers queue in the server, which must not grow without bound."""
    one = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    before = rss_bytes(pid_of(server))
    answer = http(server, one * 5000 + get(b"/healthz", b"a"), timeout=20)
    assert answer.count(b"HTTP/1.1 200") == 5001
    assert rss_bytes(pid_of(server)) - before < RSS_BOUND


# -- the web listener: oversized and slow heads -----------------------------------------


def test_a_header_past_the_bound_in_pieces_gets_431(server: PostelServer) -> None:
    before = rss_bytes(pid_of(server))
    with socket.create_connection(server.web_address, timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Long: ")
        answer = b""
        try:
            for _ in range(MiB // 4096):
                sock.sendall(b"a" * 4096)
                time.sleep(0.0005)
        except OSError:
            pass
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert status(answer) == 431
    assert rss_bytes(pid_of(server)) - before < RSS_BOUND


def _long_head(octets: int, path: bytes = b"/nothing") -> bytes:
    """A GET head of exactly ``octets`` octets, padded with one long header field."""
    start = b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nX-Long: "
    end = b"\r\nConnection: close\r\n\r\n"
    return start + b"a" * (octets - len(start) - len(end)) + end


def _many_fields(octets: int) -> bytes:
    """A GET head over ``octets`` octets made of many short header fields."""
    fields = b"".join(b"X-F%d: v\r\n" % n for n in range(octets // 8))
    return b"GET /nothing HTTP/1.1\r\nHost: a\r\n" + fields + b"Connection: close\r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        _long_head(40 * 1024),
        _long_head(WEB_HEADER_OCTETS_MAX + 1),
        _many_fields(WEB_HEADER_OCTETS_MAX + 64),
        b"GET /" + b"a" * WEB_HEADER_OCTETS_MAX + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        # pipelined after a small request: every head is bounded, not the first only
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" + _long_head(40 * 1024),
    ],
    ids=["40KiB", "bound+1", "many-fields", "long-target", "pipelined"],
)
def test_a_head_past_the_bound_in_one_write_gets_431(server: PostelServer, raw: bytes) -> None:
    answer = http(server, raw)
    statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
    assert statuses[-1] == 431, answer[:300]
    assert statuses[:-1] in ([], [200])


def test_a_head_at_the_bound_is_served(server: PostelServer) -> None:
    assert status(http(server, _long_head(WEB_HEADER_OCTETS_MAX, b"/healthz"))) == 200


def test_idle_and_trickling_connections_are_cut(server: PostelServer) -> None:
    """Silent, trickling from the start, and trickling the second head after a first
    answer: each is closed within the request-head timeout (RFC 9112 section 9.3)."""
    first = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    with (
        idle_connections(server, 5) as idle,
        idle_connections(server, 5) as trickling,
        idle_connections(server, 5) as kept_alive,
    ):
        for sock in kept_alive:
            sock.sendall(first)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        for sock in trickling + kept_alive:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        deadline = time.monotonic() + WEB_REQUEST_HEAD_TIMEOUT_S + CUT_SLACK
        while time.monotonic() < deadline:
            for sock in trickling + kept_alive:
                if not closed_by_peer(sock):
                    with suppress(OSError):
                        sock.sendall(b"X: y\r\n")
            time.sleep(1.0)
        still_open = [s for s in idle + trickling + kept_alive if not closed_by_peer(s)]
    assert still_open == []


def test_an_idle_keep_alive_connection_is_cut_after_the_keep_alive_time(
    server: PostelServer,
) -> None:
    with socket.create_connection(server.web_address, timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(WEB_KEEP_ALIVE_S + 1.0)
        assert closed_by_peer(sock)


def test_mail_is_served_while_the_web_listener_is_flooded(server: PostelServer) -> None:
    before = rss_bytes(pid_of(server))
    with idle_connections(server, WEB_CONNECTIONS_MAX):
        mail_served(server)
        grown = rss_bytes(pid_of(server)) - before
    assert grown < 64 * MiB
    mail_served(server)


def test_one_host_cannot_hold_more_than_its_share(server: PostelServer) -> None:
    """A host's idle sockets past WEB_CONNECTIONS_PER_IP_MAX are closed at once, and
    another host is served meanwhile."""
    with idle_connections(server, WEB_CONNECTIONS_MAX, source=FLOODER) as socks:
        time.sleep(0.5)
        held = [s for s in socks if not closed_by_peer(s)]
        assert len(held) <= WEB_CONNECTIONS_PER_IP_MAX
        assert status(http(server, get(), source=OTHER_CLIENT)) == 200


def test_idle_connections_do_not_deny_the_policy(server: PostelServer) -> None:
    with idle_connections(server, WEB_CONNECTIONS_MAX):
        time.sleep(WEB_REQUEST_HEAD_TIMEOUT_S + CUT_SLACK)
        answer = http(server, get())
    assert status(answer) == 200


# -- submission: REQUIRETLS, DSN parameters, pipelined recipient limit ------------------


def test_requiretls_parameter_values(server: PostelServer) -> None:
    with submission(server, DAVE) as client:
        code, text = client.ehlo("client.test")
        assert b"REQUIRETLS" in text
        assert client.mail(DAVE, ["REQUIRETLS"])[0] == 250
        client.rset()
        for bad in (["REQUIRETLS=yes"], ["REQUIRETLS", "REQUIRETLS"], ["REQUIRETLS=" + "x" * 900]):
            code, _ = client.mail(DAVE, bad)
            assert code in (500, 501, 555), bad  # 500: line too long, RFC 5321 4.5.3.1.4
            client.rset()
        assert client.noop()[0] == 250


@pytest.mark.parametrize(
    "params",
    [
        ("ENVID=abc+0D+0AX-Injected:+20yes", ""),
        ("ENVID=abc+00def", ""),
        ("ENVID=+0A", ""),
        ("", "ORCPT=rfc822;bob+0D+0AX-Injected:+20yes@hostile.test"),
        ("", "ORCPT=rfc822;bob+00@hostile.test"),
        ("", "ORCPT=rfc822+0D+0AX:+20y;bob@hostile.test"),
        ("", "ORCPT=rfc822;bob@hostile.test+E2+80+A8X-Injected:+20yes"),
    ],
)
def test_controls_in_xtext_are_refused(server: PostelServer, params: tuple[str, str]) -> None:
    mail, rcpt = params
    with submission(server, DAVE) as client:
        code, _ = client.mail(DAVE, [mail] if mail else [])
        if mail:
            assert code == 501
            return
        assert code == 250
        assert client.rcpt(BOB, ["NOTIFY=SUCCESS", rcpt])[0] == 501


def test_printable_dsn_parameters_reach_the_report_escaped(server: PostelServer) -> None:
    before = len(read_inbox(server, DAVE))
    envid = "env+2Bid+3A+20X-Injected:+20yes"
    orcpt = "rfc822;bob+2Btag+3A+20X-Evil:+20yes@hostile.test"
    with submission(server, DAVE) as client:
        assert client.mail(DAVE, [f"ENVID={envid}", "RET=HDRS"])[0] == 250
        assert client.rcpt(BOB, ["NOTIFY=SUCCESS", f"ORCPT={orcpt}"])[0] == 250
        assert client.data(message(DAVE, "dsn-params"))[0] == 250
    reports = read_inbox(server, DAVE)[before:]
    assert len(reports) == 1
    content = reports[0].content
    assert b"Original-Envelope-Id: env+id: X-Injected: yes" in content
    assert b"\r\nX-Injected:" not in content and b"\r\nX-Evil:" not in content


def test_notify_success_to_many_local_recipients_is_one_bounded_report(
    server: PostelServer,
) -> None:
    before = len(read_inbox(server, CAROL))
    count = RECIPIENTS_PER_HOUR - 5
    with submission(server, CAROL) as client:
        assert client.mail(CAROL, ["RET=FULL"])[0] == 250
        for n in range(count):
            assert client.rcpt(f"bob+{n}@{DOMAIN}", ["NOTIFY=SUCCESS"])[0] == 250
        body = b"Subject: many\r\nFrom: " + CAROL.encode() + b"\r\n\r\n" + b"x" * (2 * MiB)
        assert client.data(body)[0] == 250
    reports = read_inbox(server, CAROL)[before:]
    assert len(reports) == 1  # one report for all recipients, RFC 3461 section 6.2
    report = reports[0].content
    assert report.count(b"Action: delivered") == count
    # RET=FULL of a 2 MiB message: the report carries at most the original's header
    # part for success reports (RFC 3461 section 4.3), in any case far below the message
    assert len(report) < 2 * MiB


def test_a_pipelined_rcpt_burst_stays_within_the_recipient_limit(server: PostelServer) -> None:
    with submission(server, ALICE) as client:
        assert client.mail(ALICE)[0] == 250
        burst = b"".join(b"RCPT TO:<bob+p%d@%s>\r\n" % (n, DOMAIN.encode()) for n in range(50))
        assert client.sock is not None
        client.sock.sendall(burst)
        codes = [client.getreply()[0] for _ in range(50)]
        assert codes.count(250) == RECIPIENTS_PER_HOUR
        assert set(codes[RECIPIENTS_PER_HOUR:]) == {450}
        assert client.data(message(ALICE, "burst"))[0] == 250
    with submission(server, ALICE) as client:  # the hour's budget is spent
        assert client.mail(ALICE)[0] == 250
        assert client.rcpt(BOB)[0] == 450


# -- postel dns check against hostile records --------------------------------------------

_SOA = """$TTL 60
@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
"""


def _hostile_zone() -> str:
    big = " ".join(f'"{"v" * 250}{n:04d}"' for n in range(240))  # one TXT RR of ~60 KiB
    many = "".join(f'_dmarc IN TXT "v=DMARC1; p=none; n={n}"\n' for n in range(500))
    ids = "v=STSv1; " + "; ".join(f"id={n}" for n in range(1000))
    ids_txt = " ".join(f'"{ids[n : n + 255]}"' for n in range(0, len(ids), 255))
    weird_srv = (
        "_submissions._tcp IN SRV 0 1 465 .\n"
        "_submissions._tcp IN SRV 0 1 465 \\000\\010evil\\013\\010.example.\n"
        f"_submissions._tcp IN SRV 0 1 465 {'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 61}.\n"
        "_submissions._tcp IN SRV 65535 65535 0 *.wild\\032card.\n"
        "_imaps._tcp IN SRV 0 0 993 \\255\\254\\253.example.\n"
    )
    return (
        _SOA
        + f"@ IN TXT {big}\n"
        + many
        + f"_mta-sts IN TXT {ids_txt}\n"
        + "@ IN MX 10 \\000.\n"
        + "@ IN MX 20 mx\\010evil.\n"
        + weird_srv
        + '_smtp._tls IN TXT "v=TLSRPTv1; rua=mailto:\\027[2J\\027]0;pwned\\007x@y"\n'
        # C1 CSI, a bidi override, DEL and a line separator, as UTF-8 octets
        + '@ IN TXT "v=spf1 \\194\\155[31m \\226\\128\\174 \\127 \\226\\128\\168 -all"\n'
    )


@dataclass(frozen=True, slots=True)
class DnsCheckRuns:
    plain: subprocess.CompletedProcess[str]
    as_json: subprocess.CompletedProcess[str]
    elapsed: float


@pytest.fixture(scope="module")
def dns_check(module_servers: ServerFactory) -> DnsCheckRuns:
    """``postel dns check`` (table and --json) against the hostile zone."""
    try:
        dns = DnsServer({DOMAIN: _hostile_zone()}).start()
    except DnsServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        host, port = dns.nameserver
        site = module_servers("dns-check", dns={"nameservers": [f"{host}:{port}"]})
        site.cli("domain", "add", DOMAIN)
        began = time.monotonic()
        plain = site.cli("dns", "check", DOMAIN, "--ipv4", "127.0.0.1", check=False)
        as_json = site.cli("dns", "check", DOMAIN, "--ipv4", "127.0.0.1", "--json", check=False)
        return DnsCheckRuns(plain, as_json, time.monotonic() - began)
    finally:
        dns.stop()


def test_dns_check_against_hostile_records_prints_findings(dns_check: DnsCheckRuns) -> None:
    for run in (dns_check.plain, dns_check.as_json):
        assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
        assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    assert "required records ok" in dns_check.plain.stdout
    rows = json.loads(dns_check.as_json.stdout)
    assert {row["status"] for row in rows} <= {"ok", "missing", "different", "error"}
    assert len(dns_check.plain.stdout) < 256 * 1024  # a 60 KiB TXT is not printed whole
    assert dns_check.elapsed < 30


def test_dns_check_does_not_print_control_characters(dns_check: DnsCheckRuns) -> None:
    """Nothing that is not printable reaches the terminal: C0 and C1 controls, DEL,
    bidi overrides, line separators; the table shows them as \\DDD escapes and the
    JSON is ASCII with the exact values behind its escapes (RFC 1035 section 5.1)."""
    out = dns_check.plain.stdout
    bad = [c for line in out.split("\n") for c in line if not c.isprintable()]
    assert bad == [], repr(out[-600:])
    assert "\\027[2J" in out and "\\226\\128\\174" in out
    text = dns_check.as_json.stdout
    assert text.isascii() and all(c.isprintable() for c in text.strip())
    served = [value for row in json.loads(text) for value in row["served"]]
    assert any("\x1b[2J" in value for value in served)
    assert any("\u202e" in value and "\x7f" in value for value in served)


def test_no_traceback_in_the_log(server: PostelServer) -> None:
    mail_served(server)
    no_traceback(server)
