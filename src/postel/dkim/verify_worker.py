"""The verification worker process: runs the jobs ``postel.dkim.runner`` sends it.

Started by ``VerifyRunner`` as ``python -m postel.dkim.verify_worker``. It reads
frames from standard input and answers each on standard output, one at a time, in
the order received. A frame is a 4-octet big-endian length followed by that many
octets of pickle: a job is ``(job id, callable)``, an answer ``(job id, ok, value)``
with the callable's return value, or the exception it raised when ``ok`` is False.
Both ends are this program's own processes, so the pickles are trusted.

The worker exits 0 at the end of its input (its parent closed the pipe, or died),
ignores SIGINT (a Ctrl-C on the terminal is the parent's business) and writes
nothing else to standard output: stray output goes to standard error.

Spec: RFC 6376 §6.1 (verification is the verifier's CPU cost; doing it in another
process keeps it off the SMTP event loop's interpreter).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from typing import BinaryIO

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


def answer(job_id: int, ok: bool, value: object) -> bytes:
    """The framed answer to one job; an exception that cannot be pickled is sent as
    a RuntimeError naming it."""
    try:
        payload = pickle.dumps((job_id, ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        error = RuntimeError(f"verification failed: {value!r}"[:500])
        payload = pickle.dumps((job_id, False, error), protocol=pickle.HIGHEST_PROTOCOL)
    return frame(payload)


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """Answer every job read from ``source`` on ``sink`` until ``source`` ends."""
    while True:
        payload = read_frame(source)
        if payload is None:
            return
        job_id, function = pickle.loads(payload)
        try:
            value, ok = function(), True
        except Exception as exc:  # handed back to the awaiting coroutine
            value, ok = exc, False
        sink.write(answer(job_id, ok, value))
        sink.flush()


def main() -> int:
    """The worker's entry point (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed goes to stderr
    import postel.dkim  # noqa: F401  (dkimpy with postel's accelerators installed)

    with contextlib.suppress(BrokenPipeError):  # the parent went away while we answered
        serve(sys.stdin.buffer, sink)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
