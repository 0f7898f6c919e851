"""``uvx nox -s squash -- REV``: one baseline revision in place of the history up to REV.

Template-owned. The baseline keeps REV's revision id, so every database at REV
or later (production included) is already past it and follows the new history
with no stamp. Its upgrade is the schema a scratch database migrated to REV
really has (``pg_dump --schema-only``), so it keeps what autogenerate cannot
see: functions, CHECK bodies, defaults. Its downgrade drops what that schema
holds. A database still below REV cannot follow the squashed history: check
every environment first (``alembic current``, ``db-doctor``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError, to_tuple
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from .project import BACKEND, engine_for, project_config
from .revisions import git
from .schema_docs import write_schema_docs
from .servers import find_pg_ctl, session_server, temporary_database

# What the baseline's downgrade drops, found in the scratch database at REV:
# everything but extension members, the version table and system schemas.
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
BASELINE = '''"""Squashed baseline: the schema at {revision}

Revision ID: {revision}
Revises:
Create Date: {created}

Replaces {count} revision(s) up to {revision}; written by
`uvx nox -s squash -- {revision}` from a database migrated to {revision}
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


class SquashRefused(CommandError):
    """The squash would lose something; the message is one line, and nothing changed."""


def ancestry(script: ScriptDirectory, target: Script) -> list[Script]:
    """``target`` and every revision below it, oldest first."""
    below = script.iterate_revisions(target.revision, "base")
    return list(reversed([revision for revision in below if revision is not None]))


def check_squashable(script: ScriptDirectory, wanted: str) -> tuple[Script, list[Script]]:
    if git("status", "--porcelain", "--", ".").stdout.strip():
        raise SquashRefused(
            "uncommitted changes in backend/: commit or stash them first, so that the squash "
            "can be reviewed and undone with git"
        )
    try:
        target = script.get_revision(wanted)
    except CommandError:
        target = None
    if not isinstance(target, Script):
        raise SquashRefused(f"no revision {wanted!r} (see `uv run alembic history`)")
    if target.is_merge_point:
        raise SquashRefused(
            f"{target.revision} is a merge point: squash up to a revision after the merge"
        )
    replaced = ancestry(script, target)
    ids = {revision.revision for revision in replaced}
    for revision in script.walk_revisions():
        parents = set(to_tuple(revision.down_revision, default=())) & (ids - {target.revision})
        if revision.revision not in ids and parents:
            raise SquashRefused(
                f"revision {revision.revision} branches off {', '.join(sorted(parents))}, below "
                f"{target.revision}: merge it first (uv run alembic merge heads)"
            )
    return target, replaced


def pg_dump() -> str:
    pg_ctl = find_pg_ctl()
    beside = pg_ctl.parent / "pg_dump" if pg_ctl else None
    found = str(beside) if beside and beside.is_file() else shutil.which("pg_dump")
    if found is None:
        raise SquashRefused("pg_dump not found: install the PostgreSQL client or server binaries")
    return found


def schema_at(engine: Engine, url: str) -> str:
    """The schema of the database at ``url``, as SQL a migration can run."""
    parsed = make_url(url)
    dump = subprocess.run(
        [
            pg_dump(),
            *("--schema-only", "--no-owner", "--no-privileges", "--quote-all-identifiers"),
            "--exclude-table=*.alembic_version",
            *("--host", parsed.host or "localhost", "--port", str(parsed.port or 5432)),
            *("--username", parsed.username or "postgres", parsed.database or ""),
        ],
        env={**os.environ, "PGPASSWORD": parsed.password or ""},
        capture_output=True,
        text=True,
    )
    if dump.returncode:
        raise SquashRefused(f"pg_dump failed: {dump.stderr.strip().splitlines()[0]}")
    kept = [
        line
        for line in dump.stdout.splitlines()
        if not line.startswith(SESSION_LINES) and not line.startswith(NOT_OURS)
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def drops_at(engine: Engine) -> str:
    with engine.connect() as connection:
        return "\n".join(f"{row.sql};" for row in connection.execute(OBJECTS))


def python_text(sql: str) -> str:
    """``sql`` inside a triple-quoted Python string."""
    return sql.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def squash(wanted: str) -> int:
    config = project_config()
    script = ScriptDirectory.from_config(config)
    target, replaced = check_squashable(script, wanted)
    with session_server() as server, temporary_database(server) as url:
        engine = engine_for(url)
        try:
            command.upgrade(project_config(engine), target.revision)
            schema, drops = schema_at(engine, url), drops_at(engine)
        finally:
            engine.dispose()
    created = datetime.now(UTC)
    name = f"{created:%Y%m%d_%H%M}_{target.revision}_squashed_baseline.py"
    baseline = Path(script.versions) / name
    for revision in replaced:
        Path(revision.path).unlink()
    baseline.write_text(
        BASELINE.format(
            revision=target.revision,
            created=created.isoformat(sep=" ", timespec="seconds"),
            count=len(replaced),
            squashed=tuple(revision.revision for revision in replaced),
            schema=python_text(schema),
            drops=python_text(drops),
        )
    )
    write_schema_docs()
    print(
        f"squash: {len(replaced)} revision(s) up to {target.revision} replaced by "
        f"{os.path.relpath(baseline, BACKEND)}; databases at {target.revision} or later need "
        "nothing; a database below it cannot follow the new history (check each with "
        "`uv run alembic current` before you merge); docs/schema.md rewritten"
    )
    return 0
