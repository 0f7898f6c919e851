"""What one test pays for its own database at head, with the rendered gate's own code.

Run from ``backend/`` with the project's interpreter and TEST_DATABASE_URL set:
``python per_test_database.py RUNS WARMUP [NAME=ALEMBIC_INI ...]``. Every
variant creates a database and drops it again, as the gate's fixtures do per
test; all variants take turns, run by run, so a busy spell hits them alike:

- ``empty``: an empty database (the floor);
- ``migrate``: an empty database, then ``alembic upgrade head`` in-process;
- ``clone``: ``CREATE DATABASE ... TEMPLATE`` of a database migrated once;
- ``template``: migrating that template database (once per test session);
- ``migrate_NAME``, ``clone_NAME``: the same for the revisions of another
  ``alembic.ini`` (a copy of the project with another history).

The last line printed is JSON: the seconds of each run, per variant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
sys.path.append(str(Path(__file__).resolve().parents[2]))  # bench.timing, after the project

from alembic import command
from alembic.config import Config
from migration_gate.project import engine_for
from migration_gate.pytest_plugin import migrate_to_head
from migration_gate.servers import (
    PostgresServer,
    server_from_url,
    template_database,
    temporary_database,
)

from bench import timing

Load = Callable[[str], None]


def migrate_with(alembic_ini: Path) -> Load:
    """``migrate_to_head``, for the scripts of another ``alembic.ini``."""

    def load(url: str) -> None:
        config = Config(str(alembic_ini))
        engine = engine_for(url)
        config.attributes["connection"] = engine
        try:
            command.upgrade(config, "head")
        finally:
            engine.dispose()

    return load


@contextmanager
def head_template(server: PostgresServer, load: Load) -> Iterator[str]:
    build = template_database(server, load)
    try:
        yield next(build)
    finally:
        build.close()  # drops it


def variants(server: PostgresServer, stack: ExitStack, **loads: Load) -> dict[str, timing.Step]:
    steps: dict[str, timing.Step] = {}

    def empty() -> None:
        with temporary_database(server):
            pass

    steps["empty"] = (empty, None, None)
    for suffix, load in loads.items():
        name = stack.enter_context(head_template(server, load))

        def clone(name: str = name) -> None:
            with temporary_database(server, template_dbname=name):
                pass

        def migrate(load: Load = load) -> None:
            with temporary_database(server) as url:
                load(url)

        steps["clone" + suffix] = (clone, None, None)
        steps["migrate" + suffix] = (migrate, None, None)

    def template() -> None:
        with head_template(server, migrate_to_head):
            pass

    steps["template"] = (template, None, None)
    return steps


def main(runs: int, warmup: int, others: dict[str, Path]) -> int:
    server = server_from_url(os.environ["TEST_DATABASE_URL"])
    with temporary_database(server) as url:
        migrate_to_head(url)  # env.py's fileConfig has set up logging: keep the output short
    logging.disable(logging.WARNING)
    loads = {"": migrate_to_head} | {f"_{name}": migrate_with(ini) for name, ini in others.items()}
    with ExitStack() as stack:
        samples = timing.alternate(variants(server, stack, **loads), runs=runs, warmup=warmup)
    print(json.dumps(samples))
    return 0


if __name__ == "__main__":
    others = dict(argument.split("=", 1) for argument in sys.argv[3:])
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), {k: Path(v) for k, v in others.items()}))
