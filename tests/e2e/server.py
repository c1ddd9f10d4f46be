"""Run a real `postel serve` process for end-to-end tests, with kill and restart.

``PostelServer(data, **smtp)`` writes a TOML config (SQLite in ``data`` unless
``database_url`` is given; SMTP on a free loopback port; abuse tracker off) and runs
``python -m postel serve --config`` as a child process. ``cli(...)`` runs admin commands
against the same config. ``kill()`` is SIGKILL (a crash), ``stop()`` SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
"""Seconds a server may take to start listening."""

HOSTNAME = "mx.test"
"""The test servers' host name (RFC 2606 reserves .test)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    home: Path,
    smtp_port: int,
    *,
    data: Path | None = None,
    database_url: str | None = None,
    admin_address: str | None = None,
    abuse: dict[str, object] | None = None,
    imap_ports: tuple[int, int] | None = None,
    pop3_ports: tuple[int, int] | None = None,
    submission_ports: tuple[int, int] | None = None,
    imap: dict[str, object] | None = None,
    pop3: dict[str, object] | None = None,
    delivery: dict[str, object] | None = None,
    dns: dict[str, object] | None = None,
    **smtp: object,
) -> Path:
    """A TOML config in ``home`` for a test server: data in ``data`` (default ``home``),
    SMTP on 127.0.0.1:``smtp_port``, IMAP and IMAPS on ``imap_ports`` (none when None),
    self-signed TLS, the abuse tracker off, and the ``[smtp]`` keys given
    (``command_timeout=2``, ``bare_line_endings="strict"``...) and ``[imap]`` keys."""
    from postel.server.tls import ensure_self_signed

    data = data or home
    tls_dir = data / "tls"
    ensure_self_signed(tls_dir / "cert.pem", tls_dir / "key.pem", HOSTNAME)
    top = f'data_dir = "{data}"\n'
    if database_url is not None:
        top += f"database_url = {_toml_value(database_url)}\n"
    if admin_address is not None:
        top += f"admin_address = {_toml_value(admin_address)}\n"
    extra = "".join(f"{k} = {_toml_value(v)}\n" for k, v in smtp.items())
    abuse_text = (
        "".join(f"{k} = {_toml_value(v)}\n" for k, v in abuse.items())
        if abuse is not None
        else "enabled = false\n"
    )
    if imap_ports is None:
        imap_listen = "imap = []\nimaps = []\n"
    else:
        imap_listen = (
            f'imap = ["127.0.0.1:{imap_ports[0]}"]\nimaps = ["127.0.0.1:{imap_ports[1]}"]\n'
        )
    if submission_ports is None:
        imap_listen += "submission = []\nsubmissions = []\n"
    else:
        imap_listen += (
            f'submission = ["127.0.0.1:{submission_ports[0]}"]\n'
            f'submissions = ["127.0.0.1:{submission_ports[1]}"]\n'
        )
    if pop3_ports is None:
        imap_listen += "pop3 = []\npop3s = []\n"
    else:
        imap_listen += (
            f'pop3 = ["127.0.0.1:{pop3_ports[0]}"]\npop3s = ["127.0.0.1:{pop3_ports[1]}"]\n'
        )
    imap_text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in (imap or {}).items())
    imap_text += "\n[pop3]\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in (pop3 or {}).items()
    )
    # Outbound delivery only when a test asks for it (and then with its own DNS server):
    # a test server never looks anything up on the internet.
    imap_text += "\n[delivery]\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in (delivery or {"enabled": False}).items()
    )
    imap_text += "\n[dns]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in (dns or {}).items())
    text = f"""hostname = "{HOSTNAME}"
{top}
[listen]
smtp = ["127.0.0.1:{smtp_port}"]
{imap_listen}
[imap]
{imap_text}
[tls]
cert_file = "{tls_dir / "cert.pem"}"
key_file = "{tls_dir / "key.pem"}"

[abuse]
{abuse_text}
[smtp]
{extra}"""
    path = home / "postel.toml"
    path.write_text(text)
    return path


def wait_for_greeting(port: int, deadline: float) -> bool:
    """True once a connection to ``port`` gets a 220 greeting before ``deadline``
    (time.monotonic())."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


class PostelServer:
    """A `postel serve --config` child process on a free loopback port.

    ``home`` holds the config and the log (default: ``data``); two servers may share one
    ``data`` directory (and so one blob dir) with different homes.
    """

    def __init__(
        self,
        data: Path,
        *,
        home: Path | None = None,
        database_url: str | None = None,
        admin_address: str | None = None,
        abuse: dict[str, object] | None = None,
        imap: dict[str, object] | None = None,
        pop3: dict[str, object] | None = None,
        delivery: dict[str, object] | None = None,
        dns: dict[str, object] | None = None,
        **smtp: object,
    ) -> None:
        self.data = data
        self.home = home or data
        data.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.smtp_port = free_port()
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.database_url = database_url or f"sqlite:///{data / 'postel.sqlite3'}"
        self.config = write_config(
            self.home,
            self.smtp_port,
            data=data,
            database_url=database_url,
            admin_address=admin_address,
            abuse=abuse,
            imap_ports=(self.imap_port, self.imaps_port),
            pop3_ports=(self.pop3_port, self.pop3s_port),
            submission_ports=(self.submission_port, self.submissions_port),
            imap=imap,
            pop3=pop3,
            delivery=delivery,
            dns=dns,
            **smtp,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.home / "server.log"

    @property
    def blob_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.smtp_port)

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``postel --config <ours> ARGS...``; raises CalledProcessError on failure
        when ``check``."""
        return subprocess.run(
            [sys.executable, "-m", "postel", "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def add_accounts(self, domain: str, *locals_: str) -> None:
        """Add ``domain`` (if missing) and an account ``local@domain`` for each name."""
        self.cli("domain", "add", domain, check=False)
        for local in locals_:
            self.cli("account", "add", f"{local}@{domain}", "--generate")

    def start(self) -> float:
        """Start the server; returns the seconds until it greeted with 220."""
        began = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "postel", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = began + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"postel exited {self.proc.returncode}:\n{self.log.read_text()}")
            if wait_for_greeting(self.smtp_port, min(deadline, time.monotonic() + 0.5)):
                return time.monotonic() - began
        pytest.fail(f"postel did not listen in time:\n{self.log.read_text()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.proc = None
        return code
