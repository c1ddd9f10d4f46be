"""Alembic environment: runs migrations on the connection the store hands over.

The store calls ``postel.store.migrate.upgrade`` which puts an open connection into
``config.attributes["connection"]``; no alembic.ini or URL is read from disk.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from postel.store.schema import metadata

_PG_MIGRATION_LOCK = 0x706F7374
"""Advisory lock id serialising concurrent migrations of one PostgreSQL database."""


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("postel migrations run only through postel.store.migrate")
    _run(connection)


_main()
