"""Run a real `postel serve` process for end-to-end tests, with kill and restart.

``PostelServer(data, **smtp)`` writes a TOML config (SQLite in ``data`` unless
``database_url`` is given; SMTP on a free loopback port; abuse tracker off) and runs
``python -m postel serve --config`` as a child process. ``cli(...)`` runs admin commands
against the same config. ``kill()`` is SIGKILL (a crash), ``stop()`` SIGTERM.

``host`` (default ``127.0.0.1``) is the address every listener of the instance binds:
Linux routes all of 127.0.0.0/8 to the loopback interface, so instances on 127.0.0.2,
127.0.0.3 ... are distinct hosts to each other (RFC 6890 §2.2.2). ``config_extra`` is
raw TOML appended to the generated file; ``cert_file``/``key_file`` use a given
certificate instead of a generated self-signed one.

With ``POSTEL_TEST_SMTP_PROCESSES=N`` in the environment every server the tests start
runs ``[smtp] processes = N`` unless the test sets it (port-25 worker processes, whose
store is the main process's: ``make test-workers`` runs the end-to-end suite so).
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

import ports

START_TIMEOUT = 30.0
SMTP_PROCESSES_ENV = "POSTEL_TEST_SMTP_PROCESSES"
"""Seconds a server may take to start listening."""

HOSTNAME = "mx.test"
"""The test servers' host name (RFC 2606 reserves .test)."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (below the ephemeral range,
    tests/ports.py)."""
    return ports.free_port(host)


def free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct TCP ports on ``host`` that were free a moment ago."""
    return ports.free_ports(host, count)


def host_port(host: str, port: int) -> str:
    """``host:port`` as a ``[listen]`` entry (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    host: str = "127.0.0.1",
    web_port: int | None = None,
    config_extra: str = "",
    cert_file: Path | None = None,
    key_file: Path | None = None,
    **smtp: object,
) -> Path:
    """A TOML config in ``home`` for a test server: data in ``data`` (default ``home``),
    SMTP on ``host``:``smtp_port``, IMAP and IMAPS on ``imap_ports`` (none when None),
    the web listener (MTA-STS policy, health) on ``web_port`` (off when None; never the
    production default 0.0.0.0:443), every listener on ``host``, TLS from ``cert_file``/``key_file`` (both or neither;
    default a self-signed pair made in ``<data>/tls``), the abuse tracker off, the
    ``[smtp]`` keys given (``command_timeout=2``, ``bare_line_endings="strict"``...),
    ``[imap]`` keys, and ``config_extra`` (raw TOML, appended last: start it with a table
    header such as ``[mta_sts]``; keys of ``[delivery]`` and ``[dns]`` go in ``delivery``
    and ``dns``, since a TOML table cannot be opened twice)."""
    from postel.server.tls import ensure_self_signed

    data = data or home
    if (cert_file is None) != (key_file is None):
        raise ValueError("give both cert_file and key_file, or neither")
    if cert_file is None or key_file is None:
        tls_dir = data / "tls"
        cert_file, key_file = tls_dir / "cert.pem", tls_dir / "key.pem"
        ensure_self_signed(cert_file, key_file, HOSTNAME)
    top = f'data_dir = "{data}"\n'
    if database_url is not None:
        top += f"database_url = {_toml_value(database_url)}\n"
    if admin_address is not None:
        top += f"admin_address = {_toml_value(admin_address)}\n"
    if "processes" not in smtp and os.environ.get(SMTP_PROCESSES_ENV):
        smtp = {**smtp, "processes": int(os.environ[SMTP_PROCESSES_ENV])}
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
            f'imap = ["{host_port(host, imap_ports[0])}"]\n'
            f'imaps = ["{host_port(host, imap_ports[1])}"]\n'
        )
    if submission_ports is None:
        imap_listen += "submission = []\nsubmissions = []\n"
    else:
        imap_listen += (
            f'submission = ["{host_port(host, submission_ports[0])}"]\n'
            f'submissions = ["{host_port(host, submission_ports[1])}"]\n'
        )
    if pop3_ports is None:
        imap_listen += "pop3 = []\npop3s = []\n"
    else:
        imap_listen += (
            f'pop3 = ["{host_port(host, pop3_ports[0])}"]\n'
            f'pop3s = ["{host_port(host, pop3_ports[1])}"]\n'
        )
    if web_port is None:
        imap_listen += "web = []\n"
    else:
        imap_listen += f'web = ["{host_port(host, web_port)}"]\n'
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
smtp = ["{host_port(host, smtp_port)}"]
{imap_listen}
[imap]
{imap_text}
[tls]
cert_file = {_toml_value(str(cert_file))}
key_file = {_toml_value(str(key_file))}

[abuse]
{abuse_text}
[smtp]
{extra}"""
    if config_extra:
        text += "\n" + config_extra.strip("\n") + "\n"
    path = home / "postel.toml"
    path.write_text(text)
    return path


