"""The development loop needs no database and never touches production.

``alembic revision --autogenerate`` compares the models with a throwaway
database at head (a local server it keeps, or ``SHADOW_DATABASE_URL``'s), never
with ``DATABASE_URL``'s; the ``alembic`` command line refuses to change a
database named in ``PRODUCTION_DATABASES``, which ``db-deploy`` migrates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .support import (
    USER_MODEL,
    Project,
    alembic_ok,
    git,
    load_gate_module,
    one_failure_line,
    output,
    public_tables,
    reachable_folder,
    render,
    version_rows,
    write_revision,
)

kept_server = load_gate_module("kept_server")  # its stdlib half: is a port taken
NICKNAME_MODEL = USER_MODEL + "    nickname: str | None = None\n"
# A port where nothing listens: the server behind it is down.
DOWN_URL = "postgresql://app:s3cret-pw@127.0.0.1:9/app"


@pytest.fixture
def loop(project: Project) -> Iterator[Project]:
    """The shared project with no DATABASE_URL anywhere (an empty value is no value) and
    autogenerate comparing with its database at head, as a fresh render does."""
    project.env = {"DATABASE_URL": "", "MIGRATION_AUTOGENERATE_AGAINST": ""}
    yield project


def autogenerate(project: Project, message: str, **env: str) -> str:
    return alembic_ok(project, "revision", "--autogenerate", "-m", message, **env)


def operations(project: Project, message: str) -> str:
    """What the revision autogenerate wrote for ``message`` does: its code from ``upgrade()``
    on, the same whichever database's ids and dates it carries."""
    [path] = [p for p in project.revision_files() if message.replace(" ", "_") in p.name]
    return path.read_text().split("def upgrade()", 1)[1]


def database_state(url: str) -> tuple[set[str], list[str]]:
    """The tables and the alembic_version rows, read over a connection of its own."""
    tables = public_tables(url)
    return tables, version_rows(url) if "alembic_version" in tables else []


def test_autogenerate_writes_the_first_revision_then_nothing_without_a_database_url(
    loop: Project,
) -> None:
    loop.write_model("user", USER_MODEL)
    autogenerate(loop, "add user")
    assert len(loop.revision_files()) == 1
    assert re.search(r"op\.create_table\(\s*'user'", operations(loop, "add user"))
    unchanged = autogenerate(loop, "nothing changed")
    assert len(loop.revision_files()) == 1, unchanged
    assert "no revision file written" in unchanged


def test_a_database_url_down_behind_or_with_a_table_of_its_own_changes_nothing(
    loop: Project, database_url: str
) -> None:
    loop.write_model("user", USER_MODEL)
    autogenerate(loop, "add user")
    loop.write_model("user", NICKNAME_MODEL)
    autogenerate(loop, "add nickname")
    expected = operations(loop, "add nickname")
    assert "op.add_column('user'" in expected
    alembic_ok(loop, "upgrade", "head", DATABASE_URL=database_url)
    alembic_ok(loop, "downgrade", "-1", DATABASE_URL=database_url)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE scratchpad (note text)")
    for path in loop.revision_files():
        if "add_nickname" in path.name:
            path.unlink()
    before = database_state(database_url)
    assert before == ({"alembic_version", "user", "scratchpad"}, [before[1][0]])
    for case, url in (("down", DOWN_URL), ("behind with a table of its own", database_url)):
        message = f"nickname {case}"
        text = autogenerate(loop, message, DATABASE_URL=url)
        assert operations(loop, message) == expected, case
        assert "s3cret-pw" not in text
        for path in loop.revision_files():
            if message.replace(" ", "_") in path.name:
                path.unlink()
    assert database_state(database_url) == before


def test_a_revision_that_fails_to_climb_is_named_and_nothing_is_written(loop: Project) -> None:
    write_revision(loop, "b0rken", None, 'op.execute("ALTER TABLE nosuch ADD x int")', "pass")
    loop.write_model("user", USER_MODEL)
    result = loop.alembic("revision", "--autogenerate", "-m", "add user")
    one_failure_line(result, "revision b0rken (b0rken_handwritten.py)", '"nosuch" does not exist')
    assert [path.name for path in loop.revision_files()] == ["b0rken_handwritten.py"]


def test_an_unreachable_shadow_database_url_is_named_in_one_line(loop: Project) -> None:
    loop.write_model("user", USER_MODEL)
    result = loop.alembic(
        "revision", "--autogenerate", "-m", "add user", SHADOW_DATABASE_URL=DOWN_URL
    )
    line = one_failure_line(result, "SHADOW_DATABASE_URL", "127.0.0.1:9/app")
    assert "s3cret-pw" not in output(result), line
    assert loop.revision_files() == []


def test_shadow_database_url_holds_only_the_template_afterwards(
    loop: Project, postgres_server: Any
) -> None:
    server = postgres_server.url(postgres_server.maintenance_db)
    loop.write_model("user", USER_MODEL)
    for message in ("add user", "nothing changed"):
        autogenerate(loop, message, SHADOW_DATABASE_URL=server)
    assert len(loop.revision_files()) == 1
    with psycopg.connect(server) as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
    shadows = [name for name in names if name.startswith("shadow_")]
    assert len(shadows) == 1 and re.fullmatch(r"shadow_[0-9a-f]{8}_[0-9a-f]{16}", shadows[0])


