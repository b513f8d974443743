"""``cadastre obligations run``: expiry and notices in one run, nothing the second time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from typer.testing import CliRunner

from cadastre.cli import app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.licences import register_today
from cadastre.rules import RuleBook
from tests.db.test_bulk_transition import candidate, register
from tests.live import scratch_database

runner = CliRunner()


def test_the_job_runs_once_and_then_finds_nothing(cluster: LocalCluster, rules: RuleBook) -> None:
    today = register_today("Asia/Karachi")
    with scratch_database(cluster, "cli_obligations") as url:
        engine = make_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                ended = register(conn, rules, [candidate(i) for i in range(3)])  # expired 2025
                cands = [
                    candidate(10 + i, expires_on=today + timedelta(days=400)) for i in range(2)
                ]
                late = register(conn, rules, cands)  # granted 2020: rent and start overdue
            env = {"CADASTRE_DATABASE_URL": url}
            first = runner.invoke(app, ["obligations", "run", "--actor", "cron"], env=env)
            assert first.exit_code == 0, first.output
            assert "3 titles expired (PK-BA 3), 2 notices issued" in first.output
            second = runner.invoke(app, ["obligations", "run"], env=env)
            assert second.exit_code == 0, second.output
            assert "0 titles expired (none), 0 notices issued" in second.output
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT licence_id, action, actor FROM licence_events "
                        "WHERE action IN ('expire', 'notice') ORDER BY licence_id"
                    )
                ).all()
            assert [tuple(r) for r in rows] == [
                *((i, "expire", "cron") for i in sorted(ended)),
                *((i, "notice", "cron") for i in sorted(late)),
            ]
        finally:
            engine.dispose()
