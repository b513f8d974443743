"""A bulk transition killed with SIGKILL midway leaves the register exactly as it was.

The transition is one transaction (every licence's update, version and event); a
process that dies never sends COMMIT, and PostgreSQL rolls back what the dead
client had written. Proved as the import is (test_killed_import.py): a real
``cadastre transition`` process on 30,000 granted titles, killed once it has
written half of them, against a database of its own.
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

from bench.register_bench import make_licences
from cadastre.db import accounts
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.generation import lock_for_write
from cadastre.ingest import import_licences
from cadastre.rules import RuleBook
from tests.live import scratch_database

CADASTRE = Path(sys.executable).parent / "cadastre"
COUNT = 30_000
APP = "killed-transition-test"

#: Every table a transition writes to (directly or by trigger), each as a checksum of
#: its rows: "as before" means the same rows, not just as many.
CHECKSUMS = {
    "licences": "SELECT id, status, version, changed_at FROM licences",
    "licence_versions": "SELECT licence_id, version, status, valid_from, valid_to "
    "FROM licence_versions",
    "licence_events": "SELECT id, licence_id, version, action, actor, before, after "
    "FROM licence_events",
    "licence_density": "SELECT * FROM licence_density",
    "licence_cells": "SELECT * FROM licence_cells",
    "register_generation": "SELECT * FROM register_generation",
}

CHECKSUM = "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ({}) t"


def register_state(engine: Engine) -> dict[str, Any]:
    # Whole rows as text, sorted, hashed: the fixed queries above, no input.
    with engine.connect() as c:
        return {
            table: tuple(c.execute(text(CHECKSUM.format(q))).one())
            for table, q in CHECKSUMS.items()
        }


def backend(engine: Engine) -> tuple[int, str | None] | None:
    """(pid, xid) of the transition's server process, or None when it has gone."""
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT pid, backend_xid::text FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database()"
            ),
            {"app": APP},
        ).first()
    return (int(row[0]), row[1]) if row else None


def granted_titles(count: int) -> Any:
    frame = make_licences(count, seed=8)
    frame["status"] = "granted"
    frame["granted_on"] = "2020-01-01"
    frame["expires_on"] = "2023-01-01"
    return frame


@pytest.mark.slow
def test_a_killed_bulk_transition_leaves_the_register_as_it_was(
    cluster: LocalCluster, rules: RuleBook, tmp_path: Path
) -> None:
    with scratch_database(cluster, "killed_transition") as url:
        engine = make_engine(url, pool_size=2)
        try:
            with engine.begin() as conn:
                import_licences(conn, granted_titles(COUNT), "OGC:CRS84", rules=rules, actor="t")
                accounts.add_account(conn, "bulk-admin", "admin", created_by="tests")
            with engine.connect() as c:
                c.execute(text("COMMIT"))
                c.execute(text("VACUUM ANALYZE licences, licence_versions"))
            before = register_state(engine)
            assert before["licences"][0] == COUNT

            progress = tmp_path / "transition.err"
            with progress.open("w") as err:
                proc = subprocess.Popen(
                    [
                        str(CADASTRE),
                        "transition",
                        "expire",
                        "--as",
                        "bulk-admin",
                        "--status",
                        "granted",
                        "--expired-before",
                        "2024-01-01",
                    ],
                    env={**os.environ, "CADASTRE_DATABASE_URL": f"{url}&application_name={APP}"},
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
                try:
                    # Midway: the first 5,000 titles are expired, versioned and logged (the
                    # progress bar says so) in a transaction that has written rows.
                    deadline = time.monotonic() + 60
                    while True:
                        assert proc.poll() is None, progress.read_text()[-500:]
                        assert time.monotonic() < deadline, progress.read_text()[-500:]
                        seen = backend(engine)
                        written = f"5000/{COUNT}" in progress.read_text()
                        if written and seen is not None and seen[1] is not None:
                            break
                        time.sleep(0.02)
                    os.kill(proc.pid, signal.SIGKILL)
                    out, _ = proc.communicate(timeout=10)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            assert proc.returncode == -signal.SIGKILL
            assert "expire:" not in out

            deadline = time.monotonic() + 30
            while backend(engine) is not None:
                assert time.monotonic() < deadline, "the transition's backend outlived its client"
                time.sleep(0.1)
            assert register_state(engine) == before

            # Nothing is left locked: the next writer takes the register's lock at once.
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                lock_for_write(conn)
        finally:
            engine.dispose()
