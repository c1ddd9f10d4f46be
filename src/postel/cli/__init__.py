"""The ``postel`` command: ``serve``, ``config check``, and directory administration.

Exit status: 0 on success, 1 on an error (one line on standard error, never a
traceback), 2 on a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

from postel.cli.context import CliError, Io
from postel.cli.parser import build_parser
from postel.errors import PostelError

__all__ = ["CliError", "Io", "main", "run"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""128 + SIGINT, the shell convention."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``postel`` with ``argv`` (default: the process arguments); return the exit
    status. Files the command creates (a new store) are private to the user."""
    os.umask(0o077)
    return run(argv, Io.system())


def run(argv: Sequence[str] | None, io: Io) -> int:
    """``main`` with explicit streams and prompt (for tests and embedding)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "data", None) is not None and getattr(args, "config", None) is not None:
        print("postel: error: give either --data or --config, not both", file=io.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args, io)
    except (CliError, PostelError) as exc:
        print(f"postel: error: {exc}", file=io.stderr)
    except BrokenPipeError:
        # The reader went away (`postel message list ... | head`): not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("postel: interrupted", file=io.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the top of the command: one line, never a traceback
        print(f"postel: internal error: {type(exc).__name__}: {exc}", file=io.stderr)
    return EXIT_ERROR


def _dispatch(args: argparse.Namespace, io: Io) -> int:
    async_handler = getattr(args, "async_handler", None)
    if async_handler is not None:
        result: int = asyncio.run(async_handler(args, io))
        return result
    handler = args.handler
    code: int = handler(args, io)
    return code
