"""A bulk transition killed with SIGKILL midway leaves the register exactly as it was.

The transition is one transaction (every licence's update, version and event); a
process that dies never sends COMMIT, and PostgreSQL rolls back what the dead
client had written. Proved as the import is (test_killed_import.py): a real
``cadastre transition`` process on 30,000 granted titles, killed once it has
written half of them, against a database of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bench.register_bench import make_licences
from cadastre.db import accounts
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.ingest import import_licences
from cadastre.rules import RuleBook
from tests.faults.killing import assert_lock_free, kill_midway
from tests.live import scratch_database

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

            # Midway: the first 5,000 titles are expired, versioned and logged (the
            # progress bar says so) in a transaction that has written rows.
            out = kill_midway(
                [
                    "transition",
                    "expire",
                    "--as",
                    "bulk-admin",
                    "--status",
                    "granted",
                    "--expired-before",
                    "2024-01-01",
                ],
                url=url,
                engine=engine,
                app=APP,
                progress=tmp_path / "transition.err",
                marker=f"5000/{COUNT}",
                deadline_s=60,
                poll_s=0.02,
            )
            assert "expire:" not in out
            assert register_state(engine) == before
            assert_lock_free(engine)
        finally:
            engine.dispose()
