"""The gate's command line (template-owned), run by the noxfile.

``python -m tests.migration_gate.cli lint-migrations [--all]``: squawk on the
SQL of the revisions added or changed since the base ref (``--all``: every
revision), and applied revisions unchanged. See ``lint.py`` and ``history.py``.
``python -m tests.migration_gate.cli squash REV``: one baseline revision in
place of the history up to REV. See ``squash.py``.
"""

from __future__ import annotations

import argparse
import sys

from alembic.util import CommandError

from .lint import lint_migrations


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.migration_gate.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    lint = commands.add_parser("lint-migrations", help="squawk on new revisions' SQL")
    lint.add_argument("--all", action="store_true", help="lint every revision, not only new ones")
    squash_command = commands.add_parser("squash", help="one baseline revision up to REV")
    squash_command.add_argument("revision", metavar="REV")
    arguments = parser.parse_args()
    if arguments.command == "lint-migrations":
        return lint_migrations(everything=arguments.all)
    from .postgres import NoServerError  # the squash's server and fixtures, not the lint's
    from .squash import squash

    try:
        return squash(arguments.revision)
    except (CommandError, NoServerError) as error:
        print(f"squash: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
