"""Frames between an SMTP process and its DKIM worker process (``postel.dkim.runner``,
``postel.dkim.verify_worker``): a 4-octet big-endian length, then that many octets of
pickle. Kept apart from the worker's entry module so that importing ``postel.dkim``
never imports the module that ``python -m`` runs.

Spec: none (postel's own pipe protocol).
"""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["FRAME_HEADER", "FRAME_MAX", "JOB_ID_OCTETS", "frame", "job", "read_frame"]

FRAME_HEADER = 4
"""Octets of a frame's length prefix (big-endian)."""
FRAME_MAX = 256 * 1024 * 1024
"""The largest frame accepted: above the largest message verified (the SMTP size limit)
with its arguments. A larger length means a broken stream: the worker stops."""


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame's payload, or None at the end of ``stream`` (or a broken frame)."""
    head = _read_exactly(stream, FRAME_HEADER)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > FRAME_MAX:
        return None
    return _read_exactly(stream, size)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    parts: list[bytes] = []
    left = size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    return len(payload).to_bytes(FRAME_HEADER, "big") + payload


JOB_ID_OCTETS = 8
"""A job frame starts with the job's id (big-endian), then the callable's pickle, so
that a callable this process cannot load still gets its answer."""


def job(job_id: int, pickled: bytes) -> bytes:
    """The framed job: its id, then ``pickled`` (the pickled callable)."""
    return frame(job_id.to_bytes(JOB_ID_OCTETS, "big") + pickled)
