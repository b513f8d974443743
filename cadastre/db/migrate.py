"""Run Alembic from code (the CLI and the tests), without an alembic.ini."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged ``migrations`` folder and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(resources.files("migrations")))))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def heads() -> tuple[str, ...]:
    """The head revisions of the packaged migrations (read from the files, no database)."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config("")).get_heads()))


def applied(conn: Connection) -> tuple[str, ...]:
    """The revisions the database on ``conn`` is at (empty when it was never migrated).

    Read from Alembic's version table directly: a migration context would log two INFO
    lines on every readiness probe.
    """
    if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
        return ()
    rows = conn.execute(text("SELECT version_num FROM alembic_version"))
    return tuple(sorted(str(r[0]) for r in rows))
