"""Safe against a real Neon database: URL resolution, locks, timeouts, failures, cold starts.

Everything runs through the rendered project's own alembic and db-doctor, and
the database is checked from a separate connection.
"""

from __future__ import annotations

import json
import subprocess
import time
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy.engine import make_url

from .conftest import servers
from .support import (
    TEAM_MODEL,
    Project,
    alembic_ok,
    head_revision,
    one_failure_line,
    output,
    public_tables,
    version_rows,
    write_revision,
)

SECRET = "n30n%pa@ss:w/rd"
NEON_POOLED = "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
NEON_DIRECT = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
RESOLVE = (
    "import json; from my_service.db.settings import migration_target as t; m = t(); "
    "print(json.dumps({'url': m.url.render_as_string(hide_password=False), "
    "'pooled': m.pooled, 'variable': m.variable}))"
)


def resolve(project: Project, **env: str) -> dict[str, object]:
    result = project.run(str(project.bin / "python"), "-c", RESOLVE, **env)
    assert result.returncode == 0, output(result)
    return json.loads(result.stdout)


PW = quote(SECRET, safe="")
RESOLUTION_CASES = {
    "pooled-neon-url-becomes-direct": (
        {
            "DATABASE_URL": f"postgresql://app:{PW}@{NEON_POOLED}/neondb?sslmode=require&channel_binding=require"
        },
        f"postgresql+psycopg2://app:{PW}@{NEON_DIRECT}/neondb?channel_binding=require&sslmode=require",
        "DATABASE_URL",
        False,
    ),
    "unpooled-variable-wins": (
        {
            "DATABASE_URL": f"postgresql://app:{PW}@{NEON_POOLED}/neondb?sslmode=require",
            "DATABASE_URL_UNPOOLED": f"postgres://admin:{PW}@{NEON_DIRECT}/neondb?sslmode=verify-full",
        },
        f"postgresql+psycopg2://admin:{PW}@{NEON_DIRECT}/neondb?sslmode=verify-full",
        "DATABASE_URL_UNPOOLED",
        False,
    ),
    "pooled-unpooled-variable-is-flagged": (
        {"DATABASE_URL_UNPOOLED": f"postgresql://app:{PW}@{NEON_POOLED}/neondb?sslmode=require"},
        f"postgresql+psycopg2://app:{PW}@{NEON_POOLED}/neondb?sslmode=require",
        "DATABASE_URL_UNPOOLED",
        True,
    ),
    "neon-host-gets-tls": (
        {"DATABASE_URL": f"postgresql://app:{PW}@{NEON_DIRECT}/neondb"},
        f"postgresql+psycopg2://app:{PW}@{NEON_DIRECT}/neondb?sslmode=require",
        "DATABASE_URL",
        False,
    ),
    "other-hosts-pass-through": (
        {
            "DATABASE_URL": "postgresql+psycopg://u%25x:p%40@db.internal:6543/app?options=-csearch_path%3Dapp&connect_timeout=3"
        },
        "postgresql+psycopg2://u%25x:p%40@db.internal:6543/app?connect_timeout=3&options=-csearch_path%3Dapp",
        "DATABASE_URL",
        False,
    ),
}


@pytest.mark.parametrize(
    ("env", "url", "variable", "pooled"), RESOLUTION_CASES.values(), ids=RESOLUTION_CASES.keys()
)
def test_migration_url_resolution(
    project: Project, env: dict[str, str], url: str, variable: str, pooled: bool
) -> None:
    resolved = resolve(project, **{"DATABASE_URL": "", "DATABASE_URL_UNPOOLED": "", **env})
    assert resolved == {"url": url, "variable": variable, "pooled": pooled}


def test_concurrent_deploys_take_turns(project_with_history: Project, database_url: str) -> None:
    """Three replicas run `upgrade head` at once: all succeed, each revision runs once."""
    project = project_with_history
    write_revision(
        project,
        "510w510w510w",
        head_revision(project),
        "op.execute('SELECT pg_sleep(2)')\n    op.create_table('deploy_marker', "
        "sa.Column('id', sa.Integer, primary_key=True))",
        "op.drop_table('deploy_marker')",
    )
    runners = [project.start(str(project.bin / "alembic"), "upgrade", "head") for _ in range(3)]
    results = [runner.communicate(timeout=120) for runner in runners]
    logs = [stdout + stderr for stdout, stderr in results]
    assert [runner.returncode for runner in runners] == [0, 0, 0], logs
    assert sum(log.count("Running upgrade") for log in logs) == 4, "each revision ran once"
    assert any("Another migration run holds the lock" in log for log in logs)
    assert version_rows(database_url) == ["510w510w510w"]
    assert "deploy_marker" in public_tables(database_url)


def migrate_then_add_revision(
    project: Project, url: str, upgrade: str, downgrade: str
) -> list[str]:
    """Migrate to head, then add a handwritten revision; return the version rows before it."""
    alembic_ok(project, "upgrade", "head")
    before = version_rows(url)
    write_revision(project, "0a0b0c0d0e0f", head_revision(project), upgrade, downgrade)
    return before


def test_lock_timeout_fails_fast_and_leaves_the_previous_revision(
    project_with_history: Project, database_url: str
) -> None:
    project = project_with_history
    before = migrate_then_add_revision(
        project,
        database_url,
        "op.add_column('team', sa.Column('motto', sa.String()))",
        "op.drop_column('team', 'motto')",
    )
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT * FROM team")  # holds ACCESS SHARE until rollback
        result = project.alembic("upgrade", "head", MIGRATION_LOCK_TIMEOUT="1s")
        blocker.rollback()
    one_failure_line(result, "lock timeout")
    assert version_rows(database_url) == before
    with psycopg.connect(database_url) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'team'"
        ).fetchall()
    assert ("motto",) not in columns


