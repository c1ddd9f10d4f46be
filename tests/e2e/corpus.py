"""The email corpus of ../shared/conformance (see its SOURCE.md) as SMTP test data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "email-corpus"
INDEX = CORPUS / "expected-imap-dovecot-2.3.19.jsonl"
"""One JSON line per message file of the corpus: the authoritative list of messages
(SOURCE.md: 'for every message here, one JSON line')."""

_LINE_END = re.compile(rb"\r\n|\r|\n")


def normalise(raw: bytes) -> bytes:
    """SOURCE.md's normalisation: drop a leading mbox ``From `` line, then every bare CR
    or bare LF becomes CRLF."""
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        raw = b"" if nl < 0 else raw[nl + 1 :]
    return _LINE_END.sub(b"\r\n", raw)


def as_sent(normalised: bytes) -> bytes:
    """The content an SMTP client transmits for ``normalised``: mail data always ends
    with CRLF, which a client adds when missing. Spec: RFC 5321 §4.1.1.4."""
    return normalised if normalised.endswith(b"\r\n") else normalised + b"\r\n"


def dot_stuff(content: bytes) -> bytes:
    """Transparency: a line starting with ``.`` gets another ``.``. ``content`` ends with
    CRLF. Spec: RFC 5321 §4.5.2."""
    stuffed = content.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


@dataclass(frozen=True, slots=True)
class CorpusMessage:
    name: str
    """Path relative to the corpus root, e.g. ``spamassassin/nice/001``."""
    content: bytes
    """What an SMTP client sends: normalised, ending with CRLF."""


def corpus_names() -> list[str]:
    """Every message file of the corpus (empty when the corpus is absent)."""
    if not INDEX.is_file():
        return []
    return [json.loads(line)["file"] for line in INDEX.read_text().splitlines() if line.strip()]


def load(name: str) -> CorpusMessage:
    return CorpusMessage(name, as_sent(normalise((CORPUS / name).read_bytes())))