def test_autogenerate_against_database_url_compares_with_that_database(
    loop: Project, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE scratchpad (note text)")
    autogenerate(
        loop, "today", DATABASE_URL=database_url, MIGRATION_AUTOGENERATE_AGAINST="DATABASE_URL"
    )
    assert "op.drop_table('scratchpad')" in operations(loop, "today")


def test_the_command_line_refuses_to_change_production_and_db_deploy_migrates_it(
    loop: Project, database_url: str
) -> None:
    loop.write_model("user", USER_MODEL)
    autogenerate(loop, "add user")
    production = database_url.rsplit("@", 1)[1]
    hooks = loop.backend / "migrations" / "env_hooks.py"
    hooks.write_text(hooks.read_text() + f"\nPRODUCTION_DATABASES = {{{production!r}}}\n")
    loop.env["DATABASE_URL"] = database_url
    for args in (["upgrade", "head"], ["stamp", "head"], ["downgrade", "base"]):
        one_failure_line(loop.alembic(*args), "production", "db-deploy", production)
    assert public_tables(database_url) == set()
    deployed = loop.run(str(loop.bin / "db-deploy"))
    assert deployed.returncode == 0, output(deployed)
    assert public_tables(database_url) == {"alembic_version", "user"}


def test_production_is_recognised_by_its_neon_endpoint_before_any_connection(
    loop: Project,
) -> None:
    hooks = loop.backend / "migrations" / "env_hooks.py"
    hooks.write_text(hooks.read_text() + '\nPRODUCTION_DATABASES = {"ep-cool-darkness-123456"}\n')
    pooled = "postgresql://app:s3cret-pw@ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech/neondb"
    result = loop.alembic("upgrade", "head", DATABASE_URL=pooled)
    one_failure_line(result, "ep-cool-darkness-123456", "db-deploy")
    assert "Connecting" not in output(result) and "s3cret-pw" not in output(result)


@pytest.fixture
def reachable_project(template_src: Path) -> Iterator[Project]:
    """A fresh render, installed, in a folder that dev-db's server can reach as root."""
    with reachable_folder() as folder:
        project = Project(render(template_src, folder / "project"))
        project.install()
        project.env = {"DATABASE_URL": "", "MIGRATION_AUTOGENERATE_AGAINST": ""}
        try:
            yield project
        finally:
            project.run("uvx", "nox", "-s", "dev-db", "--", "stop")


def dev_db(project: Project, *args: str) -> str:
    result = project.run("uvx", "nox", "-s", "dev-db", *args)
    assert result.returncode == 0, output(result)
    return output(result)


def test_dev_db_starts_reuses_and_stops_and_its_data_survives_a_stop(
    reachable_project: Project,
) -> None:
    project = reachable_project
    project.write_model("user", USER_MODEL)
    autogenerate(project, "add user")
    env_file = project.backend / ".env"
    first = dev_db(project)
    [url] = re.findall(r"^DATABASE_URL=(\S+)$", first, re.MULTILINE)
    assert env_file.read_text() == f"DATABASE_URL={url}\n"
    assert "/my_service_dev" in url and "127.0.0.1" in url
    assert database_state(url)[0] == {"alembic_version", "user"}
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO \"user\" (email, name) VALUES ('a@b.c', 'kept')")
    again = dev_db(project)
    assert re.findall(r"^DATABASE_URL=(\S+)$", again, re.MULTILINE) == [url]
    assert env_file.read_text() == f"DATABASE_URL={url}\n"
    assert "stopped" in dev_db(project, "--", "stop")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
    dev_db(project)
    with psycopg.connect(url) as connection:
        names = connection.execute('SELECT name FROM "user"').fetchall()
    assert names == [("kept",)]
    git(project.root, "init", "-q")
    ignored = project.run("git", "check-ignore", "-q", ".postgres/data/PG_VERSION")
    assert ignored.returncode == 0, "dev-db's data must be git-ignored"


def test_autogenerates_local_server_stops_once_idle(project: Project) -> None:
    """The server autogenerate keeps between commands stops itself when unused."""
    with reachable_folder() as folder:
        workdir = folder / "server"
        start = (
            "import sys; from pathlib import Path; "
            "from migration_gate.kept_server import ensure_server; "
            "print(ensure_server(Path(sys.argv[1]), idle_seconds=1))"
        )
        started = project.run(str(project.bin / "python"), "-c", start, str(workdir))
        assert started.returncode == 0, output(started)
        port = int(started.stdout.strip())
        assert "ready to accept connections" in (workdir / "server.log").read_text()
        deadline = time.monotonic() + 60
        while kept_server.accepts_connections(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not kept_server.accepts_connections(port), "still running a minute later"
        assert (workdir / "data" / "PG_VERSION").is_file(), "its data stays"
