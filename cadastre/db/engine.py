"""Engine construction and the transaction boundary every write goes through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from sqlalchemy import URL, Connection, Engine, create_engine, event

from cadastre.db.cluster import LocalCluster
from cadastre.db.generation import Watch, current
from cadastre.db.tables import SERVICE_ROLE
from cadastre.settings import Settings

#: Seconds a new connection may take before the request fails (503).
CONNECT_TIMEOUT_S = 5

_roles: WeakKeyDictionary[Engine, str | None] = WeakKeyDictionary()


def database_url(settings: Settings) -> str:
    """``CADASTRE_DATABASE_URL`` when set, else the project's own local cluster."""
    if settings.database_url:
        return settings.database_url
    return local_cluster(settings).url()


def local_cluster(settings: Settings) -> LocalCluster:
    return LocalCluster(settings.data_dir.resolve(), settings.pg_port, settings.pg_listen)


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    pre_ping: bool = True,
    autocommit: bool = False,
    role: str | None = SERVICE_ROLE,
) -> Engine:
    """An engine whose sessions run in UTC, with pre-ping so a restarted database heals.

    Each new connection takes ``role`` (``SET ROLE``): the service's role, which may
    not rewrite the event log. Before the migration that creates the role has run,
    the connection stays as it logged in (only ``cadastre db upgrade`` runs then).

    ``autocommit`` without ``pre_ping`` is the read path of hot map requests: each
    statement is its own transaction, so a tile costs one round trip, not four
    (ping, BEGIN, the query, COMMIT).
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=3600,
        # A server that does not answer (a host gone, a firewall dropping packets) fails
        # the request within seconds rather than holding a worker thread for minutes.
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )

    _roles[engine] = role

    @event.listens_for(engine, "connect")
    def _session_defaults(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        with dbapi_conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            if role:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cur.fetchone() is not None:
                    cur.execute(f'SET ROLE "{role}"')
        dbapi_conn.commit()

    return engine


class Database:
    """Hands out connections inside one transaction each.

    ``with db.begin() as conn:`` commits when the block ends and rolls back
    everything if it raises: every write is one transaction.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.generation = Watch()
        size = engine.pool.size() if hasattr(engine.pool, "size") else 10
        self.reader = make_engine(
            engine.url,
            pool_size=size,
            pre_ping=False,
            autocommit=True,
            role=_roles.get(engine, SERVICE_ROLE),
        )

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; subclasses may make it a savepoint (tests)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; when it changed the map, the generation it committed is noted."""
        committed: int | None = None
        with self.transaction() as conn:
            conn.info.pop("cadastre_wrote", None)
            try:
                yield conn
                if conn.info.get("cadastre_wrote"):
                    committed = current(conn)
            finally:
                # A connection that died under the transaction (a database restart) has
                # no info to clean, and asking for it would hide the real error.
                if not conn.invalidated:
                    conn.info.pop("cadastre_wrote", None)
        if committed is not None:
            self.generation.at_least(committed)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for one read-only statement (a tile): autocommit, no pre-ping.

        A connection lost to a database restart fails that one request (503) and
        the pool starts afresh; the next request reconnects.
        """
        with self.reader.connect() as conn:
            yield conn

    def map_generation(self, conn: Connection) -> int:
        """The committed generation: from the watch when it can vouch for it, else asked."""
        known = self.generation.known()
        return known if known is not None else current(conn)

    def listen(self) -> None:
        """Follow generations committed by other processes (see :class:`Watch`)."""
        url = self.engine.url.set(drivername="postgresql")
        self.generation.start(url.render_as_string(hide_password=False))

    def dispose(self) -> None:
        self.generation.stop()
        self.engine.dispose()
        self.reader.dispose()
