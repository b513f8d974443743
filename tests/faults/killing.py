"""Killing a real ``cadastre`` process midway through one long transaction.

Shared by the killed-import and killed-transition tests: start the command as a
subprocess on a database of its own, wait until its progress bar shows ``marker``
and its server process holds a transaction id (it has written rows), SIGKILL it,
and wait until the server has noticed the dead client and rolled back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, text

from cadastre.db.generation import lock_for_write

CADASTRE = Path(sys.executable).parent / "cadastre"


def backend(engine: Engine, app: str) -> tuple[int, str | None] | None:
    """(pid, xid) of the server process of the client named ``app``, or None when gone."""
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT pid, backend_xid::text FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database()"
            ),
            {"app": app},
        ).first()
    return (int(row[0]), row[1]) if row else None


def kill_midway(
    args: list[str],
    *,
    url: str,
    engine: Engine,
    app: str,
    progress: Path,
    marker: str,
    deadline_s: float,
    poll_s: float = 0.05,
) -> str:
    """Run ``cadastre *args`` against ``url``, SIGKILL it once ``marker`` is in its
    progress output and its backend holds a transaction id; its standard output."""
    with progress.open("w") as err:
        proc = subprocess.Popen(
            [str(CADASTRE), *args],
            env={**os.environ, "CADASTRE_DATABASE_URL": f"{url}&application_name={app}"},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            deadline = time.monotonic() + deadline_s
            while True:
                assert proc.poll() is None, (
                    "it ended before it could be killed: " + progress.read_text()[-500:]
                )
                assert time.monotonic() < deadline, progress.read_text()[-500:]
                seen = backend(engine, app)
                if marker in progress.read_text() and seen is not None and seen[1] is not None:
                    break
                time.sleep(poll_s)
            os.kill(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The server notices the dead client when its statement ends, and rolls back.
    deadline = time.monotonic() + 30
    while backend(engine, app) is not None:
        assert time.monotonic() < deadline, "the killed client's backend outlived it"
        time.sleep(0.1)
    return out


def assert_lock_free(engine: Engine) -> None:
    """Nothing is left locked: the next writer takes the register's lock at once."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '2s'"))
        lock_for_write(conn)
