"""What ``alembic revision --autogenerate`` compares the models with: a database at head.

Template-owned: `copier update` keeps this file current. Autogenerate never
connects to ``DATABASE_URL``: it compares with a throwaway database that holds
exactly the revisions at head, so a database that is down, behind, or holds a
table of its own changes nothing in the revision. Settings (environment first,
then backend/.env):

- ``SHADOW_DATABASE_URL``: a server where autogenerate may create and drop its
  own ``shadow_*`` databases (a Neon dev branch, CI's service container).
  Unset: a local server, started from the installed PostgreSQL binaries on
  first use and stopped once unused for ``SHADOW_SERVER_IDLE_SECONDS`` (600).
- ``MIGRATION_AUTOGENERATE_AGAINST=DATABASE_URL``: compare with
  ``DATABASE_URL``'s database instead, as plain Alembic does.

The head's schema is kept on that server as a template database named by the
revision files' content, and each autogenerate compares with a clone of it.
``alembic check`` is not affected: it compares ``DATABASE_URL``'s database,
the drift check of ``db-deploy``, ``db-doctor`` and the drift watch.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import context
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .migrate import explain, first_line
from .settings import (
    DRIVERNAME,
    SettingsError,
    direct_target,
    location,
    number_setting,
    parse_database_url,
    read_setting,
)

log = logging.getLogger("alembic.env")

SHADOW_SETTING = "SHADOW_DATABASE_URL"
AGAINST_SETTING = "MIGRATION_AUTOGENERATE_AGAINST"
CONNECT_TIMEOUT_SECONDS = 10
PREFIX = "shadow_"


@contextmanager
def migration_database(config: Config) -> Iterator[Connection | Engine | None]:
    """What env.py migrates or compares: the connection or engine a caller put in
    ``config.attributes``; for ``revision --autogenerate``, a throwaway database at
    head; otherwise None, which is ``DATABASE_URL``'s database."""
    given = config.attributes.get("connection")
    if given is not None or not compares_with_database_at_head(config):
        yield given
        return
    with database_at_head(context.script) as engine:
        yield engine


def compares_with_database_at_head(config: Config) -> bool:
    if not getattr(config.cmd_opts, "autogenerate", False):
        return False
    against = read_setting(AGAINST_SETTING)
    if against is None:
        return True
    if against == "DATABASE_URL":
        return False
    raise SettingsError(f"{AGAINST_SETTING} must be DATABASE_URL or unset (got {against!r})")


@contextmanager
def database_at_head(script: ScriptDirectory) -> Iterator[Engine]:
    """A clone of the head's template database, dropped afterwards."""
    server, variable = shadow_server()
    admin = create_engine(
        server,
        isolation_level="AUTOCOMMIT",
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )
    try:
        connection = admin.connect()
    except DBAPIError as error:
        raise SettingsError(
            f"{variable}: cannot connect to {location(server)}: {first_line(error)}"
        ) from None
    with connection:
        template = head_template(connection, server, script)
        clone = f"{PREFIX}work_{uuid.uuid4().hex[:12]}"
        connection.execute(text(f'CREATE DATABASE "{clone}" TEMPLATE "{template}"'))
    log.info("Comparing the models with a database at head (%s)", location(server))
    engine = create_engine(server.set(database=clone), poolclass=pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)'))
        admin.dispose()


