"""The register's generation: a number that changes whenever a change to anything on a map commits.

Caches of tiles and pages key on it: a reader sees only the committed value, so
an entry made before a change can never be served after the change committed.
Every writing transaction takes the generation's row lock first, so all writers
lock in one order (generation, then receipt counters or province locks) and
cannot deadlock one another.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def lock_for_write(conn: Connection) -> None:
    """Take the write lock of the register (held until the transaction ends)."""
    conn.execute(text("SELECT value FROM register_generation WHERE id = 1 FOR UPDATE"))


def current(conn: Connection) -> int:
    """The committed generation as this transaction sees it."""
    return int(
        conn.execute(text("SELECT value FROM register_generation WHERE id = 1")).scalar_one()
    )
