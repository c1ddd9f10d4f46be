"""Migration 0012: messages stored before it get their internal date as save date.
Spec: RFC 8514 §2."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from postel.store.migrate import upgrade


def test_existing_rows_get_their_internal_date(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0011")
    with engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys = OFF"))
        conn.execute(
            text(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size,"
                " blob_key, trace_prefix, summary) VALUES (1, 1, 1, '',"
                " '2001-02-03 04:05:06.000000', 3, 'k', x'', '{}')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT internal_date, save_date FROM messages")).one()
    assert row[1] == row[0] == "2001-02-03 04:05:06.000000"
    engine.dispose()
