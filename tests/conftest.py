"""Fixtures: a real PostGIS that the suite starts itself, and a rolled-back transaction per test.

The cluster lives in a temporary directory with its own socket directory, so
it never meets another PostgreSQL on the machine. Every test runs inside one
outer transaction that is rolled back at the end; the code under test opens
savepoints inside it, exactly as it would open transactions.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine

from api.app import create_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import Database, make_engine
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from tests.live import ADMIN, admin_headers, prepare

# Every app and CLI the suite starts (in-process or as a subprocess) signs tokens with
# this key: outside development mode the service refuses to start without one.
os.environ.setdefault("CADASTRE_SECRET_KEY", "test-" + secrets.token_urlsafe(32))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="cadastre-test-"))
    pg = LocalCluster(root, _free_port(), listen="", durable=False)
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def database_url(cluster: LocalCluster) -> str:
    url = cluster.url()
    prepare(url)
    ADMIN.update(admin_headers(url))  # committed: every test's app may sign in with it
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url, pool_size=4)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def rules() -> RuleBook:
    return RuleBook.load()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(environment="test", database_url=database_url)


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            yield connection
        finally:
            outer.rollback()


class SavepointDatabase(Database):
    """Hands out the test's connection; each ``begin`` is a savepoint in the outer transaction."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection.engine)
        self.connection = connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.connection.begin_nested():
            yield self.connection

    read = transaction  # tiles read the test's uncommitted data too

    def dispose(self) -> None:
        self.generation.stop()
        self.reader.dispose()


@pytest.fixture
def db(conn: Connection) -> SavepointDatabase:
    return SavepointDatabase(conn)


Credentials = Callable[..., dict[str, str]]


@pytest.fixture
def credentials(conn: Connection) -> Credentials:
    """``credentials(role, province=None)``: headers of a new account of that role (an
    API key), made inside the test's transaction."""
    from cadastre.db import accounts

    made = 0

    def make(role: str, province: str | None = None, username: str | None = None) -> dict[str, str]:
        nonlocal made
        made += 1
        name = username or f"{role}-{(province or 'all').lower()}-{made}"
        accounts.add_account(conn, name, role, province=province, created_by="tests")
        key, _ = accounts.create_key(conn, name, "tests")
        return {"X-API-Key": key}

    return make


@pytest.fixture
def client(settings: Settings, db: SavepointDatabase) -> Iterator[TestClient]:
    """A client signed in as an admin (``test-admin``): the register's writes need one.
    Tests of what other roles (or anonymous readers) see make their own headers."""
    with TestClient(create_app(settings, db=db), headers=ADMIN) as c:
        yield c


@pytest.fixture
def anon(settings: Settings, db: SavepointDatabase) -> Iterator[TestClient]:
    """A client that does not sign in: the public."""
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI a skipped test is a failure: nothing may quietly not run.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"CI: {len(skipped)} test(s) skipped; skips fail the run", red=True)
