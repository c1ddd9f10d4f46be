"""Schema migrations, run programmatically with Alembic at ``Store.open()``.

The revisions ship inside the package (``postel/store/migrations``); no alembic.ini is
needed on disk. Alembic (and through it Mako and Pygments) is imported only when a
migration runs, so importing the store stays cheap for short-lived CLI processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