def shadow_server() -> tuple[URL, str]:
    """The maintenance database of the server that holds the databases at head, and the
    setting that names it."""
    if (raw := read_setting(SHADOW_SETTING)) is not None:
        url = parse_database_url(raw, SHADOW_SETTING)
        return direct_target(url, SHADOW_SETTING).url, SHADOW_SETTING  # DDL: not via a pooler
    try:
        from migration_gate.kept_server import ensure_server, shadow_server_dir
    except ImportError as error:
        raise CommandError(
            f"autogenerate's local server needs the dev tools ({error.name} is missing): "
            f"run uv sync, or set {SHADOW_SETTING}"
        ) from None
    idle = number_setting("SHADOW_SERVER_IDLE_SECONDS", 600)
    try:
        port = ensure_server(shadow_server_dir(), idle_seconds=idle)
    except RuntimeError as error:  # NoServerError: no binaries, no postgres account
        raise CommandError(f"{error}; or set {SHADOW_SETTING}") from None
    url = URL.create(DRIVERNAME, "postgres", None, "127.0.0.1", port, "postgres")
    return url, "autogenerate's local server"


def head_template(connection: Connection, server: URL, script: ScriptDirectory) -> str:
    """The template database that holds the revisions at head: found by the revision
    files' content, else built now (and the project's older ones dropped)."""
    project = hashlib.sha256(str(Path(script.dir).resolve()).encode()).hexdigest()[:8]
    content = hashlib.sha256()
    for path in revision_files(script):
        content.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    name = f"{PREFIX}{project}_{content.hexdigest()[:16]}"
    if exists(connection, name):
        return name
    building = f"{PREFIX}build_{uuid.uuid4().hex[:12]}"
    connection.execute(text(f'CREATE DATABASE "{building}"'))
    try:
        engine = create_engine(server.set(database=building), poolclass=pool.NullPool)
        try:
            climb_to_head(script, engine)
        finally:
            engine.dispose()
        if exists(connection, name):  # another autogenerate built it meanwhile
            raise FileExistsError(name)
        connection.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
    except (CommandError, FileExistsError, DBAPIError) as error:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)'))
        if not isinstance(error, FileExistsError):
            raise
    drop_older_templates(connection, f"{PREFIX}{project}_", keep=name)
    return name


def revision_files(script: ScriptDirectory) -> list[Path]:
    return sorted(
        path
        for folder in script._version_locations
        if Path(folder).is_dir()
        for path in Path(folder).glob("*.py")
    )


def exists(connection: Connection, dbname: str) -> bool:
    found = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": dbname})
    return found.scalar() is not None


def drop_older_templates(connection: Connection, prefix: str, keep: str) -> None:
    older = connection.execute(
        text("SELECT datname FROM pg_database WHERE starts_with(datname, :p) AND datname <> :k"),
        {"p": prefix, "k": keep},
    ).scalars()
    for dbname in list(older):
        try:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{dbname}"'))
        except DBAPIError:  # a clone is being made from it right now
            log.debug("Could not drop %s yet", dbname)


def climb_to_head(script: ScriptDirectory, engine: Engine) -> None:
    """Run every revision from base to head on ``engine``'s database, one transaction each;
    a revision that fails is named in one line."""
    applied: set[str] = set()

    def upgrade(revision: Any, _: MigrationContext) -> Any:
        return script._upgrade_revs("head", revision)

    def record(*, step: Any, **_: Any) -> None:
        applied.update(step.up_revision_ids)

    with engine.connect() as connection:
        migration_context = MigrationContext.configure(
            connection,
            opts={
                "fn": upgrade,
                "script": script,
                "transaction_per_migration": True,
                "on_version_apply": [record],
            },
        )
        try:
            with Operations.context(migration_context), migration_context.begin_transaction():
                migration_context.run_migrations()
        except Exception as error:
            raise CommandError(
                f"{first_not_applied(script, applied)} fails to upgrade a new database, "
                f"so autogenerate wrote nothing: {reason_of(error)}"
            ) from None


def first_not_applied(script: ScriptDirectory, applied: set[str]) -> str:
    for revision in reversed(list(script.walk_revisions())):
        if revision.revision not in applied:
            return f"revision {revision.revision} ({Path(revision.path).name})"
    return "a revision"


def reason_of(error: Exception) -> str:
    if isinstance(error, DBAPIError):
        return explain(error)
    return f"{type(error).__name__}: {first_line(error)}"
