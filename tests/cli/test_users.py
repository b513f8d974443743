"""``cadastre users``: accounts and keys from the command line, against a real database."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cadastre.cli import app
from cadastre.db.cluster import LocalCluster
from cadastre.settings import Settings
from tests.live import scratch_database

runner = CliRunner()


@pytest.fixture(scope="module")
def url(cluster: LocalCluster) -> Iterator[str]:
    with scratch_database(cluster, "users") as u:
        yield u


def cli(url: str, data_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    env = {"CADASTRE_DATABASE_URL": url, "CADASTRE_DATA_DIR": str(data_dir)}
    result = runner.invoke(app, ["users", *args], input=stdin, env=env)
    return result.exit_code, result.output


def test_users_and_keys_from_the_command_line(url: str, tmp_path: Path) -> None:
    code, out = cli(url, tmp_path, "add", "po.lahore", "--role", "officer", "--province", "Punjab",
                    "--password-stdin", stdin="a long enough password\n")  # fmt: skip
    assert code == 0, out
    assert "officer of PK-PB" in out
    code, out = cli(url, tmp_path, "add", "po.lahore", "--role", "geologist", "--no-password")
    assert code == 1 and "exists" in out
    code, out = cli(url, tmp_path, "add", "x.y", "--role", "officer", "--no-password")
    assert code == 1 and "province" in out
    code, out = cli(url, tmp_path, "keys", "create", "po.lahore", "--name", "QGIS")
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    assert key.startswith("cad_")
    code, out = cli(url, tmp_path, "list", "--json")
    listed = {row["username"]: row for row in map(json.loads, out.splitlines())}
    assert listed["po.lahore"]["role"] == "officer"
    assert listed["po.lahore"]["province"] == "PK-PB"
    assert listed["po.lahore"]["signs_in_with_password"] is True

    settings = Settings(environment="test", database_url=url)
    with TestClient(create_app(settings)) as c:
        me = c.get("/auth/me", headers={"X-API-Key": key}).json()
        assert (me["username"], me["role"], me["province"]) == ("po.lahore", "officer", "PK-PB")
        r = c.post(
            "/auth/token", data={"username": "po.lahore", "password": "a long enough password"}
        )
        assert r.status_code == 200, r.text

    code, out = cli(url, tmp_path, "keys", "list", "po.lahore")
    prefix = out.split()[0]
    assert key.startswith(prefix) and key not in out
    assert cli(url, tmp_path, "keys", "revoke", prefix)[0] == 0
    assert cli(url, tmp_path, "disable", "po.lahore")[0] == 0
    with TestClient(create_app(settings)) as c:
        assert c.get("/auth/me", headers={"X-API-Key": key}).status_code == 401
        r = c.post(
            "/auth/token", data={"username": "po.lahore", "password": "a long enough password"}
        )
        assert r.status_code == 401 and "disabled" in r.json()["detail"]


def test_first_admin_is_made_once_with_a_private_password_file(url: str, tmp_path: Path) -> None:
    code, out = cli(url, tmp_path, "first-admin", "--username", "root.admin")
    assert code == 0, out
    secret = tmp_path / "first-admin-password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    name, password = secret.read_text().split()
    assert name == "root.admin" and password not in out
    code, out = cli(url, tmp_path, "first-admin", "--username", "another")
    assert code == 0 and out == ""  # an admin exists: nothing is made
    settings = Settings(environment="test", database_url=url)
    with TestClient(create_app(settings)) as c:
        r = c.post("/auth/token", data={"username": name, "password": password})
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "admin"
