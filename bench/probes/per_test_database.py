"""What one test pays for its own database at head, with the rendered gate's own code.

Run from ``backend/`` with the project's interpreter and TEST_DATABASE_URL set:
``python per_test_database.py RUNS WARMUP``. Every variant creates a database
and drops it again, as the gate's fixtures do per test:

- ``empty``: an empty database (the floor);
- ``migrate``: an empty database, then ``alembic upgrade head`` in-process;
- ``clone``: ``CREATE DATABASE ... TEMPLATE`` of a database migrated once;
- ``template``: migrating that template database (once per test session).

The last line printed is JSON: the seconds of each run, per variant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
sys.path.append(str(Path(__file__).resolve().parents[2]))  # bench.timing, after the project

from tests.migration_gate.fixtures import migrate_to_head
from tests.migration_gate.postgres import (
    server_from_url,
    template_database,
    temporary_database,
)

from bench import timing


def main(runs: int, warmup: int) -> int:
    server = server_from_url(os.environ["TEST_DATABASE_URL"])

    def empty() -> None:
        with temporary_database(server):
            pass

    def migrate() -> None:
        with temporary_database(server) as url:
            migrate_to_head(url)

    def template() -> None:
        build = template_database(server, migrate_to_head)
        next(build)
        build.close()  # drops it

    head = template_database(server, migrate_to_head)
    head_name = next(head)

    def clone() -> None:
        with temporary_database(server, template_dbname=head_name):
            pass

    migrate()  # env.py's fileConfig has set up logging; keep the output short
    logging.disable(logging.WARNING)
    variants = {"empty": empty, "clone": clone, "migrate": migrate, "template": template}
    steps: dict[str, timing.Step] = {
        name: (action, None, None) for name, action in variants.items()
    }
    try:
        samples = timing.alternate(steps, runs=runs, warmup=warmup)
    finally:
        head.close()
    print(json.dumps(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
