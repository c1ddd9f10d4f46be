"""Argument parsing of POP3 commands: message numbers and TOP line counts.

Keywords and arguments are separated by spaces; runs of spaces are tolerated. Numbers
are ASCII digits only.

Spec: RFC 1939 §3 (command syntax), §5, §7 (TOP); RFC 2449 §4.
"""

from __future__ import annotations

import re

from postel.pop3 import limits

__all__ = ["MsgArg", "parse_msg", "parse_optional_msg", "parse_top", "split_args"]

_MSG = re.compile(rf"[0-9]{{1,{limits.MSG_NUMBER_DIGITS_MAX}}}")
_LINES = re.compile(rf"[0-9]{{1,{limits.TOP_LINES_DIGITS_MAX}}}")

MsgArg = int | None
"""A parsed optional message number (None: no argument)."""


def split_args(arg: str) -> list[str]:
    """The space-separated arguments of a command line after its keyword.
    Spec: RFC 1939 §3."""
    return [part for part in arg.split(" ") if part]


def parse_msg(arg: str) -> int | None:
    """Exactly one message-number argument, or None when it is missing, extra or not a
    number. The number may be out of range: the maildrop decides. Spec: RFC 1939 §5."""
    args = split_args(arg)
    if len(args) != 1 or _MSG.fullmatch(args[0]) is None:
        return None
    return int(args[0])


def parse_optional_msg(arg: str) -> tuple[bool, MsgArg]:
    """(ok, msg) for LIST and UIDL: no argument gives (True, None); one number gives
    (True, n); anything else (False, None). Spec: RFC 1939 §5 (LIST), §7 (UIDL)."""
    args = split_args(arg)
    if not args:
        return True, None
    msg = parse_msg(arg)
    return msg is not None, msg


def parse_top(arg: str) -> tuple[int, int] | None:
    """(msg, lines) of ``TOP msg n``, n a non-negative number; None for bad syntax.
    Spec: RFC 1939 §7 (TOP)."""
    args = split_args(arg)
    if len(args) != 2 or _MSG.fullmatch(args[0]) is None or _LINES.fullmatch(args[1]) is None:
        return None
    return int(args[0]), int(args[1])
