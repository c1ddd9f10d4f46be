"""OBJECTID identifiers: MAILBOXID of a mailbox and EMAILID of a message.

* MAILBOXID is ``F`` + the mailbox's row id + ``-`` + its UIDVALIDITY. The row id
  survives RENAME; UIDVALIDITY values come from one server-wide counter that never
  hands a value out twice, so a deleted and recreated mailbox (even one that reuses
  a row id) gets a new MAILBOXID, as §4.1 requires.
* EMAILID is ``M`` + 32 base32 characters of SHA-256 over the stored message's
  immutable content: the blob key (itself the SHA-256 of the blob) and the per-recipient
  trace prefix. It is therefore the same after COPY and MOVE (the copy shares blob and
  prefix, §5.1 SHOULD) and never changes for a message (§5.1 MUST); two messages
  with the same octets share one EMAILID, which §5.1 allows ("the same EMAILID for
  both" is only forbidden for different content).
* THREADID is not computed: NIL (§5.2).

Spec: RFC 8474 §4 (objectid syntax), §4.1 (MAILBOXID), §5.1 (EMAILID), §5.2 (THREADID).
"""

from __future__ import annotations

import base64
import hashlib
import re

__all__ = ["OBJECTID_MAX", "email_id", "is_objectid", "mailbox_id"]

OBJECTID_MAX = 255
"""Longest objectid. Spec: RFC 8474 §4 (objectid = 1*255(ALPHA / DIGIT / "_" / "-"))."""
_EMAILID_CHARS = 32
"""Base32 characters of the digest kept (160 bits: collisions are not a concern)."""
_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def mailbox_id(row_id: int, uidvalidity: int) -> str:
    """``F<row id>-<UIDVALIDITY>``, e.g. ``F12-1700000000``. Spec: RFC 8474 §4.1."""
    return f"F{row_id}-{uidvalidity}"


def email_id(blob_key: str, trace_prefix: bytes) -> str:
    """``M`` + 32 lower-case base32 characters derived from the message content.
    Spec: RFC 8474 §5.1."""
    digest = hashlib.sha256(blob_key.encode("ascii") + b"\x00" + trace_prefix).digest()
    return "M" + base64.b32encode(digest).decode("ascii").lower()[:_EMAILID_CHARS]


def is_objectid(text: str) -> bool:
    """True for a valid objectid. Spec: RFC 8474 §4."""
    return _OBJECTID.fullmatch(text) is not None
