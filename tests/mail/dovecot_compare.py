"""Compare postel's ENVELOPE/BODY/BODYSTRUCTURE with Dovecot 2.3.19's reference answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from postel.mail import parse_message, render_body, render_bodystructure, render_envelope

from .imapsexp import Atom, fetch_items, parse

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance"
"""The shared conformance material beside the repository (../shared/conformance)."""
CORPUS = CONFORMANCE / "email-corpus"
EXPECTED = CORPUS / "expected-imap-dovecot-2.3.19.jsonl"
TORTURE = CONFORMANCE / "mime-torture"
TORTURE_MESSAGE = TORTURE / "crispin-torture-test.eml"
TORTURE_FETCH = TORTURE / "crispin-torture-test.dovecot-2.3.19-fetch.txt"

_BARE = re.compile(rb"\r\n|\r|\n")


def normalise(raw: bytes) -> bytes:
    """Drop a leading mbox ``From `` line, then bare CR or LF becomes CRLF (SOURCE.md)."""
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        raw = b"" if nl < 0 else raw[nl + 1 :]
    return _BARE.sub(b"\r\n", raw)


@dataclass(frozen=True)
class Case:
    file: str
    message: bytes
    size: int
    fetch: bytes


def cases() -> Iterator[Case]:
    """Every corpus message with Dovecot's answer, plus the torture test."""
    for line in EXPECTED.read_text().splitlines():
        obj = json.loads(line)
        data = normalise((CORPUS / obj["file"]).read_bytes())
        yield Case(obj["file"], data, obj["normalised_size"], obj["fetch"].encode("latin-1"))
    data = TORTURE_MESSAGE.read_bytes()
    yield Case("mime-torture/crispin-torture-test.eml", data, len(data), TORTURE_FETCH.read_bytes())


def ours(data: bytes) -> dict[str, object]:
    summary = parse_message(data)
    fetch = b"(RFC822.SIZE %d ENVELOPE %s BODY %s BODYSTRUCTURE %s)" % (
        summary.size,
        render_envelope(summary),
        render_body(summary),
        render_bodystructure(summary, True),
    )
    return fetch_items(fetch)


def _lower(v: object) -> object:
    return v.lower() if isinstance(v, bytes) else v


def _params(v: object) -> object:
    if isinstance(v, list):
        return [_lower(x) if i % 2 == 0 else x for i, x in enumerate(v)]
    return v


def _disposition(v: object) -> object:
    if isinstance(v, list) and len(v) == 2:
        return [_lower(v[0]), _params(v[1])]
    return v


def norm_body(v: object) -> object:
    """Case-fold what IMAP compares case-insensitively: types, subtypes, parameter names."""
    if not isinstance(v, list) or not v:
        return v
    if isinstance(v[0], list):
        k = 0
        while k < len(v) and isinstance(v[k], list):
            k += 1
        out: list[object] = [norm_body(x) for x in v[:k]]
        rest = list(v[k:])
        if rest:
            rest[0] = _lower(rest[0])
        if len(rest) > 1:
            rest[1] = _params(rest[1])
        if len(rest) > 2:
            rest[2] = _disposition(rest[2])
        return out + rest
    out = list(v)
    out[0], out[1] = _lower(out[0]), _lower(out[1])
    if len(out) > 2:
        out[2] = _params(out[2])
    if len(out) > 5:
        out[5] = _lower(out[5])
    is_msg = out[0] == b"message" and out[1] == b"rfc822" and len(out) > 9
    if is_msg:
        out[8] = norm_body(out[8])
        ext = 11
    elif out[0] == b"text":
        ext = 9
    else:
        ext = 8
    if len(out) > ext:
        out[ext] = _disposition(out[ext])
    return out


def _show(v: object) -> str:
    if v is None:
        return "NIL"
    if isinstance(v, Atom):
        return v.text.decode("latin-1")
    if isinstance(v, bytes):
        return json.dumps(v.decode("latin-1"))
    if isinstance(v, list):
        return "(" + " ".join(_show(x) for x in v) + ")"
    return repr(v)


def first_difference(a: object, b: object, path: str = "") -> tuple[str, str, str] | None:
    """(path, ours, dovecot) of the first difference, or None."""
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            d = first_difference(x, y, f"{path}/{i}")
            if d is not None:
                return d
        if len(a) != len(b):
            return (f"{path}#len", _show(a), _show(b))
        return None
    if a != b:
        return (path or "/", _show(a), _show(b))
    return None


def differences(case: Case) -> list[tuple[str, str, str, str]]:
    """(field, path, ours, dovecot) for each FETCH item that differs."""
    mine = ours(case.message)
    theirs = fetch_items(case.fetch)
    out: list[tuple[str, str, str, str]] = []
    for name in ("RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE"):
        a, b = mine[name], theirs[name]
        if name in ("BODY", "BODYSTRUCTURE"):
            a, b = norm_body(a), norm_body(b)
        d = first_difference(a, b)
        if d is not None:
            out.append((name, *d))
    return out


__all__ = ["Case", "cases", "differences", "normalise", "parse"]
