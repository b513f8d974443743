"""Migrations: upgrade from an empty database, no drift from the tables, downgrade and back.

Each test uses a database of its own in the session's cluster, under a unique
name, so reruns against the same cluster never collide.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import Engine, create_engine, inspect, pool, text

from cadastre.db.cluster import LocalCluster
from cadastre.db.jurisdictions import load_jurisdictions
from cadastre.db.migrate import alembic_config, upgrade
from cadastre.db.tables import metadata
from cadastre.ingest import import_licences
from cadastre.rules import RuleBook
from tests.live import SAMPLE

# The same filter as migrations/env.py (which cannot be imported: it runs the
# migrations when loaded). Tables PostGIS owns are not ours.
_POSTGIS_TABLES = {"spatial_ref_sys", "layer", "topology"}


def include_object(obj: Any, name: Any, type_: Any, reflected: Any, compare_to: Any) -> bool:
    if type_ == "table" and name in _POSTGIS_TABLES:
        return False
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))


@pytest.fixture
def fresh_url(cluster: LocalCluster) -> Iterator[str]:
    name = f"migration_check_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name)
    yield cluster.url(name)
    admin = create_engine(
        cluster.url("postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def fresh_engine(fresh_url: str) -> Iterator[Engine]:
    eng = create_engine(fresh_url, poolclass=pool.NullPool)
    yield eng
    eng.dispose()


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    assert head is not None
    return head


#: Triggers on the event log: append-only (0001) and ids in commit order (0008).
EVENT_TRIGGERS = {
    "licence_events_append_only",
    "licence_events_no_truncate",
    "licence_events_commit_order",
}


def _revision(engine: Engine) -> str | None:
    with engine.connect() as c:
        return MigrationContext.configure(c).get_current_revision()


def _our_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) & set(metadata.tables)


def _drift(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        ctx = MigrationContext.configure(
            c,
            opts={
                "target_metadata": metadata,
                "include_object": include_object,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        return list(compare_metadata(ctx, metadata))


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT tgname FROM pg_trigger "
                "WHERE tgrelid = 'licence_events'::regclass AND NOT tgisinternal"
            )
        )
        return {r[0] for r in rows}


def test_new_database_starts_empty(fresh_engine: Engine) -> None:
    assert _revision(fresh_engine) is None
    assert _our_tables(fresh_engine) == set()


def test_upgrade_from_empty(fresh_url: str, fresh_engine: Engine) -> None:
    upgrade(fresh_url)
    assert _revision(fresh_engine) == _head()
    assert _our_tables(fresh_engine) == set(metadata.tables)


def test_upgrade_installs_postgis_and_append_only_triggers(
    fresh_url: str, fresh_engine: Engine
) -> None:
    upgrade(fresh_url)
    with fresh_engine.connect() as c:
        assert c.execute(text("SELECT postgis_version()")).scalar_one()
    assert _triggers(fresh_engine) == EVENT_TRIGGERS


def test_upgrade_is_idempotent(fresh_url: str, fresh_engine: Engine) -> None:
    upgrade(fresh_url)
    upgrade(fresh_url)
    assert _revision(fresh_engine) == _head()


def test_no_drift_between_migrations_and_tables(fresh_url: str, fresh_engine: Engine) -> None:
    upgrade(fresh_url)
    assert _drift(fresh_engine) == []


def test_drift_check_detects_a_difference(fresh_url: str, fresh_engine: Engine) -> None:
    # Guard against a comparison that can never fail.
    upgrade(fresh_url)
    with fresh_engine.begin() as c:
        c.execute(text("ALTER TABLE parties ADD COLUMN stray text"))
    diffs = _drift(fresh_engine)
    assert any(d[0] == "remove_column" and d[2] == "parties" for d in diffs), diffs


def test_downgrade_to_base_and_upgrade_again(fresh_url: str, fresh_engine: Engine) -> None:
    upgrade(fresh_url)
    command.downgrade(alembic_config(fresh_url), "base")
    assert _revision(fresh_engine) is None
    assert _our_tables(fresh_engine) == set()
    with fresh_engine.connect() as c:
        fn = c.execute(text("SELECT to_regprocedure('cadastre_append_only()')")).scalar_one()
    assert fn is None

    upgrade(fresh_url)
    assert _revision(fresh_engine) == _head()
    assert _our_tables(fresh_engine) == set(metadata.tables)
    assert _triggers(fresh_engine) == EVENT_TRIGGERS
    assert _drift(fresh_engine) == []


def test_0004_backfills_the_generalisation_the_triggers_keep(
    fresh_url: str, fresh_engine: Engine, rules: RuleBook
) -> None:
    """Licences entered at head, taken down to 0003 and back up: the backfilled minzoom,
    generalised geometry and density cells equal what the triggers kept."""
    upgrade(fresh_url)
    provinces = json.loads((SAMPLE / "pakistan_admin1_provinces.geojson").read_text())
    frame = gpd.read_file(SAMPLE / "licences_synthetic.geojson").head(300)
    with fresh_engine.begin() as c:
        load_jurisdictions(c, provinces["features"], source="test")
        report = import_licences(c, frame, "EPSG:4326", rules=rules, actor="test")
    assert report.imported == 300

    def state() -> tuple[Any, ...]:
        with fresh_engine.connect() as c:
            return tuple(
                c.execute(text(sql)).all()
                for sql in (
                    "SELECT id, minzoom, ST_AsEWKB(geom_low), ST_AsEWKB(geom_mid) "
                    "FROM licences ORDER BY id",
                    "SELECT level, cx, cy, n, applied, granted, round(area_km2::numeric, 6) "
                    "FROM licence_cells ORDER BY 1, 2, 3",
                    "SELECT level, cx, cy, status, licence_type, province_code, n, "
                    "round(area_km2::numeric, 6) FROM licence_density ORDER BY 1, 2, 3, 4, 5, 6",
                )
            )

    kept = state()
    assert len(kept[0]) == 300
    assert kept[1] and kept[2]
    command.downgrade(alembic_config(fresh_url), "0003")
    assert "licence_cells" not in _our_tables(fresh_engine)
    upgrade(fresh_url)
    assert state() == kept
