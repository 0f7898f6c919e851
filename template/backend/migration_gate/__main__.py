"""The gate's command line (template-owned), run by the noxfile from backend/.

``python -m migration_gate lint-migrations [--all]``: squawk on the SQL of the
revisions added or changed since the base ref (``--all``: every revision), and
applied revisions unchanged. See ``lint.py`` and ``applied_revisions.py``.

``python -m migration_gate schema-docs``: rewrite docs/schema.md (see
``schema_docs.py``); alembic.ini runs it after writing each revision.
``python -m migration_gate review [--all]``: the reviewer's summary of the new
revisions (see ``review.py``).

``python -m migration_gate squash REV``: one baseline revision in place of the
history up to REV. See ``squash.py``.
``python -m migration_gate adopt``: one baseline revision from the database in
``ADOPT_DATABASE_URL``, a copy of production. See ``adopt.py``.
``python -m migration_gate dev-db [stop]``: a local PostgreSQL for development,
at head. See ``dev_db.py``.
``python -m migration_gate rehearse``: the new revisions on the copy of production
in ``REHEARSE_DATABASE_URL``, measured. See ``rehearsal.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic.util import CommandError

from .lint import lint_migrations
from .project import skip_garbage_collection_at_exit


def one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def schema_docs(written_revision: str | None) -> int:
    try:
        from .schema_docs import SCHEMA_DOC, write_schema_docs  # imports the models

        written = write_schema_docs()
    except Exception as error:  # a model or revision file that does not load
        print(f"schema-docs: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1
    where = SCHEMA_DOC.relative_to(SCHEMA_DOC.parents[1])
    after = f" with {Path(written_revision).name}" if written_revision else ""
    print(f"schema-docs: {where} {'rewritten' if written else 'is already current'}{after}")
    return 0


def review(everything: bool) -> int:
    try:
        from .review import review  # imports the models

        return review(everything)
    except Exception as error:  # a model or revision file that does not load
        print(f"review: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1


def squash(revision: str) -> int:
    from .servers import NoServerError  # the squash's server and fixtures, not the lint's
    from .squash import squash

    try:
        return squash(revision)
    except (CommandError, NoServerError) as error:
        print(f"squash: {one_line(error)}", file=sys.stderr)
        return 1


def adopt() -> int:
    try:
        from .adopt import adopt  # imports the models
    except Exception as error:  # a model module that does not load
        reason = f"{type(error).__name__}: {one_line(error)}"
        print(f"adopt: the models do not import: {reason}", file=sys.stderr)
        return 1
    try:
        return adopt()
    except CommandError as error:
        print(f"adopt: {one_line(error)}", file=sys.stderr)
        return 1


def rehearse() -> int:
    try:
        from .rehearsal import main  # imports the models' package
    except Exception as error:  # a module of the package that does not load
        print(f"rehearse: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1
    return main()


def main() -> int:
    skip_garbage_collection_at_exit()
    parser = argparse.ArgumentParser(prog="python -m migration_gate")
    commands = parser.add_subparsers(dest="command", required=True)
    lint = commands.add_parser("lint-migrations", help="squawk on new revisions' SQL")
    lint.add_argument("--all", action="store_true", help="lint every revision, not only new ones")
    docs = commands.add_parser("schema-docs", help="rewrite docs/schema.md from models, revisions")
    docs.add_argument(
        "--written", metavar="FILE", help="the revision Alembic just wrote (its post-write hook)"
    )
    summary = commands.add_parser("review", help="the reviewer's summary of new revisions")
    summary.add_argument("--all", action="store_true", help="every revision, not only new ones")
    squash_command = commands.add_parser("squash", help="one baseline revision up to REV")
    squash_command.add_argument("revision", metavar="REV")
    commands.add_parser("adopt", help="one baseline revision from a copy of production")
    dev = commands.add_parser("dev-db", help="start a local database at head, or stop it")
    dev.add_argument("action", nargs="*", metavar="stop")
    commands.add_parser("rehearse", help="the new revisions on a copy of production, measured")
    arguments = parser.parse_args()
    if arguments.command == "schema-docs":
        return schema_docs(arguments.written)
    if arguments.command == "review":
        return review(everything=arguments.all)
    if arguments.command == "squash":
        return squash(arguments.revision)
    if arguments.command == "adopt":
        return adopt()
    if arguments.command == "dev-db":
        from .dev_db import dev_db  # pytest-postgresql's executor, not the lint's imports

        return dev_db(arguments.action)
    if arguments.command == "rehearse":
        return rehearse()
    return lint_migrations(everything=arguments.all)


if __name__ == "__main__":
    sys.exit(main())