def test_failing_revision_leaves_nothing_half_applied(
    project_with_history: Project, database_url: str
) -> None:
    project = project_with_history
    before = migrate_then_add_revision(
        project,
        database_url,
        "op.create_table('half', sa.Column('id', sa.Integer, primary_key=True))\n"
        "    op.execute('SELECT 1 / 0')",
        "op.drop_table('half')",
    )
    one_failure_line(project.alembic("upgrade", "head"), "division by zero", "rolled back")
    assert "half" not in public_tables(database_url)
    assert version_rows(database_url) == before


def test_cold_start_is_retried_until_the_server_is_up(project_with_history: Project) -> None:
    """The migration starts before its server does; bounded retries still get it migrated."""
    project = project_with_history
    head = head_revision(project)
    port = servers.free_port()
    runner = project.start(
        str(project.bin / "alembic"),
        "upgrade",
        "head",
        DATABASE_URL=f"postgresql://postgres:{PW}@127.0.0.1:{port}/postgres",
        MIGRATION_CONNECT_RETRY_SECONDS="60",
    )
    time.sleep(3)
    with servers.throwaway_server(port=port) as server:
        stdout, stderr = runner.communicate(timeout=90)
        assert runner.returncode == 0, stdout + stderr
        assert "Database not reachable yet" in stderr
        assert version_rows(server.url("postgres")) == [head]
    assert "n30n" not in stdout + stderr


def doctor(project: Project, **env: str) -> subprocess.CompletedProcess[str]:
    return project.run(str(project.bin / "db-doctor"), **env)


def test_doctor_reports_healthy_then_each_problem_with_its_fix(
    project_with_history: Project, database_url: str
) -> None:
    project = project_with_history
    secret_url = database_url.replace("postgresql://postgres@", f"postgresql://postgres:{PW}@")
    project.env["DATABASE_URL"] = secret_url
    behind = doctor(project)
    assert behind.returncode == 1 and "fix: alembic upgrade head" in behind.stdout, output(behind)

    assert project.alembic("upgrade", "head").returncode == 0
    healthy = doctor(project)
    assert healthy.returncode == 0 and healthy.stdout.startswith("healthy"), output(healthy)

    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    drift = doctor(project)
    assert drift.returncode == 1 and "alembic revision --autogenerate" in drift.stdout, output(
        drift
    )
    project.write_model("team", TEAM_MODEL)

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'deadbeef0000'")
    unknown = doctor(project)
    assert unknown.returncode == 1 and "deadbeef0000" in unknown.stdout, output(unknown)
    assert "alembic stamp" in unknown.stdout

    write_revision(project, "5ec0ndhead00", first_revision(project), "pass", "pass")
    heads = doctor(project)
    assert heads.returncode == 1 and "alembic merge heads" in heads.stdout, output(heads)

    for result in (behind, healthy, drift, unknown, heads):
        assert "n30n" not in output(result)


def first_revision(project: Project) -> str:
    return project.alembic("history").stdout.strip().splitlines()[-1].split()[2].rstrip(",")


def test_doctor_finds_models_that_autogenerate_cannot_see(project_with_history: Project) -> None:
    project = project_with_history
    package = project.backend / project.package
    (package / "billing.py").write_text(TEAM_MODEL.replace("Team", "Invoice"))
    (package / "models" / "shop").mkdir()
    (package / "models" / "shop" / "order.py").write_text(TEAM_MODEL.replace("Team", "Order"))
    result = doctor(project)
    assert result.returncode == 1
    assert "my_service.billing defines table=True models outside" in result.stdout, output(result)
    assert "my_service.models.shop.order is never imported" in result.stdout
    assert "add an __init__.py to my_service/models/shop/" in result.stdout


def through_fake_pooler(url: str) -> str:
    """``url`` under a Neon-style ``-pooler`` host name that libpq never looks up."""
    parsed = make_url(url)
    return (
        f"postgresql://{parsed.username}:{PW}@ep-test-123-pooler.example.invalid:{parsed.port}"
        f"/{parsed.database}?hostaddr=127.0.0.1"
    )


def test_pooled_migration_url_warns_before_connecting(
    project_with_history: Project, database_url: str
) -> None:
    project = project_with_history
    result = project.alembic(
        "upgrade", "head", DATABASE_URL_UNPOOLED=through_fake_pooler(database_url)
    )
    assert result.returncode == 0, output(result)
    assert "(pooled connection, from DATABASE_URL_UNPOOLED)" in result.stderr
    assert "WARNI [alembic.env]" in result.stderr  # alembic.ini's format cuts levels to 5
    assert "set DATABASE_URL_UNPOOLED to the direct host" in result.stderr
    assert "n30n" not in output(result)


def test_doctor_flags_migrations_through_the_pooler(
    project_with_history: Project, database_url: str
) -> None:
    project = project_with_history
    result = doctor(project, DATABASE_URL_UNPOOLED=through_fake_pooler(database_url))
    assert result.returncode == 1, output(result)
    assert "through the pooler" in result.stdout and "DATABASE_URL_UNPOOLED" in result.stdout
    assert "n30n" not in output(result)
