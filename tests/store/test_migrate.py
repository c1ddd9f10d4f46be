"""Schema migration at Store.open(): SCHEMA_HEAD names Alembic's newest revision; a
database already at it is left alone without importing Alembic (the serving process
keeps its memory), one below it is migrated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from postel.store.migrate import SCHEMA_HEAD, alembic_config, current_revision, upgrade


def test_schema_head_is_alembics_head(tmp_path: Path) -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
    engine = create_engine(f"sqlite:///{tmp_path / 'head.db'}")
    assert current_revision(engine) is None
    upgrade(engine, "0012")
    assert current_revision(engine) == "0012"
    upgrade(engine)
    assert current_revision(engine) == SCHEMA_HEAD
    upgrade(engine)
    assert current_revision(engine) == SCHEMA_HEAD


CHILD = """
import asyncio, sys
from pathlib import Path
from postel.clock import SystemClock
from postel.store import open_store

async def main(url, blobs):
    store = open_store(url, Path(blobs), clock=SystemClock())
    await store.open()
    await store.close()
    print("alembic" in sys.modules)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_opening_an_up_to_date_store_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'open.db'}"
    runs = [
        subprocess.run(
            [sys.executable, "-c", CHILD, url, str(tmp_path / "blobs")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs == [["True"], ["False"]]  # the first open migrates, the second need not
