"""A PostGIS cluster that the project owns, in a data directory of its own.

Used by ``cadastre db start|stop|status`` when no ``CADASTRE_DATABASE_URL`` is
set, and by the test suite, which starts a throw-away cluster in a temporary
directory. It never touches the machine's default cluster: it has its own data
directory, its own Unix-socket directory and its own port.

PostgreSQL refuses to run as root; when the caller is root the server runs as
the ``postgres`` system user (created by Debian's ``postgresql-common``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cadastre.errors import CadastreError

DB_NAME = "cadastre"
SERVICE_USER = "postgres"


class ClusterError(CadastreError):
    """The local cluster could not be set up, started or stopped."""

    code = "cluster_error"


def find_pg_bin() -> Path:
    """The newest PostgreSQL ``bin`` directory that has PostGIS installed beside it.

    ``CADASTRE_PG_BIN`` overrides the search.
    """
    override = os.environ.get("CADASTRE_PG_BIN")
    if override:
        return Path(override)
    candidates: list[tuple[int, Path]] = []
    for bindir in glob.glob("/usr/lib/postgresql/*/bin"):
        version = Path(bindir).parent.name
        if not version.isdigit():
            continue
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            candidates.append((int(version), Path(bindir)))
    if not candidates:
        raise ClusterError(
            "no PostgreSQL with PostGIS found under /usr/lib/postgresql; install "
            "postgresql and postgresql-postgis (scripts/setup.sh does) or set "
            "CADASTRE_DATABASE_URL"
        )
    return max(candidates)[1]


@dataclass(frozen=True)
class LocalCluster:
    """A PostgreSQL cluster under ``root`` listening on ``port``.

    Layout: ``root/pgdata`` (the cluster), ``root/run`` (the Unix socket),
    ``root/postgres.log``.
    """

    root: Path
    port: int
    listen: str = "127.0.0.1"
    durable: bool = True

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = DB_NAME) -> str:
        """SQLAlchemy URL that reaches the cluster through its Unix socket."""
        return f"postgresql+psycopg2://{SERVICE_USER}@/{database}?host={self.socket_dir}&port={self.port}"

    # -- running commands as the right user ---------------------------------

    def _as_owner(self, args: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise ClusterError(f"{what} failed: {tail}")

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SERVICE_USER)
            except KeyError as exc:
                raise ClusterError(
                    f"running as root needs the {SERVICE_USER!r} system user "
                    "(install the postgresql package)"
                ) from exc
            # The server runs as postgres: it must reach the folder and own its parts.
            os.chmod(self.root, 0o755)
            for path in (self.root, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            probe = subprocess.run(
                ["runuser", "-u", SERVICE_USER, "--", "test", "-w", str(self.root)],
                check=False,
            )
            if probe.returncode != 0:
                raise ClusterError(
                    f"the {SERVICE_USER!r} user cannot reach {self.root} (a parent folder "
                    "is private); set CADASTRE_DATA_DIR to a folder it can reach"
                )

    # -- lifecycle ------------------------------------------------------------

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (``initdb``) if it does not exist yet."""
        self._prepare_dirs()
        if self.initialised():
            return
        bindir = find_pg_bin()
        proc = self._as_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SERVICE_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        self._check(proc, "initdb")
        settings: Mapping[str, str] = {
            "listen_addresses": f"'{self.listen}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "timezone": "'UTC'",
            "max_connections": "100",
            "shared_buffers": "256MB",
            "jit": "off",
        }
        if not self.durable:
            settings = {
                **settings,
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
        conf = "".join(f"{k} = {v}\n" for k, v in settings.items())
        auto = self.pgdata / "postgresql.auto.conf"
        with auto.open("a") as fh:
            fh.write("# written by cadastre.db.cluster\n" + conf)

    def running(self) -> bool:
        if not self.initialised():
            return False
        proc = self._as_owner([str(find_pg_bin() / "pg_ctl"), "status", "-D", str(self.pgdata)])
        return proc.returncode == 0

    def start(self) -> None:
        """Initialise if needed, start the server and create the ``cadastre`` database."""
        self.init()
        if not self.running():
            proc = self._as_owner(
                [
                    str(find_pg_bin() / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.logfile),
                ]
            )
            if proc.returncode != 0:
                log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
                raise ClusterError(f"pg_ctl start failed: {proc.stderr.strip()}\n{log}")
        self.create_database(DB_NAME)

    def create_database(self, name: str) -> None:
        psql = [
            str(find_pg_bin() / "psql"),
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            SERVICE_USER,
            "-d",
            "postgres",
            "-tAc",
        ]
        # ``name`` is the module constant, never user input.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608
        exists = self._as_owner([*psql, query])
        self._check(exists, "psql")
        if exists.stdout.strip() != "1":
            self._check(self._as_owner([*psql, f'CREATE DATABASE "{name}"']), "CREATE DATABASE")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open transactions roll back)."""
        if self.running():
            proc = self._as_owner(
                [str(find_pg_bin() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)]
            )
            self._check(proc, "pg_ctl stop")

    def destroy(self) -> None:
        """Stop the server and delete the whole data directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> dict[str, object]:
        return {
            "data_dir": str(self.root),
            "initialised": self.initialised(),
            "running": self.running(),
            "port": self.port,
            "socket_dir": str(self.socket_dir),
            "url": self.url(),
        }
