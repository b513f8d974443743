"""Helpers for tests that need committed data or a real HTTP server.

Most tests run in a rolled-back transaction; races, clients such as GDAL and
the CLI need data that is really committed, so they get a database of their
own in the test cluster, dropped at the end.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.jurisdictions import load_jurisdictions
from cadastre.db.migrate import upgrade

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str) -> None:
    """Migrate the database at ``url`` to head and load the provinces."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    provinces = json.loads((SAMPLE / "pakistan_admin1_provinces.geojson").read_text())
    with engine.begin() as conn:
        load_jurisdictions(conn, provinces["features"], source="test: geoBoundaries ADM1")
    engine.dispose()


#: Headers signing in as ``test-admin`` on the session's test database (set once).
ADMIN: dict[str, str] = {}


def admin_headers(url: str, username: str = "test-admin") -> dict[str, str]:
    """Headers signing in as an admin of the database at ``url`` (a new API key of the
    account, made if missing): what a live server's writes need."""
    from cadastre.db import accounts

    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            if username not in {a.username for a in accounts.list_accounts(conn)}:
                accounts.add_account(conn, username, "admin", created_by="tests")
            key, _ = accounts.create_key(conn, username, "tests")
    finally:
        engine.dispose()
    return {"X-API-Key": key}


@contextmanager
def scratch_database(cluster: LocalCluster, prefix: str) -> Iterator[str]:
    """A migrated database with the provinces loaded; dropped (forcibly) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex}"
    cluster.create_database(name)
    url = cluster.url(name)
    try:
        prepare(url)
        yield url
    finally:
        admin = create_engine(
            cluster.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        try:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


@contextmanager
def live_server(app: FastAPI, name: str = "uvicorn-test") -> Iterator[str]:
    """``app`` under uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not srv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
