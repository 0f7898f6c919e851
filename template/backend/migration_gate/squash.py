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
from pathlib import Path

from alembic import command
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError, to_tuple

from .baseline import BaselineRefused, Schema, refuse_uncommitted_changes, write_baseline
from .project import BACKEND, engine_for, project_config
from .schema_docs import write_schema_docs
from .servers import session_server, temporary_database


class SquashRefused(BaselineRefused):
    """The squash would lose something; the message is one line, and nothing changed."""


def ancestry(script: ScriptDirectory, target: Script) -> list[Script]:
    """``target`` and every revision below it, oldest first."""
    below = script.iterate_revisions(target.revision, "base")
    return list(reversed([revision for revision in below if revision is not None]))


def check_squashable(script: ScriptDirectory, wanted: str) -> tuple[Script, list[Script]]:
    refuse_uncommitted_changes("the squash")
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


def squash(wanted: str) -> int:
    config = project_config()
    script = ScriptDirectory.from_config(config)
    target, replaced = check_squashable(script, wanted)
    with session_server() as server, temporary_database(server) as url:
        engine = engine_for(url)
        try:
            command.upgrade(project_config(engine), target.revision)
            schema = Schema.of(engine, engine.url)
        finally:
            engine.dispose()
    for revision in replaced:
        Path(revision.path).unlink()
    baseline = write_baseline(
        Path(script.versions),
        target.revision,
        [revision.revision for revision in replaced],
        schema,
        title=f"Squashed baseline: the schema at {target.revision}",
        origin=(
            f"Replaces {len(replaced)} revision(s) up to {target.revision}; written by\n"
            f"`uvx nox -s squash -- {target.revision}` from a database migrated to "
            f"{target.revision}"
        ),
        suffix="squashed_baseline",
    )
    write_schema_docs()
    print(
        f"squash: {len(replaced)} revision(s) up to {target.revision} replaced by "
        f"{os.path.relpath(baseline, BACKEND)}; databases at {target.revision} or later need "
        "nothing; a database below it cannot follow the new history (check each with "
        "`uv run alembic current` before you merge); docs/schema.md rewritten"
    )
    return 0
