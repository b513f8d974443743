"""A bulk import killed with SIGKILL halfway leaves the register exactly as it was.

The import is one transaction; a process that dies never sends COMMIT, and
PostgreSQL rolls back what the dead client had written. The test proves it with a
real process, a real kill and a 30,000-licence file, against a database of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bench.register_bench import make_licences, write_file
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.generation import lock_for_write
from cadastre.ingest import import_licences
from cadastre.rules import RuleBook
from tests.live import scratch_database

CADASTRE = Path(sys.executable).parent / "cadastre"
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


def import_backend(engine: Engine) -> tuple[int, str | None] | None:
    """(pid, xid) of the import's server process, or None when it has gone."""
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT pid, backend_xid::text FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database()"
            ),
            {"app": APP},
        ).first()
    return (int(row[0]), row[1]) if row else None


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

            progress = tmp_path / "import.err"
            with progress.open("w") as err:
                proc = subprocess.Popen(
                    [str(CADASTRE), "import", "licences", str(path), "--actor", "doomed"],
                    env={**os.environ, "CADASTRE_DATABASE_URL": f"{url}&application_name={APP}"},
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
                try:
                    # Midway: the first 20,000 licences are written (the progress bar says
                    # so) in a transaction that holds an id (it has written rows).
                    deadline = time.monotonic() + 150  # a loaded machine imports slowly
                    while True:
                        assert proc.poll() is None, "the import ended before it could be killed"
                        assert time.monotonic() < deadline, progress.read_text()[-500:]
                        backend = import_backend(engine)
                        written = f"20000/{COUNT}" in progress.read_text()
                        if written and backend is not None and backend[1] is not None:
                            break
                        time.sleep(0.05)
                    os.kill(proc.pid, signal.SIGKILL)
                    out, _ = proc.communicate(timeout=10)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            assert proc.returncode == -signal.SIGKILL
            assert "imported" not in out

            # The server notices the dead client when its statement ends, and rolls back.
            deadline = time.monotonic() + 30
            while import_backend(engine) is not None:
                assert time.monotonic() < deadline, "the import's backend outlived its client"
                time.sleep(0.1)
            assert register_state(engine) == before

            # Nothing is left locked: the next writer takes the register's lock at once.
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                lock_for_write(conn)
        finally:
            engine.dispose()
