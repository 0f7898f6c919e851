"""docs/data-migrations.md's batched backfill, run as written on a table with rows, up and down."""

from __future__ import annotations

import psycopg

from .support import (
    REPO,
    USER_MODEL,
    Project,
    alembic_ok,
    output,
    recipe_blocks,
)

DOC = REPO / "template" / "backend" / "docs" / "data-migrations.md"
ROWS = 2500  # BATCH_ROWS is 1000: three batches
WITH_DISPLAY_NAME = (
    USER_MODEL + "    nickname: str | None = None\n    display_name: str | None = None\n"
)
# What `alembic revision` already wrote at the top of the file.
GENERATED_IMPORTS = ("import sqlalchemy as sa\n", "from alembic import op\n")


def write_backfill(project: Project) -> None:
    """``alembic revision -m ...``, its upgrade and downgrade replaced by the doc's recipe."""
    alembic_ok(project, "revision", "-m", "backfill user.display_name")
    [path] = [p for p in project.revision_files() if "backfill" in p.name]
    [recipe] = recipe_blocks(DOC)["backfill/revision"]
    for line in GENERATED_IMPORTS:
        recipe = recipe.replace(line, "", 1)
    header = path.read_text().split("\ndef upgrade()")[0]
    path.write_text(header.rstrip() + "\n\n" + recipe.lstrip())


def display_names(url: str) -> tuple[int, int, int]:
    """Rows whose display_name is the name, rows where it is NULL, and the transactions
    that last wrote the rows (each batch commits on its own: one xmin per batch)."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE display_name = name), "
            "count(*) FILTER (WHERE display_name IS NULL), count(DISTINCT xmin::text) "
            'FROM "user"'
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_the_backfill_recipe_runs_in_batches_up_and_down(
    project_with_history: Project, database_url: str
) -> None:
    project = project_with_history
    alembic_ok(project, "upgrade", "head")
    project.write_model("user", WITH_DISPLAY_NAME)
    alembic_ok(project, "revision", "--autogenerate", "-m", "add display_name")
    alembic_ok(project, "upgrade", "head")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            'INSERT INTO "user" (email, name) '
            "SELECT 'user' || n || '@example.com', 'User ' || n FROM generate_series(1, %s) n",
            (ROWS,),
        )
    write_backfill(project)

    offline = alembic_ok(project, "upgrade", "head", "--sql")
    assert offline.count('UPDATE "user" SET display_name="user".name') == 1, offline

    alembic_ok(project, "upgrade", "head")
    assert display_names(database_url) == (ROWS, 0, 3)
    alembic_ok(project, "check")

    alembic_ok(project, "downgrade", "-1")
    assert display_names(database_url) == (0, ROWS, 3)
    alembic_ok(project, "upgrade", "head")
    assert display_names(database_url)[:2] == (ROWS, 0), "a rerun finishes the job"

    project.write_schema_docs()
    gate = project.run("uvx", "nox", MIGRATION_LINT_BASE="HEAD")
    assert gate.returncode == 0, output(gate)
    assert "2 revision(s) added or changed" in output(gate)
