"""Run Alembic from code (the CLI and the tests), without an alembic.ini."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config


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
