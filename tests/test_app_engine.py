"""The application's engine on Neon: idle connections that die, PgBouncer, asyncio.

Each probe runs inside a rendered, installed project against the session's
server, through a real PgBouncer in transaction mode where it says so; what
the server saw is checked from a separate psycopg connection.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .support import Project, output, render
from .test_neon_safety import through_fake_pooler
from .test_pgbouncer import pooler  # noqa: F401  (a fixture, requested by pgbouncer)

# Reads a line per query from stdin and prints the server process that ran it.
# "bare" builds the engine without the template's arguments, as a control.
BACKEND_PID_PROBE = """\
import sys
from sqlalchemy import create_engine, text
from my_service.db import get_engine
from my_service.db.settings import app_url

engine = create_engine(app_url()) if sys.argv[1:] == ["bare"] else get_engine()
for _ in sys.stdin:
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    except Exception as error:
        print(f"error: {type(error).__name__}", flush=True)
        continue
    print(pid, flush=True)
"""
# Two application connections take turns through the pooler, 10 identical queries each.
REPEATED_QUERY_PROBE = """\
from sqlalchemy import text
from my_service.db import get_engine

engine = get_engine()
with engine.connect() as first, engine.connect() as second:
    for number in range(10):
        for connection in (first, second):
            assert connection.execute(text("SELECT :n + 1"), {"n": number}).scalar() == number + 1
            connection.commit()
print("ok")
"""
ASYNC_PROBE = """\
import asyncio
from sqlalchemy import text
from my_service.db import get_async_engine


async def main() -> None:
    engine = get_async_engine()
    async with engine.connect() as connection:
        print((await connection.execute(text("SELECT 41 + 1"))).scalar())
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE async_probe (id int)"))
        await connection.execute(text("INSERT INTO async_probe VALUES (7)"))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO async_probe VALUES (8)"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    await engine.dispose()


asyncio.run(main())
"""


def installed(template_src: Path, root: Path, **answers: Any) -> Project:
    project = Project(render(template_src, root, **answers))
    project.install()
    return project


@pytest.fixture(scope="module")
def psycopg2_project(template_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return installed(template_src, tmp_path_factory.mktemp("psycopg2") / "project")


@pytest.fixture(scope="module")
def psycopg_project(template_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return installed(
        template_src, tmp_path_factory.mktemp("psycopg") / "project", db_driver="psycopg"
    )


def run_probe(project: Project, source: str, **env: str) -> subprocess.CompletedProcess[str]:
    probe = project.backend / "probe.py"
    probe.write_text(source)
    return project.run(str(project.bin / "python"), str(probe), DATABASE_URL_UNPOOLED="", **env)


@pytest.fixture
def backend_pids(
    tmp_path: Path,
) -> Iterator[Callable[..., Callable[[], str]]]:
    """Start the PID probe; each call of what it returns runs one query and gives its answer."""
    processes: list[subprocess.Popen[str]] = []

    def start(project: Project, *args: str, **env: str) -> Callable[[], str]:
        probe = tmp_path / "pid_probe.py"
        probe.write_text(BACKEND_PID_PROBE)
        process = subprocess.Popen(
            [str(project.bin / "python"), str(probe), *args],
            cwd=project.backend,
            env=project.environment(DATABASE_URL_UNPOOLED="", **env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)

        def query() -> str:
            assert process.stdin and process.stdout
            process.stdin.write("\n")
            process.stdin.flush()
            answer = process.stdout.readline().strip()
            assert answer, process.stderr.read() if process.stderr else ""
            return answer

        return query

    yield start
    for process in processes:
        process.kill()
        process.communicate()


def terminate(database_url: str, pid: str) -> None:
    """Kill an idle backend from a separate connection, as a Neon suspend or restart does."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (int(pid),)).fetchone() == (True,)
        for _ in range(50):
            gone = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if gone.fetchone() == (0,):
                return
            time.sleep(0.1)
    pytest.fail(f"backend {pid} was not terminated")


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_engine_survives_a_killed_idle_connection(
    request: pytest.FixtureRequest,
    backend_pids: Callable[..., Callable[[], str]],
    database_url: str,
    driver: str,
) -> None:
    project = request.getfixturevalue(f"{driver}_project")
    app = backend_pids(project, DATABASE_URL=database_url)
    bare = backend_pids(project, "bare", DATABASE_URL=database_url)
    first, bare_first = app(), bare()
    terminate(database_url, first)
    terminate(database_url, bare_first)
    second = app()
    assert second.isdigit() and second != first, "a new connection replaced the dead one"
    assert bare().startswith("error: "), "control: without pool_pre_ping the dead one is used"


