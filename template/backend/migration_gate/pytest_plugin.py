"""The gate's fixtures for pytest (template-owned); ``conftest.py`` registers this plugin.

``postgres_server`` is the run's one server, ``empty_database`` a new database
per test. ``alembic_config`` and ``alembic_engine`` feed pytest-alembic's
``alembic_runner`` for your own migration tests; ``database_at_head`` gives a
test its own database at head, cloned from one migrated once per run. After
the tests, the gate's report says what the revisions it checked did on rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from .project import engine_for, project_config, skip_garbage_collection_at_exit
from .servers import (
    NoServerError,
    PostgresServer,
    session_server,
    template_database,
    temporary_database,
)

if TYPE_CHECKING:
    from .climb import HistoryDatabase

# The databases the gate's tests climbed (``checks.py``), for the report.
CLIMBED = pytest.StashKey[list["HistoryDatabase"]]()


def pytest_configure(config: pytest.Config) -> None:
    skip_garbage_collection_at_exit()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The locks and rewrites of the revisions checked on rows, their rows' shortfalls, and
    where the climb's time went."""
    climbed = config.stash.get(CLIMBED, [])
    if not climbed:
        return
    history = max(climbed, key=lambda history: len(history.rows.measured))
    terminalreporter.write_sep("-", "migration gate: the revisions on rows")
    for line in history.rows.report():
        terminalreporter.write_line(line)
    timings = history.rows.timings
    on_rows = timings.rows + timings.comparisons + timings.trace
    terminalreporter.write_line(
        f"time: climb and descent {history.seconds:.2f} s, of which rows {timings.rows:.2f} s, "
        f"comparisons {timings.comparisons:.2f} s, trace {timings.trace:.2f} s "
        f"(migrations and schema reads {history.seconds - on_rows:.2f} s)"
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The one server of this test session."""
    try:
        with session_server() as server:
            yield server
    except NoServerError as error:
        pytest.exit(str(error), returncode=4)


@pytest.fixture
def empty_database(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    with temporary_database(postgres_server) as url:
        yield url


def migrate_to_head(url: str) -> None:
    engine = engine_for(url)
    try:
        command.upgrade(project_config(engine), "heads")
    finally:
        engine.dispose()


@pytest.fixture
def alembic_config() -> Config:
    return project_config()


@pytest.fixture
def alembic_engine(empty_database: str) -> Iterator[Engine]:
    """pytest-alembic's database: empty, and pooled, as each step would reconnect otherwise."""
    engine = engine_for(empty_database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def head_template(postgres_server: PostgresServer) -> Iterator[str]:
    """Name of a template database migrated to head once per session."""
    yield from template_database(postgres_server, migrate_to_head)


@pytest.fixture
def database_at_head(postgres_server: PostgresServer, head_template: str) -> Iterator[str]:
    """URL of this test's own database at head, cloned from ``head_template``."""
    with temporary_database(postgres_server, template_dbname=head_template) as url:
        yield url
