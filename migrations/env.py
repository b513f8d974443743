"""Alembic environment: the schema source is ``cadastre.db.tables.metadata``.

The URL comes from ``config.attributes["url"]`` when a caller passes one (the
CLI and the tests do), otherwise from the settings.
"""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool

from cadastre.db.engine import database_url
from cadastre.db.tables import metadata
from cadastre.settings import Settings

config = context.config

# Objects PostGIS itself owns (spatial_ref_sys, topology...) are not ours.
_POSTGIS_TABLES = {"spatial_ref_sys", "layer", "topology"}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and name in _POSTGIS_TABLES:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def run_migrations_online() -> None:
    url = config.attributes.get("url") or database_url(Settings())
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
