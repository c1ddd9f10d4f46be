"""The SQLite connections' settings: what makes a commit durable, and where a writer's
temporary files live. Spec: https://www.sqlite.org/pragma.html."""

from __future__ import annotations

import sys
from pathlib import Path

from postel.app.runtime import SWITCH_INTERVAL_S, set_switch_interval
from postel.store.engines import make_engines

SYNCHRONOUS_FULL = 2
TEMP_STORE_DEFAULT = 0
TEMP_STORE_MEMORY = 2


def _pragma(engine: object, name: str) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar())


def test_writer_is_durable_and_keeps_temporary_files_in_memory(tmp_path: Path) -> None:
    engines = make_engines(f"sqlite:///{tmp_path / 'postel.sqlite3'}")
    try:
        with engines.writer.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert _pragma(engines.writer, "synchronous") == SYNCHRONOUS_FULL
        assert _pragma(engines.writer, "temp_store") == TEMP_STORE_MEMORY
        # Readers sort and build temporary indexes for large queries: those may spill
        # to files rather than grow the process without bound.
        assert _pragma(engines.reader, "temp_store") == TEMP_STORE_DEFAULT
    finally:
        engines.writer.dispose()
        engines.reader.dispose()


def test_switch_interval() -> None:
    before = sys.getswitchinterval()
    try:
        set_switch_interval()
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    finally:
        sys.setswitchinterval(before)
