"""Compact JSON for the paths every message takes: the stored MIME structure summary
and the frames between SMTP worker processes and the main process.

``orjson`` writes and reads where it can. Where it refuses (a str holding a lone
surrogate, an integer beyond 64 bits, a non-str key), the standard library's ``json``
does the same job, so the result never depends on which one ran: both write compact
RFC 8259 JSON that both read. Spec: RFC 8259 §2, §7, §8.1.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def dumps(value: object) -> bytes:
    """``value`` (dicts with str keys, lists, str, int, bool, None) as compact JSON in
    UTF-8. Raises TypeError or ValueError for what JSON cannot hold."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: surrogates, big ints, other keys
        return json.dumps(value, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """The value of one JSON text. Raises ValueError (json.JSONDecodeError) if it is
    not one."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # e.g. an escaped lone surrogate, which json reads
        return json.loads(data)
