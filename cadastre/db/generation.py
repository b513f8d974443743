"""The register's generation: a number that changes whenever a change to anything on a map commits.

Caches of tiles and pages key on it: a reader sees only the committed value, so
an entry made before a change can never be served after the change committed.
Every writing transaction takes the generation's row lock first, so all writers
lock in one order (generation, then receipt counters or province locks) and
cannot deadlock one another.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time

import psycopg2
from sqlalchemy import Connection, text

from cadastre.db.tables import GENERATION_CHANNEL

log = logging.getLogger(__name__)


def lock_for_write(conn: Connection) -> None:
    """Take the write lock of the register (held until the transaction ends)."""
    conn.execute(text("SELECT value FROM register_generation WHERE id = 1 FOR UPDATE"))
    mark_written(conn)


def current(conn: Connection) -> int:
    """The committed generation as this transaction sees it."""
    return int(
        conn.execute(text("SELECT value FROM register_generation WHERE id = 1")).scalar_one()
    )


def mark_written(conn: Connection) -> None:
    """Note on the connection that this transaction changed the map (see :class:`Watch`)."""
    conn.info["cadastre_wrote"] = True


class Watch:
    """The newest committed generation this process knows of, without asking the database.

    Two sources keep it current:

    * every transaction of this process that changed the map reports the
      generation it committed before its caller hears of the commit
      (:meth:`at_least`, called by :meth:`cadastre.db.engine.Database.begin`),
      so this process never serves a page older than its own last write;
    * a listener thread holds ``LISTEN cadastre_generation`` on a connection of
      its own and takes every generation other processes commit (the CLI's
      imports, other servers), as PostgreSQL delivers the notification at commit.

    :meth:`known` answers only while the listener is connected; otherwise callers
    ask the database (the slow path), so a lost connection never serves stale data.
    """

    def __init__(self) -> None:
        self._value: int | None = None
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def known(self) -> int | None:
        """The generation, or None when it cannot be vouched for (ask the database)."""
        return self._value if self._live else None

    def at_least(self, value: int) -> None:
        with self._lock:
            if self._value is None or value > self._value:
                self._value = value

    # ------------------------------------------------------------ the listener

    def start(self, dsn: str) -> None:
        """Start listening (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake = os.pipe()
        self._thread = threading.Thread(
            target=self._listen, args=(dsn,), name="cadastre-generation", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None or self._wake is None:
            return
        self._stop.set()
        os.write(self._wake[1], b"x")
        self._thread.join(timeout=5)
        for fd in self._wake:
            os.close(fd)
        self._thread = None
        self._wake = None
        self._live = False

    def wait_live(self, timeout: float = 5.0) -> bool:
        """Wait until the listener is connected (tests, start-up)."""
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._live

    def _listen(self, dsn: str) -> None:
        assert self._wake is not None
        wake = self._wake[0]
        backoff = 0.1
        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg2.connect(dsn, application_name="cadastre-generation-listener")
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {GENERATION_CHANNEL}")
                    # Listening first, then reading: nothing committed in between is missed.
                    cur.execute(_READ)
                    row = cur.fetchone()
                    self.at_least(int(row[0]) if row else 0)
                self._live = True
                backoff = 0.1
                while not self._stop.is_set():
                    ready, _, _ = select.select([conn, wake], [], [], 10.0)
                    if wake in ready:
                        break
                    if not ready:  # quiet: prove the connection still answers
                        with conn.cursor() as cur:
                            cur.execute(_READ)
                            row = cur.fetchone()
                            self.at_least(int(row[0]) if row else 0)
                        continue
                    conn.poll()
                    while conn.notifies:
                        self.at_least(int(conn.notifies.pop(0).payload))
            except Exception:  # any failure: stop vouching, reconnect with backoff
                log.warning("generation listener lost its connection; retrying", exc_info=True)
                self._live = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if conn is not None:
                    conn.close()
                self._live = False


_READ = "SELECT value FROM register_generation WHERE id = 1"
