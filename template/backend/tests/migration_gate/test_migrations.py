"""The migration gate (template-owned): every revision upgrades, downgrades and matches the models.

pytest-alembic's built-in tests check one head, upgrade from empty, model/DDL
drift and up/down consistency. The stairway below adds an up/down/up check of
every revision whose failure names the revision, and a check that base leaves
nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from pytest_alembic import MigrationContext
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import Engine, text

from .fixtures import ALEMBIC_INI, engine_for

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]

LEFTOVERS = text(
    """
    SELECT c.relkind::text AS kind, n.nspname || '.' || c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
    UNION ALL
    SELECT 'type', n.nspname || '.' || t.typname
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      AND t.typtype IN ('e', 'd', 'r', 'm')
    ORDER BY 1, 2
    """
)


def revisions_oldest_first() -> list[Script]:
    script = ScriptDirectory.from_config(Config(str(ALEMBIC_INI)))
    return list(reversed(list(script.walk_revisions())))


def test_stairway(alembic_runner: MigrationContext) -> None:
    """For every revision, oldest first: upgrade to it, downgrade one step, upgrade again.

    One database climbs the whole history, so the cost grows linearly with the
    number of revisions; a failure names the revision and its file.
    """
    for revision in revisions_oldest_first():
        where = f"revision {revision.revision} ({revision.path})"
        step(where, "upgrade failed", partial(alembic_runner.migrate_up_to, revision.revision))
        step(where, "downgrade failed", alembic_runner.migrate_down_one)
        step(
            where,
            "upgrade after its own downgrade failed, so the downgrade did not undo the upgrade",
            alembic_runner.migrate_up_one,
        )


def step(where: str, failure: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as error:
        pytest.fail(f"{where}: {failure}: {error}", pytrace=False)


def test_downgrade_to_base_leaves_nothing(
    alembic_runner: MigrationContext, alembic_engine: Engine
) -> None:
    """After ``downgrade base`` no table, sequence, index, view or type is left."""
    alembic_runner.migrate_up_to("heads")
    alembic_runner.migrate_down_to("base")
    with alembic_engine.connect() as connection:
        leftovers = [f"{row.kind} {row.name}" for row in connection.execute(LEFTOVERS)]
    assert leftovers == [], f"downgrade to base left these behind: {', '.join(leftovers)}"


def test_database_at_head_is_a_clone_at_head(database_at_head: str) -> None:
    """The fixture your own tests use: a private database, already at head."""
    heads = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_heads()
    engine = engine_for(database_at_head)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert sorted(versions) == sorted(heads)
    engine.dispose()
