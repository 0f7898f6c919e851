"""The gate's command line (template-owned), run by the noxfile.

``python -m tests.migration_gate.cli lint-migrations [--all]``: squawk on the
SQL of the revisions added or changed since the base ref (``--all``: every
revision). See ``lint.py``.

``python -m tests.migration_gate.cli schema-docs``: rewrite docs/schema.md
(see ``schema_docs.py``). ``python -m tests.migration_gate.cli review [--all]``:
the reviewer's summary of the new revisions (see ``review.py``).
"""

from __future__ import annotations

import argparse
import sys

from alembic.util import CommandError

from .lint import lint_migrations


def schema_docs() -> int:
    from .schema_docs import SCHEMA_DOC, write_schema_docs  # imports the models

    try:
        written = write_schema_docs()
    except CommandError as error:
        print(f"schema-docs: {error}", file=sys.stderr)
        return 1
    where = SCHEMA_DOC.relative_to(SCHEMA_DOC.parents[1])
    print(f"schema-docs: {where} {'rewritten' if written else 'is already current'}")
    return 0


def review(everything: bool) -> int:
    from .review import review  # imports the models

    return review(everything)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.migration_gate.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    lint = commands.add_parser("lint-migrations", help="squawk on new revisions' SQL")
    lint.add_argument("--all", action="store_true", help="lint every revision, not only new ones")
    commands.add_parser("schema-docs", help="rewrite docs/schema.md from the models and revisions")
    summary = commands.add_parser("review", help="the reviewer's summary of new revisions")
    summary.add_argument("--all", action="store_true", help="every revision, not only new ones")
    arguments = parser.parse_args()
    if arguments.command == "schema-docs":
        return schema_docs()
    if arguments.command == "review":
        return review(everything=arguments.all)
    return lint_migrations(everything=arguments.all)


if __name__ == "__main__":
    sys.exit(main())
