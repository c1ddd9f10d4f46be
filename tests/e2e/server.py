"""Run a real `postel serve` process for end-to-end tests, with kill and restart."""

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(data: Path, smtp_port: int, **smtp: object) -> Path:
    """A TOML config for a test server: SQLite in ``data``, SMTP on loopback."""
    from postel.server.tls import ensure_self_signed

    tls_dir = data / "tls"
    ensure_self_signed(tls_dir / "cert.pem", tls_dir / "key.pem", "mx.test")
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in smtp.items())
    text = f"""
hostname = "mx.test"
data_dir = "{data}"

[listen]
smtp = ["127.0.0.1:{smtp_port}"]

[tls]
cert_file = "{tls_dir / "cert.pem"}"
key_file = "{tls_dir / "key.pem"}"

[abuse]
enabled = false

[smtp]
{extra}"""
    path = data / "postel.toml"
    path.write_text(text)
    return path


class PostelServer:
    """A `postel serve --config` child process on a free loopback port."""

    def __init__(self, data: Path, **smtp: object) -> None:
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        self.smtp_port = free_port()
        self.config = write_config(data, self.smtp_port, **smtp)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "server.log"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "postel", "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "postel", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"postel exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1) as s:
                    s.recv(100)
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"postel did not listen in time:\n{self.log.read_text()}")

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
