"""The main process loads the services its configuration serves: with SMTP alone it
imports neither IMAP, POP3 nor submission, nor Alembic once the store is at the
newest schema revision (their modules would only take memory), and it still starts
and stops cleanly."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from postel.config.model import Service

NOT_SERVED = (
    "postel.server.imap_session",
    "postel.server.pop3_session",
    "postel.server.submission_session",
    "alembic",
    "mako",
)

PROBE = """
import asyncio, os, signal, sys
from pathlib import Path
from postel.app import serve
from postel.config import load

async def report(port):
    while True:  # until the SMTP port greets: serve() has started its services
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            greeting = await reader.readline()
            writer.close()
        except OSError:
            greeting = b""
        if greeting.startswith(b"220 "):
            break
        await asyncio.sleep(0.1)
    print("LOADED " + " ".join(sorted(sys.modules)), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

async def main(path, port):
    probe = asyncio.create_task(report(port))
    print("EXIT", await serve(load(Path(path))), flush=True)
    await probe

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(base: Path, port: int) -> Path:
    off = "\n".join(f"{s.value} = []" for s in Service if s is not Service.SMTP)
    path = base / "postel.toml"
    path.write_text(
        f"""hostname = "mx.example.org"
data_dir = "{base / "data"}"

[listen]
smtp = ["127.0.0.1:{port}"]
{off}

[tls]
cert_file = "{base / "data" / "tls" / "cert.pem"}"
key_file = "{base / "data" / "tls" / "key.pem"}"
generate_self_signed = true
""",
        encoding="utf-8",
    )
    return path


def test_smtp_only_loads_no_other_service(tmp_path: Path) -> None:
    port = _free_port()
    config = _config(tmp_path, port)
    runs = []
    for _ in range(2):  # the first start creates the store (and migrates), the second not
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(config), str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert "EXIT 0" in lines, done.stdout
        loaded = next(x for x in lines if x.startswith("LOADED ")).split()[1:]
        runs.append(loaded)
    assert "postel.server.smtp_session" in runs[1]
    unwanted = [m for m in runs[1] if any(m == n or m.startswith(n + ".") for n in NOT_SERVED)]
    assert not unwanted
