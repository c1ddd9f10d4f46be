"""Where a new password comes from: a file, a generator, a prompt, or standard input."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from postel.cli.context import CliError, Io
from postel.directory import generate_password, make_credentials
from postel.directory.passwords import PASSWORD_LENGTH_MAX, PasswordRejected
from postel.store.api import Credentials

PASSWORD_LINE_MAX = PASSWORD_LENGTH_MAX * 4 + 2
"""Characters read from a password file or standard input at most (the longest accepted
password, generously, plus its line ending)."""


@dataclass(frozen=True, slots=True)
class NewPassword:
    """A password about to be set; ``generated`` ones are shown to the user once."""

    password: str
    generated: bool


def add_password_options(parser: argparse.ArgumentParser) -> None:
    """``--password-file F`` and ``--generate``, mutually exclusive."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="read the password from the first line of FILE ('-' for standard input)",
    )
    group.add_argument(
        "--generate", action="store_true", help="generate a password and print it once"
    )


def obtain_password(args: argparse.Namespace, io: Io) -> NewPassword:
    """The password chosen by the options: ``--generate``, ``--password-file``, else a
    double prompt on a terminal, else one line of standard input. Raises CliError."""
    if args.generate:
        return NewPassword(generate_password(), generated=True)
    if args.password_file is not None:
        return NewPassword(_from_file(args.password_file, io), generated=False)
    if io.stdin_is_tty():
        try:
            first = io.getpass("New password: ")
            repeated = io.getpass("Repeat password: ")
        except EOFError:  # Ctrl-D at the prompt
            raise CliError("no password given (use --generate or --password-file)") from None
        if repeated != first:
            raise CliError("the passwords do not match")
        return NewPassword(first, generated=False)
    line = _first_line(io.stdin.readline(PASSWORD_LINE_MAX))
    if not line:
        raise CliError("no password on standard input (use --generate or --password-file)")
    return NewPassword(line, generated=False)


def credentials_for(new: NewPassword) -> Credentials:
    """Hash ``new``; a password that is too short, too long or has prohibited
    characters is a CliError."""
    try:
        return make_credentials(new.password)
    except PasswordRejected as exc:
        raise CliError(str(exc)) from None


def _from_file(path: Path, io: Io) -> str:
    if str(path) == "-":
        line = io.stdin.readline(PASSWORD_LINE_MAX)
    else:
        try:
            with path.open(encoding="utf-8") as file:
                line = file.readline(PASSWORD_LINE_MAX)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise CliError(f"cannot read password file {path}: {reason}") from None
    password = _first_line(line)
    if not password:
        raise CliError(f"password file {path} is empty")
    return password


def _first_line(line: str) -> str:
    return line.removesuffix("\n").removesuffix("\r")
