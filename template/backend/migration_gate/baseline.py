"""One baseline revision from a database's schema: what the squash and the adoption write.

Template-owned. A baseline's upgrade is the schema a database really has
(``pg_dump --schema-only``), so it keeps what autogenerate cannot see:
functions, triggers, CHECK bodies, defaults, and every constraint and index
under the name that database gave it. Its downgrade drops what that schema
holds. It keeps the revision id of the database's revision, so every database
at that revision or later never runs it, and it lists the revisions it
replaces in ``squashes``: lint-migrations lets them go, and never lints it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from .revisions import git
from .servers import find_pg_ctl

# What the baseline's downgrade drops, found in the source database: everything
# but extension members, the version table and system schemas.
OBJECTS = text(
    """
    WITH ours AS (
        SELECT n.oid, n.nspname FROM pg_namespace n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
    ), members AS (
        SELECT objid FROM pg_depend WHERE deptype = 'e'
    )
    SELECT 1 AS step, format('DROP VIEW IF EXISTS %I.%I CASCADE', ours.nspname, c.relname) AS sql
    FROM pg_class c JOIN ours ON ours.oid = c.relnamespace
    WHERE c.relkind = 'v' AND c.oid NOT IN (SELECT objid FROM members)
    UNION ALL
    SELECT 1, format('DROP MATERIALIZED VIEW IF EXISTS %I.%I CASCADE', ours.nspname, c.relname)
    FROM pg_class c JOIN ours ON ours.oid = c.relnamespace
    WHERE c.relkind = 'm' AND c.oid NOT IN (SELECT objid FROM members)
    UNION ALL
    SELECT 2, format('DROP TABLE IF EXISTS %I.%I CASCADE', ours.nspname, c.relname)
    FROM pg_class c JOIN ours ON ours.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
      AND c.oid NOT IN (SELECT objid FROM members) AND NOT c.relispartition
    UNION ALL
    SELECT 3, format('DROP SEQUENCE IF EXISTS %I.%I CASCADE', ours.nspname, c.relname)
    FROM pg_class c JOIN ours ON ours.oid = c.relnamespace
    WHERE c.relkind = 'S' AND c.oid NOT IN (SELECT objid FROM members)
    UNION ALL
    SELECT 4, format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
    FROM pg_proc p JOIN ours ON ours.oid = p.pronamespace
    WHERE p.oid NOT IN (SELECT objid FROM members) AND p.prokind IN ('f', 'p')
    UNION ALL
    SELECT 5, format('DROP TYPE IF EXISTS %I.%I CASCADE', ours.nspname, t.typname)
    FROM pg_type t JOIN ours ON ours.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd', 'r', 'm') AND t.oid NOT IN (SELECT objid FROM members)
    UNION ALL
    SELECT 6, format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname)
    FROM pg_extension e WHERE e.extname <> 'plpgsql'
    UNION ALL
    SELECT 7, format('DROP SCHEMA IF EXISTS %I CASCADE', ours.nspname)
    FROM ours WHERE ours.nspname <> 'public'
    ORDER BY 1, 2
    """
)
# pg_dump lines that set up its own session, or that a non-owner may not run.
SESSION_LINES = ("SET ", "SELECT pg_catalog.set_config(", "\\restrict", "\\unrestrict", "--")
NOT_OURS = ("COMMENT ON EXTENSION", 'COMMENT ON SCHEMA "public"')
BASELINE = '''"""{title}

Revision ID: {revision}
Revises:
Create Date: {created}

{origin}
(pg_dump --schema-only). Databases at {revision} or later never run it.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = {revision!r}
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
accepted_hazards: dict[str, str] = {{}}
# The revisions this baseline replaces: lint-migrations lets them go.
squashes: tuple[str, ...] = {squashed!r}

SCHEMA = """
{schema}
"""
DROP_EVERYTHING = """
{drops}
"""


def upgrade() -> None:
    """Create the schema as it was at {revision}."""
    op.execute(sa.text(SCHEMA.replace(":", "\\\\:")))


def downgrade() -> None:
    """Drop everything the schema at {revision} holds."""
    op.execute(sa.text(DROP_EVERYTHING.replace(":", "\\\\:")))
'''


class BaselineRefused(CommandError):
    """The baseline cannot be written; the message is one line, and nothing changed."""


def refuse_uncommitted_changes(what: str) -> None:
    """Refuse to start ``what`` (the squash, the adoption) on a dirty ``backend/``."""
    if git("status", "--porcelain", "--", ".").stdout.strip():
        raise BaselineRefused(
            f"uncommitted changes in backend/: commit or stash them first, so that {what} "
            "can be reviewed and undone with git"
        )


def pg_dump() -> str:
    pg_ctl = find_pg_ctl()
    beside = pg_ctl.parent / "pg_dump" if pg_ctl else None
    found = str(beside) if beside and beside.is_file() else shutil.which("pg_dump")
    if found is None:
        raise BaselineRefused("pg_dump not found: install the PostgreSQL client or server binaries")
    return found


def conninfo(url: URL) -> str:
    """libpq's form of ``url`` without its password: its query parameters (``sslmode``,
    ``channel_binding``, ``options``, ...) pass through as they are."""
    settings = {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "dbname": url.database or "",
        **url.query,
    }
    quoted = (str(value).replace("\\", "\\\\").replace("'", "\\'") for value in settings.values())
    return " ".join(f"{name}='{value}'" for name, value in zip(settings, quoted, strict=True))


def schema_at(url: URL) -> str:
    """The schema of the database at ``url``, as SQL a migration can run."""
    dump = subprocess.run(
        [
            pg_dump(),
            *("--schema-only", "--no-owner", "--no-privileges", "--quote-all-identifiers"),
            "--exclude-table=*.alembic_version",
            f"--dbname={conninfo(url)}",
        ],
        env={**os.environ, "PGPASSWORD": url.password or ""},
        capture_output=True,
        text=True,
    )
    if dump.returncode:
        reason = (dump.stderr.strip().splitlines() or [f"exit {dump.returncode}"])[0]
        raise BaselineRefused(f"pg_dump failed: {reason}")
    kept = [
        line
        for line in dump.stdout.splitlines()
        if not line.startswith(SESSION_LINES) and not line.startswith(NOT_OURS)
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def drops_at(engine: Engine) -> str:
    with engine.connect() as connection:
        return "\n".join(f"{row.sql};" for row in connection.execute(OBJECTS))


@dataclass(frozen=True)
class Schema:
    """A database's schema as a baseline holds it: the SQL that creates it, and the SQL
    that drops everything it holds."""

    create: str
    drop: str

    @classmethod
    def of(cls, engine: Engine, url: URL) -> Schema:
        return cls(schema_at(url), drops_at(engine))


def python_text(sql: str) -> str:
    """``sql`` inside a triple-quoted Python string."""
    return sql.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def write_baseline(
    versions: Path,
    revision: str,
    replaced: Sequence[str],
    schema: Schema,
    *,
    title: str,
    origin: str,
    suffix: str,
) -> Path:
    """Write the baseline at ``revision`` into ``versions``: ``replaced`` are the revision ids it
    stands in for; ``title`` and ``origin`` open its docstring, ``suffix`` ends its file name."""
    created = datetime.now(UTC)
    baseline = versions / f"{created:%Y%m%d_%H%M}_{revision}_{suffix}.py"
    baseline.write_text(
        BASELINE.format(
            title=title,
            revision=revision,
            created=created.isoformat(sep=" ", timespec="seconds"),
            origin=origin,
            squashed=tuple(replaced),
            schema=python_text(schema.create),
            drops=python_text(schema.drop),
        )
    )
    return baseline
