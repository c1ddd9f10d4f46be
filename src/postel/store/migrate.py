"""Schema migrations, run programmatically with Alembic at ``Store.open()``.

The revisions ship inside the package (``postel/store/migrations``); no alembic.ini is
needed on disk. Alembic (and through it Mako and Pygments) is imported only when a
migration runs, so importing the store stays cheap for short-lived CLI processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SCHEMA_HEAD = "0013"
"""The newest revision under ``migrations/versions`` (a test holds it equal to
Alembic's head): a database already there is not migrated, and the serving process
never imports Alembic, Mako and Pygments (about 9 MB resident)."""


def alembic_config() -> Config:
    """An Alembic Config pointing at the packaged revisions."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` (default: the newest).

    Raises ``sqlalchemy.exc.DBAPIError`` if the database refuses a migration step.
    """
    if revision in ("head", SCHEMA_HEAD) and current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database behind ``engine`` is at (Alembic's ``alembic_version``
    table), or None for a database without one."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])
