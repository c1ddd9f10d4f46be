"""postel's log lines: one per event on stdout, ``time level event key=value...``."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def setup_logging(worker: int | None = None) -> None:
    """One line per event on stdout: ``time level event key=value...``; an SMTP worker
    process's lines end with ``worker=PID``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_KeyValueFormatter())
    if worker is not None:
        handler.addFilter(_WorkerTag(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("POSTEL_LOG_LEVEL", "INFO").upper())
    # The lines name no source file, thread or process (a worker's tag is its own
    # attribute), so records skip finding them: a stack walk and three lookups per line.
    # Spec: https://docs.python.org/3/howto/logging.html#optimization
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's start and stop lines duplicate web.listening / server.stopped.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message"}  # uvicorn's terminal-colour copy of the text
)


def _log_value(value: object) -> str:
    """A value for a log line: strings with spaces, quotes or anything not printable
    (control characters, line and paragraph separators) are written escaped with repr(),
    so a client's input can never forge a log line or reach the terminal raw."""
    text = str(value)
    if isinstance(value, str) and (
        not text or not text.isprintable() or " " in text or "'" in text or '"' in text
    ):
        return repr(text)
    return text


class _WorkerTag(logging.Filter):
    def __init__(self, pid: int) -> None:
        super().__init__()
        self._pid = pid

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self._pid
        return True


class _KeyValueFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_log_value(v)}" for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS
        )
        second = int(record.created)
        if second != self._second:  # the time text changes once a second
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        base = f"{self._stamp} {record.levelname} {record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            base += "\n" + self.formatException(record.exc_info)
        return f"{base} {extras}" if extras else base