def wait_for_greeting(port: int, deadline: float, host: str = "127.0.0.1") -> bool:
    """True once a connection to ``host``:``port`` gets a 220 greeting before
    ``deadline`` (time.monotonic())."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                if s.recv(100).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


class PostelServer:
    """A `postel serve --config` child process on a free loopback port.

    ``home`` holds the config and the log (default: ``data``); two servers may share one
    ``data`` directory (and so one blob dir) with different homes. ``host`` is the
    loopback address all its listeners bind (``address`` and the ``*_address``
    properties name it); ``config_extra``, ``cert_file`` and ``key_file`` are passed to
    ``write_config``.
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
        host: str = "127.0.0.1",
        config_extra: str = "",
        cert_file: Path | None = None,
        key_file: Path | None = None,
        **smtp: object,
    ) -> None:
        self.data = data
        self.home = home or data
        self.host = host
        data.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        (
            self.smtp_port,
            self.imap_port,
            self.imaps_port,
            self.pop3_port,
            self.pop3s_port,
            self.submission_port,
            self.submissions_port,
            self.web_port,
        ) = free_ports(host, 8)
        """Plain HTTP (not 443/8443): the MTA-STS policy file and the health check."""
        self.cert_file = cert_file or data / "tls" / "cert.pem"
        """The certificate the server presents (PEM)."""
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
            host=host,
            web_port=self.web_port,
            config_extra=config_extra,
            cert_file=cert_file,
            key_file=key_file,
            **smtp,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.home / "server.log"

    @property
    def blob_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the SMTP (port 25 role) listener."""
        return (self.host, self.smtp_port)

    @property
    def submission_address(self) -> tuple[str, int]:
        """``(host, port)`` of the submission (STARTTLS) listener. Spec: RFC 6409."""
        return (self.host, self.submission_port)

    @property
    def submissions_address(self) -> tuple[str, int]:
        """``(host, port)`` of the implicit-TLS submission listener. Spec: RFC 8314."""
        return (self.host, self.submissions_port)

    @property
    def imap_address(self) -> tuple[str, int]:
        return (self.host, self.imap_port)

    @property
    def imaps_address(self) -> tuple[str, int]:
        return (self.host, self.imaps_port)

    @property
    def web_address(self) -> tuple[str, int]:
        """``(host, port)`` of the web listener (plain HTTP)."""
        return (self.host, self.web_port)

    @property
    def pop3_address(self) -> tuple[str, int]:
        return (self.host, self.pop3_port)

    @property
    def pop3s_address(self) -> tuple[str, int]:
        return (self.host, self.pop3s_port)

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

    def add_user(self, address: str, password: str) -> None:
        """Add the domain of ``address`` (if missing) and an account with ``password``."""
        self.cli("domain", "add", address.rpartition("@")[2], check=False)
        self.cli("account", "add", address, "--password-file", "-", stdin=password + "\n")

    def add_accounts(self, domain: str, *locals_: str) -> None:
        """Add ``domain`` (if missing) and an account ``local@domain`` for each name."""
        self.cli("domain", "add", domain, check=False)
        for local in locals_:
            self.cli("account", "add", f"{local}@{domain}", "--generate")

    def start(self, *, ready_port: int | None = None) -> float:
        """Start the server; returns the seconds until it greeted with 220 on
        ``ready_port`` (default: its SMTP port)."""
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
            port = ready_port or self.smtp_port
            if wait_for_greeting(port, min(deadline, time.monotonic() + 0.5), self.host):
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