def test_connections_are_recycled_after_the_configured_age(
    psycopg2_project: Project, backend_pids: Callable[..., Callable[[], str]], database_url: str
) -> None:
    default = backend_pids(psycopg2_project, DATABASE_URL=database_url)
    short = backend_pids(psycopg2_project, DATABASE_URL=database_url, DATABASE_POOL_RECYCLE="1")
    before = default(), short()
    time.sleep(1.5)
    after = default(), short()
    assert after[0] == before[0], "within 240 s the pooled connection is reused"
    assert after[1] != before[1], "after DATABASE_POOL_RECYCLE seconds it is replaced"


@pytest.fixture
def pgbouncer(request: pytest.FixtureRequest) -> str:
    """The client URL of a real PgBouncer in transaction mode (``pooler`` of test_pgbouncer.py)."""
    return request.getfixturevalue("pooler")


def test_repeated_queries_work_through_pgbouncer_with_psycopg(
    psycopg_project: Project, pgbouncer: str
) -> None:
    pooled = through_fake_pooler(pgbouncer)
    result = run_probe(psycopg_project, REPEATED_QUERY_PROBE, DATABASE_URL=pooled)
    assert result.returncode == 0 and result.stdout == "ok\n", output(result)
    opted_in = run_probe(
        psycopg_project,
        REPEATED_QUERY_PROBE,
        DATABASE_URL=pooled,
        DATABASE_PREPARED_STATEMENTS="on",
    )
    assert opted_in.returncode != 0, "control: server-side prepared statements break here"
    assert "_pg3_" in opted_in.stderr, output(opted_in)
    assert "n30n" not in output(result) + output(opted_in)


def test_startup_options_never_reach_the_pooler(psycopg2_project: Project, pgbouncer: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(pgbouncer, options="-c search_path=app").close()
    check = "from my_service.db import get_engine; get_engine()"
    python = str(psycopg2_project.bin / "python")
    refused = psycopg2_project.run(
        python,
        "-c",
        check,
        DATABASE_URL=through_fake_pooler(pgbouncer) + "&options=-csearch_path%3Dapp",
    )
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "refuses the startup parameter 'options'" in last and "DATABASE_URL" in last
    assert "n30n" not in output(refused)
    from_environment = psycopg2_project.run(
        python,
        "-c",
        check,
        DATABASE_URL=through_fake_pooler(pgbouncer),
        PGOPTIONS="-c work_mem=8MB",
    )
    assert "set by the PGOPTIONS environment variable" in from_environment.stderr
    neon_endpoint = psycopg2_project.run(
        python,
        "-c",
        check,
        DATABASE_URL=through_fake_pooler(pgbouncer) + "&options=endpoint%3Dep-test-123",
    )
    assert neon_endpoint.returncode == 0, output(neon_endpoint)


def test_async_engine_runs_a_query_and_a_transaction(
    psycopg_project: Project, database_url: str
) -> None:
    result = run_probe(psycopg_project, ASYNC_PROBE, DATABASE_URL=database_url)
    assert result.returncode == 0 and result.stdout == "42\n", output(result)
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT id FROM async_probe").fetchall()
    assert rows == [(7,)], "the committed row is there, the rolled-back one is not"


def test_async_engine_exists_only_with_psycopg(
    psycopg2_project: Project, psycopg_project: Project
) -> None:
    source = "my_service/db/__init__.py"
    assert "get_async_engine" not in (psycopg2_project.backend / source).read_text()
    assert "def get_async_engine" in (psycopg_project.backend / source).read_text()


def test_a_bad_recycle_setting_is_named_in_one_line(psycopg_project: Project) -> None:
    check = "from my_service.db import get_engine; print(get_engine().pool._recycle)"
    bad = psycopg_project.run(
        str(psycopg_project.bin / "python"),
        "-c",
        check,
        DATABASE_URL="postgresql://u@h/db",
        DATABASE_POOL_RECYCLE="soon",
    )
    assert "DATABASE_POOL_RECYCLE must be a non-negative number" in bad.stderr.splitlines()[-1]
