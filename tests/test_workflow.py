"""The user's loop on a real server, with the real copier, uv and alembic CLIs.

Every database assertion reads through a separate psycopg connection, so a
migration that Alembic silently rolled back cannot pass.
"""

from __future__ import annotations

import subprocess
import sys

from .support import (
    REPO,
    TEAM_MODEL,
    USER_MODEL,
    Project,
    alembic_ok,
    output,
    public_tables,
    uv_env,
    version_rows,
)


def test_model_to_migration_loop(project: Project, database_url: str) -> None:
    project.write_model("user", USER_MODEL)
    alembic_ok(project, "revision", "--autogenerate", "-m", "Add user table")
    [first] = project.revision_files()
    assert "op.create_table('user'" in first.read_text()
    assert "sqlmodel" not in first.read_text(), "revisions import only sqlalchemy"

    log = alembic_ok(project, "upgrade", "head")
    assert "/test_" in log and "direct connection" in log, "names its target before connecting"
    assert public_tables(database_url) == {"user", "alembic_version"}
    assert version_rows(database_url) == [first.name.split("_")[2]]
    alembic_ok(project, "check")

    project.write_model("user", USER_MODEL + "    nickname: str | None = None\n")
    drift = project.alembic("check")
    assert drift.returncode != 0 and "nickname" in output(drift), output(drift)

    alembic_ok(project, "revision", "--autogenerate", "-m", "Add nickname")
    alembic_ok(project, "upgrade", "head")
    alembic_ok(project, "check")
    assert len(project.revision_files()) == 2

    alembic_ok(project, "downgrade", "base")
    assert public_tables(database_url) == {"alembic_version"}
    assert version_rows(database_url) == []

    offline = project.alembic("upgrade", "head", "--sql", DATABASE_URL="")
    assert offline.returncode == 0, output(offline)
    assert 'CREATE TABLE "user"' in offline.stdout
    assert 'ALTER TABLE "user" ADD COLUMN nickname VARCHAR' in offline.stdout
    assert public_tables(database_url) == {"alembic_version"}, "--sql touches no database"


def test_new_model_module_is_discovered_without_other_edits(
    project: Project, database_url: str
) -> None:
    project.write_model("team", TEAM_MODEL)
    alembic_ok(project, "revision", "--autogenerate", "-m", "Add team")
    alembic_ok(project, "upgrade", "head")
    assert "team" in public_tables(database_url)


def test_empty_autogenerate_writes_no_file_and_check_still_works(project: Project) -> None:
    alembic_ok(project, "upgrade", "head")
    log = alembic_ok(project, "revision", "--autogenerate", "-m", "nothing changed")
    assert project.revision_files() == []
    assert "no revision file written" in log
    assert "No new upgrade operations detected" in alembic_ok(project, "check")


def test_demo_walks_the_whole_loop(postgres_server: object) -> None:
    """`uvx nox -s demo`, README's first command, runs every step to the end."""
    env = {**uv_env(), "TEST_DATABASE_URL": postgres_server.url(postgres_server.maintenance_db)}  # type: ignore[attr-defined]
    result = subprocess.run(
        [sys.executable, "-m", "tests.demo"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, output(result)
    assert result.stdout.count("[exit 0]") == 9 and "[exit 255]" in result.stdout
    assert "Done: model -> revision" in result.stdout
