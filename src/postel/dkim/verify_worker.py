"""The verification worker process: runs the jobs ``postel.dkim.runner`` sends it.

Started by ``VerifyRunner`` as ``python -m postel.dkim.verify_worker``. It reads
frames from standard input and answers each on standard output, one at a time, in
the order received (``postel.dkim.framing``). A job frame holds the job id (8 octets)
and the pickled callable; an answer is the pickle of ``(job id, ok, value)`` with the
callable's return value, the exception it raised when ``ok`` is False, or (``ok``
None) why the callable could not be loaded here.
Both ends are this program's own processes, so the pickles are trusted.

The worker exits 0 at the end of its input (its parent closed the pipe, or died),
runs at its parent's priority (every message's answer waits for its verdict: measured
with Postfix's ten-process smtp-source as the load, nice +5 cost 10% of throughput with
the checks on, the worker waiting behind the load for a core; docs/adr/0008), ignores
SIGINT (a Ctrl-C on the terminal is the parent's business) and writes nothing else to
standard output: stray output goes to standard error.

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

from postel.dkim.framing import JOB_ID_OCTETS, frame, read_frame


def answer(job_id: int, ok: bool | None, value: object) -> bytes:
    """The framed answer to one job: ``ok`` True with the return value, False with the
    exception raised, None when the job could not be loaded here (the sender runs it
    itself). An exception that cannot be pickled is sent as a RuntimeError naming it."""
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
        job_id = int.from_bytes(payload[:JOB_ID_OCTETS], "big")
        try:
            function = pickle.loads(payload[JOB_ID_OCTETS:])
        except Exception as exc:
            sink.write(answer(job_id, None, repr(exc)[:500]))
            sink.flush()
            continue
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
