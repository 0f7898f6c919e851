"""``uvx nox -s dev-db``: a local PostgreSQL for development, at head (template-owned).

Its data lives in ``backend/.postgres/`` (git-ignored) and survives a stop
(``uvx nox -s dev-db -- stop``). It runs the project's PostgreSQL major where
binaries of that major are installed, and says which major it runs otherwise.
Its URL goes into ``backend/.env`` when ``.env`` sets no ``DATABASE_URL``, and is
printed either way. Running it again reuses the server and migrates to head.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from dotenv import dotenv_values

from .kept_server import accepts_connections, ensure_server, running_server, stop_server
from .project import BACKEND, PACKAGE, POSTGRES_MAJOR
from .servers import NoServerError, find_pg_ctl, free_port, wheel_pg_ctls

DATA = BACKEND / ".postgres"
ENV_FILE = BACKEND / ".env"
PREFERRED_PORT = 5432
DBNAME = f"{PACKAGE}_dev"


def dev_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{DBNAME}"


def installed_pg_ctls() -> dict[int, Path]:
    """``pg_ctl`` by major: Debian's, Homebrew's and Postgres.app's, else the wheel's."""
    found = dict(wheel_pg_ctls())
    patterns = (
        "/usr/lib/postgresql/*/bin/pg_ctl",
        "/opt/homebrew/opt/postgresql@*/bin/pg_ctl",
        "/usr/local/opt/postgresql@*/bin/pg_ctl",
        "/Applications/Postgres.app/Contents/Versions/*/bin/pg_ctl",
    )
    for pattern in patterns:
        for pg_ctl in Path("/").glob(pattern.lstrip("/")):
            found[major_of(pg_ctl)] = pg_ctl
    return found


def has_pgvector(pg_ctl: Path) -> bool:
    bindir = pg_ctl.parent
    if (bindir / "pg_config").is_file():
        share = subprocess.run(
            [bindir / "pg_config", "--sharedir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        return (Path(share) / "extension" / "vector.control").is_file()
    return (Path(f"/usr/share/postgresql/{major_of(pg_ctl)}/extension/vector.control")).is_file()


def declares_pgvector() -> bool:
    return '"pgvector' in (BACKEND / "pyproject.toml").read_text()


def major_of(pg_ctl: Path) -> int:
    version = subprocess.run([pg_ctl, "--version"], capture_output=True, text=True, check=True)
    return int(version.stdout.split()[-1].split(".")[0])


def data_major() -> int | None:
    """The major of the data in ``.postgres/``, once there is data."""
    version = DATA / "data" / "PG_VERSION"
    return int(version.read_text().strip()) if version.is_file() else None


def choose_binaries() -> Path:
    """``POSTGRES_BINDIR``'s; else the data's major, or the project's, where installed;
    else whichever ``find_pg_ctl`` finds."""
    wanted = data_major() or POSTGRES_MAJOR
    pg_ctl = None if os.environ.get("POSTGRES_BINDIR") else installed_pg_ctls().get(wanted)
    pg_ctl = pg_ctl or find_pg_ctl()
    if pg_ctl and declares_pgvector() and not has_pgvector(pg_ctl) and data_major() is None:
        wheel = wheel_pg_ctls()
        pg_ctl = wheel.get(wanted) or (wheel[max(wheel)] if wheel else pg_ctl)
    if pg_ctl is None:
        raise NoServerError(
            f"no PostgreSQL binaries: install PostgreSQL {POSTGRES_MAJOR} (apt-get install "
            f"postgresql-{POSTGRES_MAJOR}, brew install postgresql@{POSTGRES_MAJOR}) "
            "or point POSTGRES_BINDIR at them"
        )
    major = major_of(pg_ctl)
    if data_major() not in (None, major):
        raise NoServerError(
            f".postgres/ holds PostgreSQL {data_major()} data and the binaries found are "
            f"PostgreSQL {major}: install PostgreSQL {data_major()}, or remove .postgres/"
        )
    if declares_pgvector() and not has_pgvector(pg_ctl):
        print(f"dev-db: PostgreSQL {major} here has no pgvector: uv sync installs the wheel's")
    if major != POSTGRES_MAJOR:
        print(
            f"dev-db: runs PostgreSQL {major}; the project's is {POSTGRES_MAJOR} (install "
            f"PostgreSQL {POSTGRES_MAJOR}, then remove .postgres/, for the same major)"
        )
    return pg_ctl


def start() -> int:
    if (port := running_server(DATA)) is None:
        refuse_unreachable_data_folder()
        pg_ctl = choose_binaries()
        port = ensure_server(DATA, port=pick_port(), pg_ctl=pg_ctl)
    create_database(port)
    url = dev_url(port)
    migrate(url)
    write_env(url)
    return 0


def refuse_unreachable_data_folder() -> None:
    """As root, the server runs as ``postgres``, which must reach ``.postgres/``."""
    if os.geteuid() != 0:
        return
    for folder in BACKEND.parents:
        if folder.stat().st_mode & 0o001 == 0:
            raise NoServerError(
                f"running as root, the postgres account cannot reach {folder} (no o+x): "
                "run dev-db as your own user, or chmod o+x that folder"
            )


def pick_port() -> int:
    """The port the data ran on before, else 5432; another one when that is taken."""
    try:
        wanted = int((DATA / "port").read_text())
    except (OSError, ValueError):
        wanted = PREFERRED_PORT
    if not accepts_connections(wanted):
        return wanted
    port = free_port()
    print(f"dev-db: port {wanted} is taken (another server?); dev-db runs on {port}")
    return port


def create_database(port: int) -> None:
    maintenance = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=10) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DBNAME,))
        if found.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{DBNAME}"')


def migrate(url: str) -> None:
    environment = {**os.environ, "DATABASE_URL": url, "DATABASE_URL_UNPOOLED": ""}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=BACKEND,
        env=environment,
        check=True,
    )


def write_env(url: str) -> None:
    """Into ``.env`` when it sets no DATABASE_URL; printed either way."""
    current = dotenv_values(ENV_FILE).get("DATABASE_URL") if ENV_FILE.is_file() else None
    if not current:
        text = ENV_FILE.read_text() if ENV_FILE.is_file() else ""
        separator = "" if not text or text.endswith("\n") else "\n"
        ENV_FILE.write_text(f"{text}{separator}DATABASE_URL={url}\n")
        print(f"dev-db: wrote DATABASE_URL into {ENV_FILE.name}")
    elif current != url:
        print(f"dev-db: {ENV_FILE.name} sets another DATABASE_URL, kept; dev-db's is below")
    print(f"DATABASE_URL={url}")


def stop() -> int:
    stopped = stop_server(DATA)
    where = DATA.relative_to(BACKEND)
    print(f"dev-db: {'stopped' if stopped else 'was not running'}; its data stays in {where}/")
    return 0


def dev_db(arguments: list[str]) -> int:
    if arguments not in ([], ["stop"]):
        print("usage: uvx nox -s dev-db [-- stop]", file=sys.stderr)
        return 2
    try:
        return stop() if arguments else start()
    except (NoServerError, psycopg.Error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"dev-db: {reason}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError:
        print("dev-db: alembic upgrade head failed (above)", file=sys.stderr)
        return 1
