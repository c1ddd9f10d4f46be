"""``[smtp] processes``: extra postel processes serving port 25, every delivery committed
by the main process (docs/adr/0005-smtp-worker-processes.md).

- the load is spread: workers answer transactions, and every message acknowledged by
  any process is stored exactly once; a worker holds no database connection (its
  store is the main process's) and loads no SQL toolkit;
- a worker killed with SIGKILL in the middle of the load loses no acknowledged message,
  and the main process starts it again;
- when the main process is killed, its workers stop by themselves (no orphan keeps
  answering on port 25 with nobody to commit);
- a second server started on the same ports stops with "the port is already in use"
  instead of taking a share of the connections;
- no port accepts mail before every service is wired (a report asked for by a message
  taken at once is sent).

Spec: RELIABILITY.md D1 (250 only after the durable commit), D2.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .imap_helpers import add_accounts
from .server import PostelServer, write_config
from .stored import read_inbox
from .test_dsn import ALICE, BOB, submit, wait_for_report

RCPT = "many@proc.test"
CLIENTS = 12
_MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)\r\n", re.MULTILINE)
_WORKER_PIDS = re.compile(r"smtp\.workers pids=([0-9,]+)")
_TRANSACTION_WORKER = re.compile(r"smtp\.transaction .* worker=(\d+)")


def _workers(server: PostelServer, timeout: float = 60.0) -> list[int]:
    """The worker pids the main process logged once they all accept connections."""
    deadline = time.monotonic() + timeout
    while not (found := _WORKER_PIDS.findall(server.log.read_text())):
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.1)
    return [int(pid) for pid in found[-1].split(",")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"
    return True


class _Load:
    """Threads sending distinct messages until told to stop; a message whose 250 was
    seen is ``acked`` (by Message-ID); trouble is retried with a new message."""

    def __init__(self, server: PostelServer, per_client: int) -> None:
        self.server = server
        self.per_client = per_client
        self.acked: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    def _client(self, n: int) -> None:
        done = attempt = 0
        deadline = time.monotonic() + 90
        while done < self.per_client and time.monotonic() < deadline:
            attempt += 1
            message_id = f"<c{n}.a{attempt}@proc.test>"
            content = f"Message-ID: {message_id}\r\nSubject: {n}/{attempt}\r\n\r\nbody\r\n"
            try:
                with smtplib.SMTP(self.server.host, self.server.smtp_port, timeout=30) as c:
                    c.sendmail("load@remote.test", [RCPT], content.encode())
            except (smtplib.SMTPException, OSError) as exc:
                with self.lock:
                    self.errors[type(exc).__name__] += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.acked.add(message_id)
            done += 1


def _stored_ids(server: PostelServer) -> Counter[str]:
    ids: Counter[str] = Counter()
    for message in read_inbox(server, RCPT):
        found = _MESSAGE_ID.search(message.content)
        assert found is not None
        ids[found.group(1).decode()] += 1
    return ids


@pytest.fixture
def server(postel_factory: ServerFactory) -> PostelServer:
    srv = postel_factory("processes", processes=3)
    add_accounts(srv, RCPT)
    srv.start()
    _workers(srv)  # every process serves before the test begins
    return srv


def test_workers_share_the_load_and_every_message_lands(server: PostelServer) -> None:
    load = _Load(server, per_client=15)
    load.run()
    assert len(load.acked) == CLIENTS * 15, load.errors
    stored = _stored_ids(server)
    assert set(stored) == load.acked and max(stored.values()) == 1
    workers = set(_workers(server))
    served = set(map(int, _TRANSACTION_WORKER.findall(server.log.read_text())))
    assert len(workers) == 2 and served and served <= workers, (workers, served)
    assert re.search(r"smtp +\S+ +serving \(3 processes\)", server.log.read_text())  # banner
    for pid in workers:  # a worker's store is the main process's: no database here
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "sqlite3" not in maps and "psycopg" not in maps, pid


def test_a_worker_loads_no_sql_toolkit() -> None:
    """What the worker's entry imports (docs/adr/0005, Memory)."""
    probe = (
        "import sys, postel.app.worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'sqlite3', 'psycopg', 'alembic'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_killed_worker_loses_no_acknowledged_mail_and_comes_back(server: PostelServer) -> None:
    victim = _workers(server)[0]
    load = _Load(server, per_client=25)
    thread = threading.Thread(target=load.run)
    thread.start()
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    thread.join(150)
    stored = _stored_ids(server)
    assert load.acked <= set(stored), "an acknowledged message is missing"
    assert max(stored.values()) == 1
    deadline = time.monotonic() + 30
    log = ""
    while time.monotonic() < deadline:
        log = server.log.read_text()
        restarted = re.findall(r"smtp\.worker\.started slot=\d+ pid=(\d+)", log)
        if len(restarted) >= 3 and any(
            f"smtp.worker.ready pid={pid}" in log for pid in restarted[2:]
        ):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the killed worker was not started again:\n" + log[-3000:])
    assert "smtp.worker.exited" in log


def test_workers_stop_when_the_main_process_dies(server: PostelServer) -> None:
    workers = _workers(server)
    assert all(_alive(pid) for pid in workers)
    clients = []  # transactions in the middle of DATA, on both processes
    for _ in range(8):
        client = socket.create_connection(server.address, timeout=10)
        client.recv(1024)
        client.sendall(b"EHLO t.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<%s>\r\n" % RCPT.encode())
        client.sendall(b"DATA\r\nSubject: cut\r\n\r\nhalf\r\n")
        clients.append(client)
    time.sleep(0.5)
    server.kill()
    for client in clients:  # a worker may still answer (451) before it stops
        with contextlib.suppress(OSError):
            client.sendall(b".\r\n")
            client.recv(4096)
        client.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the main process"
    assert "Traceback" not in server.log.read_text()  # an expected end, not an error
    with (
        pytest.raises(OSError),
        socket.create_connection((server.host, server.smtp_port), timeout=2),
    ):
        pass


def test_a_second_server_on_the_same_port_stops_with_one_clear_line(
    server: PostelServer, tmp_path: Path
) -> None:
    """Another instance (its own data directory, SMTP only, several processes): its
    SO_REUSEPORT sockets could join the running group, so that a share of the mail
    would go to the wrong data directory. It must stop instead."""
    config = write_config(tmp_path / "second", server.smtp_port, processes=2)
    second = subprocess.run(
        [sys.executable, "-m", "postel", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert f"{server.smtp_port} for smtp: the port is already in use" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    load = _Load(server, per_client=2)
    load.run()
    assert len(load.acked) == CLIENTS * 2 and set(_stored_ids(server)) == load.acked


def test_a_message_taken_at_once_gets_its_success_report(postel_factory: ServerFactory) -> None:
    """No port accepts before every service is wired (the report sender, the queue's
    wake-ups): the main process's listeners used to accept while its workers were
    still starting, and the NOTIFY=SUCCESS report of a message taken then was lost."""
    srv = postel_factory("early", processes=3)
    add_accounts(srv, ALICE, BOB)
    srv.start(ready_port=srv.submission_port)  # the main process's own listener
    submit(srv, BOB, "early-1", rcpt_options=("NOTIFY=SUCCESS",))
    assert wait_for_report(srv, "early-1")["Content-Type"].startswith("multipart/report")


def test_a_killed_worker_s_temp_files_are_removed_before_it_starts_again(
    server: PostelServer,
) -> None:
    """Messages it was receiving (larger than the spill threshold: spooled to
    blobs/tmp) end with it; their files must not wait for the next server start."""
    victim = _workers(server)[0]
    tmp = server.blob_dir / "tmp"
    clients: list[socket.socket] = []
    deadline = time.monotonic() + 60
    # The kernel spreads connections over the processes' listeners: open them in
    # rounds until one of the victim's spools is on disk.
    while not list(tmp.glob(f"blob-{victim}-*")):
        assert time.monotonic() < deadline, sorted(p.name for p in tmp.iterdir())
        round_ = []
        for _ in range(6):
            client = socket.create_connection(server.address, timeout=10)
            client.recv(1024)
            client.sendall(
                b"EHLO t.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % RCPT.encode()
            )
            round_.append(client)
        time.sleep(0.3)
        for client in round_:
            client.sendall(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000)
        clients += round_
        settle = time.monotonic() + 3
        while not list(tmp.glob(f"blob-{victim}-*")) and time.monotonic() < settle:
            time.sleep(0.1)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while "smtp.worker.exited" not in server.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not list(tmp.glob(f"blob-{victim}-*"))
    assert re.search(
        rf"smtp\.worker\.exited .*pid={victim} .*temp_files_removed=[1-9]", server.log.read_text()
    )
    for client in clients:
        client.close()


def test_with_main_serves_false_the_workers_take_every_session(
    postel_factory: ServerFactory,
) -> None:
    """``[smtp] main_serves = false``: the main process only commits; every transaction
    is a worker's, and every acknowledged message lands once."""
    srv = postel_factory("workers-only", processes=2, main_serves=False)
    add_accounts(srv, RCPT)
    srv.start()
    (worker,) = _workers(srv)
    load = _Load(srv, per_client=5)
    load.run()
    assert len(load.acked) == CLIENTS * 5, load.errors
    stored = _stored_ids(srv)
    assert set(stored) == load.acked and max(stored.values()) == 1
    log = srv.log.read_text()
    served = _TRANSACTION_WORKER.findall(log)
    assert len(served) == CLIENTS * 5 and set(served) == {str(worker)}
    assert len(re.findall(r"smtp\.transaction ", log)) == len(served)  # none in main
    assert re.search(r"smtp +\S+ +serving \(1 worker process\)", log)  # banner
