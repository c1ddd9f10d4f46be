"""A throwaway PostgreSQL cluster for tests, built from Debian's binaries.

``PgCluster.start()`` runs ``initdb`` and ``pg_ctl`` (found by glob under
``/usr/lib/postgresql/<version>/bin``) in a fresh temp dir, listening on a free loopback
port with its Unix socket inside the temp dir, ``fsync=on``. initdb refuses to run as
root, so as root the cluster runs as an unprivileged user (``postel-test``, created with
useradd when missing, else ``nobody``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

import ports

PG_GLOB = "/usr/lib/postgresql/*/bin"
TEST_USER = "postel-test"
START_TIMEOUT_S = 60


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries were found."""


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<ver>/bin`` holding initdb and pg_ctl."""
    candidates = [
        Path(d)
        for d in glob.glob(PG_GLOB)
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file()
    ]
    if not candidates:
        raise PostgresMissing(
            f"PostgreSQL server binaries not found ({PG_GLOB}/initdb); install the "
            "postgresql package, or set POSTEL_TEST_NO_POSTGRES=1 to skip PostgreSQL tests"
        )

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    return max(candidates, key=version)


def free_port() -> int:
    """A TCP port on 127.0.0.1 free a moment ago (below the ephemeral range)."""
    return ports.free_port("127.0.0.1")


def _unprivileged_user() -> str:
    try:
        pwd.getpwnam(TEST_USER)
        return TEST_USER
    except KeyError:
        pass
    created = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
        capture_output=True,
        check=False,
    )
    if created.returncode == 0:
        return TEST_USER
    return "nobody"


@dataclass
class PgCluster:
    """One running cluster; ``url(db)`` gives a SQLAlchemy URL for a database on it."""

    bindir: Path
    base: Path
    port: int
    user: str | None
    """OS user the server runs as (None: the current user)."""

    @classmethod
    def start(cls) -> PgCluster:
        bindir = find_bindir()
        base = Path(tempfile.mkdtemp(prefix="postel-pg-"))
        user = _unprivileged_user() if os.geteuid() == 0 else None
        cluster = cls(bindir=bindir, base=base, port=free_port(), user=user)
        try:
            cluster._init_and_start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.base)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _init_and_start(self) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        data = self.base / "data"
        sockets = self.base / "sock"
        self._run("mkdir", str(sockets))
        # --no-sync only skips flushing initdb's own files; the server runs with fsync=on.
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sockets} -c fsync=on "
            "-c synchronous_commit=on -c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (from template0) and return its URL."""
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
