"""What every CLI command gets: its streams, how to prompt, and the store.

Commands open the store exactly as ``serve`` does: from the configuration file given
with ``--config``, or the embedded default in ``--data DIR`` (default ``postel-data``).
"""

from __future__ import annotations

import argparse
import asyncio
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

    def note(self, line: str) -> None:
        """One ``postel: note:`` line on standard error: the command succeeded, but the
        user should know something about its effect."""
        print(f"postel: note: {line}", file=self.stderr)

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


def domain_argument(text: str) -> str:
    """A domain name as typed on the command line: one trailing dot (the root, as zone
    files and ``dig`` write names) is dropped; the commands check the rest.
    Spec: RFC 1034 §3.1 (absolute names)."""
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def config_from_args(
    args: argparse.Namespace, *, existing: bool = True, creates: bool = False
) -> Config:
    """The configuration selected by ``--config FILE`` or ``--data DIR``.

    With neither given the data directory is ``./postel-data``; ``existing`` (the
    default for admin commands) then requires it to exist, so a command run in the
    wrong directory says so instead of creating an empty data directory there. A
    ``--data DIR``, or a configuration file's ``data_dir``/``database_url``, that names
    no SQLite database of postel's (a directory that does not exist, or some other
    directory) is refused the same way unless the command ``creates`` it (``domain
    add``, the first step of setting one up): a mistyped path must not answer with an
    empty listing and leave a new database behind. A PostgreSQL database is not
    checked here (opening it reports a missing one).
    Raises CliError for that, ConfigError for a bad file."""
    config_path: Path | None = getattr(args, "config", None)
    data_dir: Path | None = getattr(args, "data", None)
    config = resolve_config(config_path, data_dir)
    if not existing:
        return config
    if config_path is None and data_dir is None and not config.data_dir.exists():
        raise CliError(
            f"no postel data here ({config.data_dir.absolute()} does not exist): run the "
            "command where `postel serve` keeps its data, or give --data DIR or --config FILE"
        )
    if creates or (config_path is None and data_dir is None):
        return config
    if not config.database_url.startswith("sqlite:///"):
        return config
    database = Path(config.database_url.removeprefix("sqlite:///"))
    if database.exists():
        return config
    if config_path is None:
        raise CliError(
            f"no postel data in {config.data_dir.absolute()} (no {database.name} "
            "there): check --data; `postel serve` or `postel domain add` makes a new data "
            "directory"
        )
    raise CliError(
        f"no postel database at {database.absolute()} (data_dir or database_url in "
        f"{config_path}): check the configuration file; `postel serve` or `postel domain "
        "add` makes a new one"
    )


async def ensure_hosted(config: Config, domain: str) -> None:
    """Raise CliError unless ``domain`` (A-label, lower case) is one of this server's
    domains: keys and DNS records are only made for mail postel receives."""
    async with open_configured_store(config) as store:
        if await store.get_domain(domain) is None:
            raise CliError(f"{domain} is not a domain of this server (add it: postel domain add)")


def require_hosted(config: Config, domain: str) -> None:
    """``ensure_hosted`` for commands that run outside an event loop."""
    asyncio.run(ensure_hosted(config, domain))


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
