"""`postel serve` as an operator meets it: the embedded default's first start, clean
shutdown, start-up errors in one line, data kept across restarts, and recipient routing
(aliases, catch-all, subaddressing, postmaster@) set up with the CLI.

Spec: RFC 5321 §4.5.1 (postmaster), RFC 5233 (subaddressing), RFC 2142 (role
addresses); ARCHITECTURE.md (embedded default).
"""

from __future__ import annotations

import asyncio
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postel.clock import SystemClock
from postel.directory import verify_password
from postel.store import open_store

from .conftest import ServerFactory
from .rawsmtp import RawSmtp
from .server import START_TIMEOUT, PostelServer, wait_for_greeting
from .stored import read_inbox, strip_trace

EMBEDDED_SMTP_PORT = 2525
DEMO = "demo@demo.test"
_PASSWORD = re.compile(r"demo account created: (\S+)\s+password: (\S+)")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Embedded:
    """`python -m postel serve --data DIR` with its banner read from stdout."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "postel", "serve", "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for_line(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """Read output lines until one matches ``pattern`` (fails at EOF or timeout)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, f"server output ended: {self.lines}"
            self.lines.append(line.rstrip("\n"))
            found = pattern.search(line)
            if found is not None:
                return found
        pytest.fail(f"no line matching {pattern.pattern}: {self.lines}")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert wait_for_greeting(EMBEDDED_SMTP_PORT, deadline), "embedded server did not start"

    def terminate(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=40)
        return self.proc.returncode, out


async def _demo_password_ok(data: Path, password: str) -> bool:
    store = open_store(f"sqlite:///{data / 'postel.sqlite3'}", data / "blobs", clock=SystemClock())
    try:
        account = await store.get_account(DEMO)
        assert account is not None and account.is_admin
        return verify_password(account.credentials, password)
    finally:
        await store.close()


@pytest.mark.skipif(
    not _port_free(EMBEDDED_SMTP_PORT),
    reason=f"port {EMBEDDED_SMTP_PORT} (embedded default SMTP) is in use on this machine",
)
def test_embedded_default_first_start_restart_and_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "postel-data"
    first = Embedded(data)
    try:
        first.wait_for_line(re.compile(rf"smtp +127\.0\.0\.1:{EMBEDDED_SMTP_PORT} +serving"))
        found = first.wait_for_line(_PASSWORD)
        assert found.group(1) == DEMO
        password = found.group(2)
        first.wait_ready()
        with smtplib.SMTP("127.0.0.1", EMBEDDED_SMTP_PORT, timeout=30) as client:
            client.sendmail("someone@remote.test", [DEMO], b"Subject: kept\r\n\r\nkept\r\n")
    finally:
        code, rest = first.terminate()
    assert code == 0, rest
    assert "Traceback" not in rest
    assert asyncio.run(_demo_password_ok(data, password))
    assert not asyncio.run(_demo_password_ok(data, password + "x"))

    second = Embedded(data)
    try:
        second.wait_ready()
    finally:
        code, rest = second.terminate()
    assert code == 0, rest
    assert "postel listening" in rest
    assert "password" not in rest, "the demo password was printed again"
    assert asyncio.run(_demo_password_ok(data, password))
    store_url = f"sqlite:///{data / 'postel.sqlite3'}"
    from .stored import read_inbox_async

    kept = asyncio.run(read_inbox_async(store_url, data / "blobs", DEMO))
    assert [m.content for m in kept] == [b"Subject: kept\r\n\r\nkept\r\n"]


