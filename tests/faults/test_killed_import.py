"""A bulk import killed with SIGKILL halfway leaves the register exactly as it was.

The import is one transaction; a process that dies never sends COMMIT, and
PostgreSQL rolls back what the dead client had written. The test proves it with a
real process, a real kill and a 30,000-licence file, against a database of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bench.register_bench import make_licences, write_file
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.ingest import import_licences
from cadastre.rules import RuleBook
from tests.faults.killing import assert_lock_free, kill_midway
from tests.live import scratch_database

COUNT = 30_000
APP = "killed-import-test"

#: The register: every table an import writes to, and the generation.
TABLES = (
    "licences",
    "licence_versions",
    "licence_events",
    "parties",
    "beneficial_owners",
    "licence_conflicts",
    "licence_cells",
    "receipt_counters",
)


def register_state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as c:
        state: dict[str, Any] = {
            t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES
        }
        state["generation"] = c.execute(
            text("SELECT value FROM register_generation WHERE id = 1")
        ).scalar_one()
        state["receipts"] = [
            tuple(r) for r in c.execute(text("SELECT * FROM receipt_counters ORDER BY 1, 2"))
        ]
    return state


@pytest.mark.slow
def test_a_killed_import_leaves_the_register_as_it_was(
    cluster: LocalCluster, rules: RuleBook, tmp_path: Path
) -> None:
    frame = make_licences(COUNT + 40, seed=6)
    path = tmp_path / "licences.geojson"
    write_file(frame.iloc[40:], path)
    with scratch_database(cluster, "killed") as url:
        engine = make_engine(url, pool_size=2)
        try:
            # A register with something in it, so "as before" is more than "empty".
            with engine.begin() as conn:
                import_licences(
                    conn, make_licences(40, seed=7), "OGC:CRS84", rules=rules, actor="t"
                )
            before = register_state(engine)
            assert before["licences"] == 40

            # Midway: the first 20,000 licences are written (the progress bar says so) in
            # a transaction that holds an id (it has written rows). A loaded machine
            # imports slowly: a generous deadline.
            out = kill_midway(
                ["import", "licences", str(path), "--actor", "doomed"],
                url=url,
                engine=engine,
                app=APP,
                progress=tmp_path / "import.err",
                marker=f"20000/{COUNT}",
                deadline_s=150,
            )
            assert "imported" not in out
            assert register_state(engine) == before
            assert_lock_free(engine)
        finally:
            engine.dispose()
