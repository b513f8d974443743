"""``cadastre transition``: one lifecycle action on many licences, as an account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from cadastre.cli import app
from cadastre.db import accounts
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.rules import RuleBook
from tests.db.test_bulk_transition import candidate, register
from tests.live import scratch_database

runner = CliRunner()


@pytest.fixture(scope="module")
def db(cluster: LocalCluster) -> Iterator[tuple[str, Engine]]:
    with scratch_database(cluster, "cli_transition") as url:
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            accounts.add_account(conn, "bulk-admin", "admin", created_by="tests")
            accounts.add_account(conn, "punjab", "officer", province="PK-PB", created_by="tests")
            accounts.add_account(conn, "geo", "geologist", created_by="tests")
        yield url, engine
        engine.dispose()


def granted(engine: Engine, rules: RuleBook, n: int, **kw: date) -> list[int]:
    with engine.begin() as conn:
        return register(conn, rules, [candidate(i, **kw) for i in range(n)])


def run(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["transition", *args], env={"CADASTRE_DATABASE_URL": url})
    return result.exit_code, result.output


def test_a_file_of_ids_is_transitioned_with_one_event_each(
    db: tuple[str, Engine], rules: RuleBook, tmp_path: Path
) -> None:
    url, engine = db
    ids = granted(engine, rules, 5)
    listing = tmp_path / "ids.csv"
    listing.write_text("id\n" + "\n".join(map(str, ids)) + "\n")
    code, out = run(url, "surrender", "--file", str(listing), "--as", "bulk-admin")
    assert code == 0, out
    assert "surrender: 5 licences (PK-BA 5) as bulk-admin" in out
    with engine.connect() as c:
        events = c.execute(
            text(
                "SELECT licence_id, actor, after FROM licence_events "
                "WHERE action = 'surrender' AND licence_id = ANY(:ids) ORDER BY licence_id"
            ),
            {"ids": ids},
        ).all()
    assert [tuple(e) for e in events] == [
        (i, "bulk-admin", {"status": "surrendered"}) for i in sorted(ids)
    ]


def test_refusals_name_the_licence_and_change_nothing(
    db: tuple[str, Engine], rules: RuleBook, tmp_path: Path
) -> None:
    url, engine = db
    ids = granted(engine, rules, 3)
    with engine.connect() as c:
        numbers = [
            c.execute(text("SELECT licence_no FROM licences WHERE id = :i"), {"i": i}).scalar_one()
            for i in ids
        ]
    listing = tmp_path / "numbers.csv"
    listing.write_text("licence_no\n" + "\n".join(numbers) + "\n")
    code, out = run(url, "cancel", "--file", str(listing), "--as", "punjab")
    assert code == 1
    assert "(id " in out and "nothing was changed" in out
    assert "officer of Punjab may not change licences of Balochistan" in out
    code, out = run(url, "cancel", "--file", str(listing), "--as", "geo")
    assert code == 1 and "'geologist' may not change licences" in out
    code, out = run(url, "cancel", "--file", str(listing), "--as", "nobody")
    assert code == 1 and "'nobody' no longer exists" in out
    code, out = run(url, "cancel", "--as", "bulk-admin")
    assert code == 1 and "either --file or filters" in out
    with engine.connect() as c:
        statuses = c.execute(
            text("SELECT DISTINCT status FROM licences WHERE id = ANY(:ids)"), {"ids": ids}
        ).scalars()
        assert list(statuses) == ["granted"]
    code, out = run(url, "cancel", "--file", str(listing), "--as", "bulk-admin")
    assert code == 0 and "cancel: 3 licences" in out, out
    code, out = run(url, "cancel", "--file", str(listing), "--as", "bulk-admin")
    assert code == 1
    assert f"(id {min(ids)}): cannot cancel a licence whose status is 'cancelled'" in out
