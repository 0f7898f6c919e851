"""The gate's command line (template-owned), run by the noxfile.

``python -m tests.migration_gate.cli lint-migrations [--all]``: squawk on the
SQL of the revisions added or changed since the base ref (``--all``: every
revision). See ``lint.py``.
"""

from __future__ import annotations

import argparse
import sys

from .lint import lint_migrations


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.migration_gate.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    lint = commands.add_parser("lint-migrations", help="squawk on new revisions' SQL")
    lint.add_argument("--all", action="store_true", help="lint every revision, not only new ones")
    arguments = parser.parse_args()
    return lint_migrations(everything=arguments.all)


if __name__ == "__main__":
    sys.exit(main())
