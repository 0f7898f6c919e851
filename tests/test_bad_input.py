"""Bad settings end in one line that names the variable, a non-zero exit, no traceback."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy.engine import make_url

from .support import Project, one_failure_line, output

SECRET = "s3cr%t@p:ss/w#rd"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "DATABASE_URL is not set"),
        ("mysql://root:" + quote(SECRET, safe="") + "@db/app", "must start with postgresql://"),
        ("postgresql://user:" + SECRET + "@host:notaport/app", "not a valid URL"),
        ("just words " + SECRET, "not a valid URL"),
        ("postgresql://user:pw@/app", "has no host"),
        ("postgresql://user:pw@host:5432", "has no database"),
    ],
    ids=["missing", "wrong-scheme", "bad-port", "garbage", "no-host", "no-database"],
)
def test_bad_database_url(project: Project, value: str, expected: str) -> None:
    result = project.alembic("upgrade", "head", DATABASE_URL=value)
    line = one_failure_line(result, "DATABASE_URL", expected)
    assert SECRET not in output(result) and "s3cr" not in line


def test_unreachable_server_fails_in_one_line(project: Project) -> None:
    url = f"postgresql://user:{quote(SECRET, safe='')}@127.0.0.1:1/app"
    result = project.alembic(
        "upgrade", "head", DATABASE_URL=url, MIGRATION_CONNECT_RETRY_SECONDS="1"
    )
    one_failure_line(result, "cannot connect to 127.0.0.1:1/app")
    assert "s3cr" not in output(result)


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"]
)
def test_percent_encoded_password_and_every_scheme_connect(
    project: Project, database_url: str, scheme: str
) -> None:
    """A role whose password holds % @ : / # logs in; the password never shows."""
    admin = make_url(database_url)
    role = f"app_{scheme.replace('+', '_')}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'")
        connection.execute(f"GRANT ALL ON SCHEMA public TO {role}")
    try:
        url = (
            f"{scheme}://{role}:{quote(SECRET, safe='')}@{admin.host}:{admin.port}/{admin.database}"
        )
        result = project.alembic("upgrade", "head", DATABASE_URL=url)
        assert result.returncode == 0, output(result)
        assert "s3cr" not in output(result)
        wrong = project.alembic("upgrade", "head", DATABASE_URL=url.replace("s3cr", "nope"))
        if wrong.returncode == 0:  # only on a TEST_DATABASE_URL server with trust auth
            pytest.skip("this server accepts any password, so a wrong one cannot be shown failing")
        one_failure_line(wrong, "password authentication failed")
    finally:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(f"DROP OWNED BY {role}")
            connection.execute(f"DROP ROLE {role}")


def test_environment_wins_over_env_file(project: Project, database_url: str) -> None:
    (project.backend / ".env").write_text(
        "DATABASE_URL=postgresql://u:p@127.0.0.1:1/from_env_file\n"
    )
    from_file = project.alembic(
        "upgrade", "head", DATABASE_URL="", MIGRATION_CONNECT_RETRY_SECONDS="0"
    )
    assert "127.0.0.1:1/from_env_file" in output(from_file)
    from_environment = project.alembic("upgrade", "head")
    assert from_environment.returncode == 0, output(from_environment)
    assert make_url(database_url).database in output(from_environment)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MIGRATION_LOCK_TIMEOUT", "soon"),
        ("MIGRATION_STATEMENT_TIMEOUT", "5 minutes; DROP TABLE x"),
        ("MIGRATION_CONNECT_RETRY_SECONDS", "-1"),
    ],
)
def test_bad_migration_setting(project: Project, variable: str, value: str) -> None:
    one_failure_line(project.alembic("upgrade", "head", **{variable: value}), variable)