def _serve_once(server: PostelServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postel", "serve", "--config", str(server.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    return lines[0]


def test_port_in_use_is_one_line_naming_port_and_key(postel_factory: ServerFactory) -> None:
    server = postel_factory("busy")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", server.smtp_port))
        busy.listen()
        line = _one_error_line(_serve_once(server))
    assert str(server.smtp_port) in line and "listen.smtp" in line, line


@pytest.mark.parametrize("problem", ["missing", "garbage", "directory"])
def test_unreadable_certificate_is_one_clear_line(
    postel_factory: ServerFactory, tmp_path: Path, problem: str
) -> None:
    server = postel_factory("badcert")
    cert = tmp_path / "cert.pem"
    if problem == "garbage":
        cert.write_text("this is not a certificate\n")
    elif problem == "directory":
        cert.mkdir()
    original = str(server.data / "tls" / "cert.pem")
    server.config.write_text(server.config.read_text().replace(original, str(cert)))
    line = _one_error_line(_serve_once(server))
    assert str(cert) in line and "tls.cert_file" in line, line


def test_sigterm_exits_zero_and_restart_keeps_data(postel_factory: ServerFactory) -> None:
    server = postel_factory("restart")
    server.add_accounts("example.test", "kim")
    server.start()
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.sendmail("a@remote.test", ["kim@example.test"], b"Subject: one\r\n\r\n1\r\n")
    assert server.stop() == 0
    server.start()
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.sendmail("a@remote.test", ["kim@example.test"], b"Subject: two\r\n\r\n2\r\n")
    assert server.stop() == 0
    stored = read_inbox(server, "kim@example.test")
    assert [m.content for m in stored] == [
        b"Subject: one\r\n\r\n1\r\n",
        b"Subject: two\r\n\r\n2\r\n",
    ]
    assert [m.meta.uid for m in stored] == [1, 2]
    assert "Traceback" not in server.log.read_text()


def test_admin_commands_leave_a_running_servers_transactions_alone(
    postel_factory: ServerFactory,
) -> None:
    """Admin commands open the store the server is using: they must not run start-up
    recovery, which would delete the spool of a message being received (RELIABILITY.md
    D2 applies to the server's own start only)."""
    server = postel_factory("admin-beside-serve")
    server.add_accounts("example.test", "kim")
    server.start()
    body = b"".join(b"%06d " % i + b"x" * 90 + b"\r\n" for i in range(30_000))  # ~2.9 MB
    message = b"Subject: big\r\n\r\n" + body
    with RawSmtp(server.address, timeout=30) as client:
        client.greet()
        assert client.command("MAIL FROM:<a@remote.test>").code == 250
        assert client.command("RCPT TO:<kim@example.test>").code == 250
        assert client.command("DATA").code == 354
        client.send(message[: len(message) // 2])  # past the spill threshold: spooled
        time.sleep(0.5)
        for args in (
            ("account", "list"),
            ("domain", "list"),
            ("mailbox", "list", "kim@example.test"),
        ):
            server.cli(*args)
        client.send(message[len(message) // 2 :] + b".\r\n")
        assert client.reply().code == 250
    assert server.stop() == 0
    (stored,) = read_inbox(server, "kim@example.test")
    assert stored.content == message
    assert "Traceback" not in server.log.read_text()


# -- routing ---------------------------------------------------------------------------

D = "example.test"


@pytest.fixture(scope="module")
def routed(module_servers: ServerFactory) -> PostelServer:
    server = module_servers("routing", admin_address=f"admin@{D}")
    server.add_accounts(D, "alice", "bob", "admin")
    server.cli("alias", "add", f"sales@{D}", f"alice@{D}", f"bob@{D}")
    server.cli("alias", "add", f"info@{D}", f"sales@{D}")
    server.cli("alias", "add", f"@{D}", f"bob@{D}")
    server.start()
    return server


ROUTES = [
    ("alice@example.test", ["alice"]),
    ("ALICE@Example.Test", ["alice"]),
    ("sales@example.test", ["alice", "bob"]),
    ("info@example.test", ["alice", "bob"]),
    ("alice+news@example.test", ["alice"]),
    ("sales+q3@example.test", ["alice", "bob"]),
    ("nobody@example.test", ["bob"]),
    ("postmaster@example.test", ["admin"]),
    ("abuse@example.test", ["admin"]),
    ("postmaster", ["admin"]),
]


@pytest.mark.parametrize(("rcpt", "accounts"), ROUTES, ids=[r for r, _ in ROUTES])
def test_recipient_reaches_the_right_accounts(
    routed: PostelServer, rcpt: str, accounts: list[str]
) -> None:
    before = {a: len(read_inbox(routed, f"{a}@{D}")) for a in ("alice", "bob", "admin")}
    content = f"Subject: to {rcpt}\r\n\r\nrouting\r\n".encode()
    with smtplib.SMTP(*routed.address, timeout=30) as client:
        client.ehlo("client.test")
        assert client.mail("sender@remote.test")[0] == 250
        code, text = client.rcpt(rcpt)
        assert code == 250, text
        assert client.data(content)[0] == 250
    for account, count in before.items():
        new = read_inbox(routed, f"{account}@{D}")[count:]
        if account in accounts:
            assert len(new) == 1, f"{account} got {len(new)} copies"
            assert new[0].content == content
            assert new[0].field("delivered-to") == f"{account}@{D}".encode()
            raw = b"".join(r for _, r in new[0].trace) + new[0].content
            assert strip_trace(raw) == content
        else:
            assert new == [], f"{account} got a copy of mail to {rcpt}"


def test_unknown_recipient_without_catch_all_is_refused(postel_factory: ServerFactory) -> None:
    server = postel_factory("nocatch")
    server.add_accounts(D, "alice")
    server.start()
    with smtplib.SMTP(*server.address, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("sender@remote.test")
        code, text = client.rcpt(f"nobody@{D}")
    assert code == 550 and text.startswith(b"5.1.1"), (code, text)
