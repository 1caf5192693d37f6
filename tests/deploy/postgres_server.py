"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks: `running_postgres(tmp_dir)`.

Debian's PostgreSQL binaries (initdb, pg_ctl) start a private cluster on a free loopback port with
trust authentication for one user, and `pg_ctl stop -m fast` stops it on the way out, also when the
body raised. Nothing is mocked: Dagster talks to it through dagster-postgres and psycopg2 exactly as
it would to a team's server.

PostgreSQL refuses to run as root. As root (containers, CI), initdb and pg_ctl run through
`runuser -u postgres --` and the data folder belongs to that user; it is then made with mkdtemp
under the system temp folder, because pytest's temporary folders are private to root (mode 0700)
and the postgres user could not enter them.

Missing binaries raise `PostgresUnavailable` saying what to install: a deployment test must not
skip itself into a green run.
"""

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "loraline"
DATABASE = "dagster"
SERVICE_USER = "postgres"  # the system user Debian's package creates; the server runs as it when we are root
START_TIMEOUT_S = 60
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A test server: durability settings off (a crash loses nothing we need), so Dagster's many small
# event writes do not each wait for an fsync on a busy disk.
SERVER_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed, or the server would not start."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens, who may connect, and the Dagster environment for it."""

    host: str
    port: int
    user: str
    db: str
    bindir: Path
    data_dir: Path
    log_file: Path

    @property
    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for the default database."""
        return self.env_for(self.db)

    def env_for(self, db: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables for database `db` on this server (trust auth: empty password)."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": db}

    def url(self, db: str | None = None) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db or self.db}"

    def connect(self, db: str | None = None):
        """A psycopg2 connection (autocommit) to `db`, default the server's own database."""
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=db or self.db)
        connection.autocommit = True
        return connection

    def create_database(self, name: str) -> str:
        """A new, empty database named `name` (lowercase letters, digits, '_'); returns the name."""
        if not DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use 1-63 lowercase letters, digits and '_', not starting with a digit")
        with contextlib.closing(self.connect()) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')  # validated above; identifiers cannot be bound parameters
        return name


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, or PATH."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if found:
            candidates.append(Path(found))
    by_version = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0))
    candidates += [Path(p) for p in reversed(by_version)]
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates) or "pg_config, /usr/lib/postgresql/*/bin and PATH found nothing"
    raise PostgresUnavailable(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found (looked in: {looked}). "
        "Install them: `apt-get install postgresql` (Debian/Ubuntu), or put a PostgreSQL bin folder on PATH."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_postgres(tmp_dir: Path) -> Iterator[PostgresServer]:
    """Start a fresh cluster (database `dagster`, user `loraline`, trust auth) on 127.0.0.1 and a
    free port; stop it and remove its data when the block ends, however it ends."""
    bindir = find_bindir()
    as_root = os.geteuid() == 0
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="loraline-pg-")) if as_root else tmp_dir / "postgres-data"
    # The server's log lives beside its data (where the postgres user can write) and is copied to
    # tmp_dir/postgres.log when the server stops, for a post-mortem.
    log_file, cluster = data_dir / "server.log", data_dir / "cluster"
    data_dir.mkdir(exist_ok=True)
    if as_root:
        _check_service_user()
        shutil.chown(data_dir, SERVICE_USER, SERVICE_USER)
    prefix = ["runuser", "-u", SERVICE_USER, "--"] if as_root else []
    started = False
    try:
        _run(prefix + [str(bindir / "initdb"), "-D", str(cluster), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale"], data_dir)
        for _ in range(3):  # another process may take the free port between the probe and the bind
            port = free_port()
            # No unix socket (listen on TCP only): socket paths are capped at ~107 bytes and a
            # pytest temp path can be longer; everything here connects over 127.0.0.1.
            options = " ".join(["-h 127.0.0.1", f"-p {port}", "-k ''", *(f"-c {s}" for s in SERVER_SETTINGS)])
            start = subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(log_file),
                                             "-w", "-t", str(START_TIMEOUT_S), "start"], cwd=data_dir, capture_output=True, text=True)
            started = start.returncode == 0
            if started or "could not bind" not in log_file.read_text(errors="replace"):
                break
        if not started:
            raise PostgresUnavailable(f"PostgreSQL did not start: {start.stdout}{start.stderr}\n--- {log_file} ---\n"
                                      f"{log_file.read_text(errors='replace')[-4000:]}")
        server = PostgresServer("127.0.0.1", port, USER, DATABASE, bindir, cluster, log_file)
        with contextlib.closing(server.connect("postgres")) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{DATABASE}"')
        yield server
    finally:
        if started:
            stop = subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"],
                                  cwd=data_dir, capture_output=True, text=True)
            if stop.returncode != 0:  # never leave a server behind: immediate mode does not wait for clients
                subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "-w", "stop"],
                               cwd=data_dir, capture_output=True, text=True)
        if log_file.is_file():
            shutil.copyfile(log_file, tmp_dir / "postgres.log")
        shutil.rmtree(data_dir, ignore_errors=True)


def _check_service_user() -> None:
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root needs the system user {SERVICE_USER!r} to start PostgreSQL under "
                                  "(it refuses root); `apt-get install postgresql` creates it") from None
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root needs `runuser` (util-linux) to start PostgreSQL as the postgres user")


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")

