"""The user's loop on a real server, with the real copier, uv and alembic CLIs.

Every database assertion reads through a separate psycopg connection, so a
migration that Alembic silently rolled back cannot pass.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .support import (
    REPO,
    TEAM_MODEL,
    USER_MODEL,
    Project,
    alembic_ok,
    output,
    public_tables,
    reachable_folder,
    render,
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
    assert result.stdout.count("[exit 0]") == 12 and "[exit 255]" in result.stdout
    stopped, passed = result.stdout.split("== The gate stops it")[1].split("== The gate passes it")
    assert "require-concurrent-index-creation" in stopped and "[exit 1]" in stopped
    assert "[exit 0]" in passed.split("==")[0]
    assert "Done: model -> revision" in result.stdout


def quick_start(readme: str) -> list[str]:
    """The commands of the rendered README's Quick start, comments dropped."""
    block = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_quick_start_passes_as_written(template_src: Path) -> None:
    """A fresh render with one model and nothing configured (no DATABASE_URL anywhere, no
    test server named): every Quick start command, verbatim, exits 0, the last the gate."""
    with reachable_folder() as folder:
        project = Project(render(template_src, folder / "project"))
        project.env = {"DATABASE_URL": "", "MIGRATION_AUTOGENERATE_AGAINST": ""}
        project.env |= {"TEST_DATABASE_URL": "", "DATABASE_URL_UNPOOLED": ""}
        project.write_model("user", USER_MODEL)
        commands = quick_start((project.backend / "README.md").read_text())
        assert any("alembic revision --autogenerate" in command for command in commands)
        assert "dev-db" in commands[1] and commands[-2] == "uvx nox"
        try:
            for command in commands:
                result = project.run("bash", "-c", command)
                assert result.returncode == 0, f"{command}\n{output(result)}"
                if command.startswith("uv run"):
                    assert "Bytecode compiled" not in output(result), "uv run compiles nothing"
            env_file = (project.backend / ".env").read_text()
            [url] = re.findall(r"^DATABASE_URL=(\S+)$", env_file, re.MULTILINE)
            assert public_tables(url) == {"user", "alembic_version"}
        finally:
            project.run("uvx", "nox", "-s", "dev-db", "--", "stop")


def test_every_revision_alembic_writes_passes_the_whole_gate_as_written(
    project_with_history: Project,
) -> None:
    """Autogenerated, empty, data-only and merge revisions, as script.py.mako writes them:
    ruff, the gate's tests and lint-migrations pass with no edit and no other command
    (the post-write hook keeps docs/schema.md current)."""
    project = project_with_history
    server = project.env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"

    def gate() -> subprocess.CompletedProcess[str]:
        return project.run("uvx", "nox", TEST_DATABASE_URL=server)

    alembic_ok(project, "upgrade", "head")
    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    alembic_ok(project, "revision", "--autogenerate", "-m", "team motto")
    alembic_ok(project, "revision", "-m", "nothing yet")
    alembic_ok(project, "revision", "-m", "backfill mottos")
    [backfill] = [path for path in project.revision_files() if "backfill" in path.name]
    source = backfill.read_text()
    upgrade = '    """Upgrade schema."""\n    pass\n'
    assert upgrade in source, source
    backfill.write_text(
        source.replace(
            upgrade,
            '    """Upgrade schema."""\n'
            "    op.execute(\"UPDATE team SET motto = 'ours' WHERE motto IS NULL\")\n",
        )
    )
    passed = gate()
    assert passed.returncode == 0, output(passed)

    first = project.alembic("history").stdout.strip().splitlines()[-1].split()[2].rstrip(",")
    alembic_ok(project, "revision", "-m", "a branch", "--head", first, "--splice")
    two_heads = gate()
    assert two_heads.returncode != 0, output(two_heads)
    printed = re.findall(r"`(uv run alembic merge heads -m \"merge heads\")`", two_heads.stdout)
    [merge] = set(printed)
    merged = project.run("bash", "-c", merge)
    assert merged.returncode == 0, output(merged)
    passed = gate()
    assert passed.returncode == 0, output(passed)
