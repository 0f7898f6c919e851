"""From merge to production: `db-deploy` migrates, `db-doctor` watches for drift read-only.

Both run as the rendered project's own console scripts against a real server;
what they did (or did not do) is checked from a separate psycopg connection.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy.engine import make_url

from .support import (
    TEAM_MODEL,
    Project,
    alembic_ok,
    head_revision,
    output,
    public_tables,
    version_rows,
    write_revision,
)
from .test_neon_safety import PW, through_fake_pooler

WATCHER_PASSWORD = "w4tch3r-pw"


def with_password(url: str) -> str:
    """``url`` with a password the server ignores (trust), so leaks can be looked for."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PW}@")


def deploy(project: Project, summary: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return project.run(str(project.bin / "db-deploy"), GITHUB_STEP_SUMMARY=str(summary), **env)


def one_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """It failed with exactly one ``db-deploy:`` line holding ``expected``, and no traceback."""
    text = output(result)
    assert result.returncode == 1, text
    assert "Traceback" not in text and "n30n" not in text, text
    lines = [line for line in result.stderr.splitlines() if line.startswith("db-deploy:")]
    assert len(lines) == 1, text
    for fragment in expected:
        assert fragment in lines[0], text
    return lines[0]


def revisions(project: Project) -> list[str]:
    """The project's revisions, oldest first."""
    lines = project.alembic("history").stdout.strip().splitlines()
    return [line.split(" -> ")[1].split(",")[0].split()[0] for line in reversed(lines)]


def test_deploy_shows_the_sql_then_migrates_and_checks(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    project = project_with_history
    project.env["DATABASE_URL"] = with_password(database_url)
    summary = tmp_path / "summary.md"

    result = deploy(project, summary)
    assert result.returncode == 0, output(result)
    assert 'CREATE TABLE "user"' in result.stdout and "CREATE TABLE team" in result.stdout
    assert result.stdout.startswith("SET lock_timeout")
    assert "Connecting to" in result.stderr and "(direct connection" in result.stderr
    assert result.stderr.strip().endswith("and matches the models")
    written = summary.read_text()
    assert "```sql\n" in written and "CREATE TABLE team" in written, written
    assert "**Done:** production is at" in written
    assert version_rows(database_url) == [head_revision(project)]
    assert {"user", "team"} <= public_tables(database_url)
    assert "n30n" not in output(result) + written

    again = deploy(project, summary)
    assert again.returncode == 0 and again.stdout == "", output(again)
    assert "already at head" in summary.read_text()


def test_a_failing_revision_is_rolled_back_and_named(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    """Three revisions to deploy, the second fails: production stays at the first."""
    project = project_with_history
    _user, nickname, team = revisions(project)
    alembic_ok(project, "upgrade", nickname)
    write_revision(
        project,
        "fa11fa11fa11",
        team,
        "op.create_table('half', sa.Column('id', sa.Integer, primary_key=True))\n"
        "    op.execute('SELECT 1 / 0')",
        "op.drop_table('half')",
    )
    write_revision(project, "1a571a571a57", "fa11fa11fa11", "pass", "pass")
    summary = tmp_path / "summary.md"

    line = one_line(
        deploy(project, summary),
        "revision fa11fa11fa11 failed and was rolled back: division by zero",
        f"production is at {team} (1 of 3 new revisions applied)",
    )
    assert version_rows(database_url) == [team]
    tables = public_tables(database_url)
    assert "team" in tables and "half" not in tables
    assert f"**Failed:** {line}" in summary.read_text()


def test_drift_after_the_upgrade_fails_the_deploy(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    project = project_with_history
    alembic_ok(project, "upgrade", "head")
    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    one_line(deploy(project, tmp_path / "summary.md"), "models differ", "run db-doctor")
    assert version_rows(database_url) == [head_revision(project)]


def test_a_revision_that_reads_the_database_deploys_without_a_preview(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    project = project_with_history
    alembic_ok(project, "upgrade", "head")
    write_revision(
        project,
        "bac0f111bac0",
        head_revision(project),
        "if op.get_bind().execute(sa.text('SELECT count(*) FROM team')).scalar() == 0:\n"
        "        op.execute(\"INSERT INTO team (title) VALUES ('first')\")",
        "pass",
    )
    result = deploy(project, tmp_path / "summary.md")
    assert result.returncode == 0, output(result)
    assert result.stdout.startswith("-- no offline preview: "), result.stdout
    assert version_rows(database_url) == ["bac0f111bac0"]
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT title FROM team").fetchall() == [("first",)]


def schema_state(url: str) -> list[tuple[object, ...]]:
    """Every relation and column in public, and the version row with its xmin (changes on write)."""
    with psycopg.connect(url) as connection:
        columns = connection.execute(
            "SELECT c.relname, c.relkind, a.attname, a.atttypid::regtype::text "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE n.nspname = 'public' ORDER BY 1, 3"
        ).fetchall()
        if "alembic_version" not in {row[0] for row in columns}:
            return columns
        version = connection.execute("SELECT version_num, xmin::text FROM alembic_version")
        return columns + version.fetchall()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "", "DATABASE_URL_UNPOOLED": ""}, "DATABASE_URL is not set"),
        ("pooled", "DATABASE_URL_UNPOOLED points at a pooled (-pooler) host"),
        ("unknown", "deadbeef0000, which no file in migrations/versions knows; run db-doctor"),
        ("broken", "SyntaxError"),
        (
            {"MIGRATION_LOCK_RETRY_BUDGET": "until it works"},
            "MIGRATION_LOCK_RETRY_BUDGET must be a duration such as 5s, 500ms or 15min",
        ),
    ],
    ids=[
        "no-url",
        "pooled-url-no-direct-host",
        "unknown-revision",
        "revision-does-not-parse",
        "retry-budget-not-a-duration",
    ],
)
def test_bad_input_fails_in_one_line_and_changes_nothing(
    project_with_history: Project,
    database_url: str,
    tmp_path: Path,
    env: dict[str, str] | str,
    expected: str,
) -> None:
    project = project_with_history
    if env == "unknown":
        alembic_ok(project, "upgrade", "head")
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("UPDATE alembic_version SET version_num = 'deadbeef0000'")
            connection.execute("DROP TABLE team")
        env = {}
    elif env == "broken":
        write_revision(project, "b40c3nb40c3n", head_revision(project), "pass", "pass(")
        env = {}
    elif env == "pooled":
        env = {"DATABASE_URL_UNPOOLED": through_fake_pooler(database_url)}
    before = schema_state(database_url)
    result = deploy(project, tmp_path / "summary.md", **env)
    one_line(result, expected)
    assert result.stdout == "", "no SQL is shown for a deploy that cannot run"
    assert schema_state(database_url) == before


def documented_role_sql(project: Project, role: str, database: str) -> str:
    """The SQL that docs/deploy.md tells teams to run, for this role and database."""
    docs = (project.backend / "docs" / "deploy.md").read_text()
    found = re.search(r"```sql\n(CREATE ROLE drift_watch .*?)```", docs, re.DOTALL)
    assert found, "docs/deploy.md shows the drift watch role"
    return (
        found.group(1)
        .replace("drift_watch", role)
        .replace("neondb", database)
        .replace("'a long random password'", f"'{WATCHER_PASSWORD}'")
    )


@pytest.fixture
def read_only_url(project_with_history: Project, database_url: str) -> Iterator[str]:
    """A database at head, and the drift watch's role created by the SQL in docs/deploy.md."""
    alembic_ok(project_with_history, "upgrade", "head")
    admin = make_url(database_url)
    role = f"drift_watch_{admin.database}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(documented_role_sql(project_with_history, role, admin.database or ""))
    try:
        yield admin.set(username=role, password=WATCHER_PASSWORD).render_as_string(
            hide_password=False
        )
    finally:
        names = {"role": sql.Identifier(role), "db": sql.Identifier(admin.database or "")}
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP OWNED BY {role}").format(**names))
            connection.execute(sql.SQL("REVOKE ALL ON DATABASE {db} FROM {role}").format(**names))
            connection.execute(sql.SQL("DROP ROLE {role}").format(**names))


def test_doctor_watches_drift_with_a_read_only_role(
    project_with_history: Project, database_url: str, read_only_url: str
) -> None:
    project = project_with_history
    as_watcher = {"DATABASE_URL": read_only_url, "DATABASE_URL_UNPOOLED": ""}
    before = schema_state(database_url)

    healthy = project.run(str(project.bin / "db-doctor"), **as_watcher)
    assert healthy.returncode == 0 and healthy.stdout.startswith("healthy"), output(healthy)

    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    drift = project.run(str(project.bin / "db-doctor"), **as_watcher)
    assert drift.returncode == 1, output(drift)
    assert "the models differ from the database" in drift.stdout and "motto" in drift.stdout

    assert schema_state(database_url) == before, "the watcher wrote nothing and ran no DDL"
    assert WATCHER_PASSWORD not in output(healthy) + output(drift)
    with psycopg.connect(read_only_url) as watcher, pytest.raises(psycopg.errors.Error) as denied:
        watcher.execute("CREATE TABLE intruder (id int)")
    assert isinstance(
        denied.value, psycopg.errors.ReadOnlySqlTransaction | psycopg.errors.InsufficientPrivilege
    )
    with psycopg.connect(read_only_url, autocommit=True) as watcher:
        watcher.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            watcher.execute("UPDATE alembic_version SET version_num = 'x'")
    assert schema_state(database_url) == before


def drift_watch_step(project: Project, database_url: str, tmp_path: Path) -> str:
    """Run the drift watch's doctor step as the workflow has it; return what it outputs."""
    workflow = yaml.safe_load((project.root / ".github/workflows/drift-watch.yml").read_text())
    step = next(s for s in workflow["jobs"]["doctor"]["steps"] if s.get("id") == "doctor")
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    ran = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=project.backend,
        env=project.environment(
            DATABASE_URL=database_url, RUNNER_TEMP=str(tmp_path), GITHUB_OUTPUT=str(outputs)
        ),
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, output(ran)
    return outputs.read_text()


def test_drift_watch_step_passes_the_doctors_report_on(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    project = project_with_history
    alembic_ok(project, "upgrade", "head")
    assert drift_watch_step(project, database_url, tmp_path).startswith("status=0\n")
    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    found = drift_watch_step(project, database_url, tmp_path)
    assert found.startswith("status=1\nreport<<DRIFT_WATCH_REPORT\n"), found
    assert "problem: the models differ from the database" in found
    assert found.endswith("DRIFT_WATCH_REPORT\n")


UNIQUE_TITLE = """\
    with op.get_context().autocommit_block():
        op.drop_index(  # what a failed run left
            op.f("uq_team_title"), table_name="team", postgresql_concurrently=True, if_exists=True
        )
        op.create_index(
            op.f("uq_team_title"),
            "team",
            ["title"],
            unique=True,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
    op.execute("ALTER TABLE team ADD CONSTRAINT uq_team_title UNIQUE USING INDEX uq_team_title")"""


def index_validity(url: str, name: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
        ).fetchall()


def test_an_invalid_index_left_by_a_failed_deploy_is_named_with_the_command_that_drops_it(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    """docs/safe-migrations.md's unique recipe on production rows that share a title."""
    project = project_with_history
    alembic_ok(project, "upgrade", "head")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("INSERT INTO team (title) VALUES ('Core'), ('Core'), ('Web')")
    project.write_model("team", TEAM_MODEL.replace("title: str", "title: str = Field(unique=True)"))
    write_revision(
        project,
        "un1que71t1e0",
        head_revision(project),
        UNIQUE_TITLE.strip(),
        'op.drop_constraint(op.f("uq_team_title"), "team", type_="unique")',
    )
    summary = tmp_path / "summary.md"
    line = one_line(
        deploy(project, summary),
        'revision un1que71t1e0 failed: could not create unique index "uq_team_title"',
        "it left the invalid index uq_team_title behind: "
        "run `DROP INDEX CONCURRENTLY uq_team_title` before you retry",
    )
    assert "rolled back" not in line
    assert index_validity(database_url, "uq_team_title") == [(False,)]

    doctor = project.run(str(project.bin / "db-doctor"))
    assert doctor.returncode == 1, output(doctor)
    assert "problem: index uq_team_title on team is invalid" in doctor.stdout, output(doctor)
    assert "fix: DROP INDEX CONCURRENTLY uq_team_title;" in doctor.stdout

    [command] = re.findall(r"run `([^`]+)`", line)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(command)
    assert index_validity(database_url, "uq_team_title") == []
    assert "is invalid" not in project.run(str(project.bin / "db-doctor")).stdout

    one_line(deploy(project, summary), "it left the invalid index uq_team_title behind")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DELETE FROM team WHERE title = 'Core' AND id > 1")
    retried = deploy(project, summary)
    assert retried.returncode == 0, output(retried)
    assert index_validity(database_url, "uq_team_title") == [(True,)], "built again, not skipped"
    assert version_rows(database_url) == ["un1que71t1e0"]


def test_a_revision_that_committed_part_of_its_work_is_not_called_rolled_back(
    project_with_history: Project, database_url: str, tmp_path: Path
) -> None:
    project = project_with_history
    alembic_ok(project, "upgrade", "head")
    write_revision(
        project,
        "ha1fd0ne0000",
        head_revision(project),
        "with op.get_context().autocommit_block():\n"
        "        op.execute('CREATE TABLE half (id int)')\n"
        "    op.execute('SELECT 1 / 0')",
        "op.drop_table('half')",
    )
    line = one_line(
        deploy(project, tmp_path / "summary.md"),
        "revision ha1fd0ne0000 failed: division by zero; what it ran in autocommit_block() "
        "before that was committed and stays, the rest was rolled back",
    )
    assert "failed and was rolled back" not in line
    assert "half" in public_tables(database_url)
