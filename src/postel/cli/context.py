"""What every CLI command gets: its streams, how to prompt, and the store.

Commands open the store exactly as ``serve`` does: from the configuration file given
with ``--config``, or the embedded default in ``--data DIR`` (default ``postel-data``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from postel.clock import SystemClock
from postel.config import Config, resolve_config
from postel.errors import PostelError
from postel.store.api import Store


class CliError(PostelError):
    """A command failed in a way the user can fix; its message is one line for stderr."""


@dataclass(frozen=True, slots=True)
class Io:
    """The process's streams and password prompt (tests substitute their own)."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    getpass: Callable[[str], str]

    @classmethod
    def system(cls) -> Io:
        """The process's own streams, looked up now (so that redirections apply)."""
        return cls(sys.stdin, sys.stdout, sys.stderr, getpass.getpass)

    def stdin_is_tty(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def out(self, line: str) -> None:
        """One line on standard output."""
        print(line, file=self.stdout)

    def out_bytes(self, data: bytes) -> None:
        """Octets on standard output as they are (through the text stream's binary
        buffer when it has one)."""
        self.stdout.flush()
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            self.stdout.write(data.decode("utf-8", "surrogateescape"))


def config_from_args(args: argparse.Namespace) -> Config:
    """The configuration selected by ``--config FILE`` or ``--data DIR``."""
    config_path: Path | None = getattr(args, "config", None)
    data_dir: Path | None = getattr(args, "data", None)
    return resolve_config(config_path, data_dir)


@asynccontextmanager
async def open_configured_store(config: Config) -> AsyncIterator[Store]:
    """Open (create or migrate, then recover) the store ``config`` names, and close it.

    Raises CliError when the data directory cannot be created.
    """
    from postel.store import open_store

    try:
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CliError(f"cannot create data directory {config.data_dir}: {exc.strerror}") from None
    store = open_store(config.database_url, config.blob_dir, clock=SystemClock())
    await store.open(recovery=False)  # a server may be running on this store
    try:
        yield store
    finally:
        await store.close()
