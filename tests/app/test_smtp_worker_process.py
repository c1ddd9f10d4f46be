"""The port-25 worker process's start (docs/adr/0005): its command line, the modules it
loads (port 25's only, for its memory), and a start that fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from postel.server.smtp_workers import WORKER_ENTRY, worker_argv

NOT_FOR_PORT_25 = (
    "postel.cli",
    "postel.server.imap_session",
    "postel.server.pop3_session",
    "postel.server.submission_session",
    "postel.web",
    "postel.delivery.mtasts",
    "httpx",
    "rich",
    "starlette",
    "uvicorn",
    "psycopg",
)
"""Modules a worker never uses: the admin CLI, the other services, the web server."""


def test_argv_runs_the_worker_entry_with_its_descriptors() -> None:
    argv = worker_argv(["--config", "/etc/postel.toml"], [5, 6], 7)
    assert argv == [
        sys.executable,
        "-c",
        WORKER_ENTRY,
        "--config",
        "/etc/postel.toml",
        "--listen-fds",
        "5,6",
        "--ipc-fd",
        "7",
    ]


def test_the_worker_loads_port_25_modules_only() -> None:
    probe = (
        "import sys\nfrom postel.app.worker import main\nprint('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = done.stdout.split()
    assert "postel.server.smtp_session" in loaded
    unwanted = [m for m in loaded if m.split(".")[0] in NOT_FOR_PORT_25 or m in NOT_FOR_PORT_25]
    unwanted += [m for m in loaded if any(m.startswith(f"{n}.") for n in NOT_FOR_PORT_25)]
    assert not unwanted


def test_a_bad_configuration_ends_the_worker_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    argv = worker_argv(["--config", str(missing)], [], 0)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("postel smtp worker: error:")
    assert "Traceback" not in done.stderr
