"""The gate's two non-pytest checks (template-owned), run by the noxfile.

``python -m tests.migration_gate.cli check``: migrate a scratch database to head,
then ``alembic check`` it (the models must match the migrations).
``python -m tests.migration_gate.cli lint-migrations``: write each revision's SQL
offline and lint it with squawk, one revision per file so no hazard hides.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from .postgres import NoServerError, session_server, temporary_database

BACKEND = Path(__file__).resolve().parents[2]
ALEMBIC = [sys.executable, "-m", "alembic"]


def run(command: list[str], **env: str) -> int:
    print("$", " ".join(command[2:] if command[:2] == ALEMBIC[:2] else command), flush=True)
    return subprocess.run(command, cwd=BACKEND, env={**os.environ, **env}).returncode


def check() -> int:
    try:
        with session_server() as server, temporary_database(server) as url:
            for args in (["upgrade", "head"], ["check"]):
                if code := run([*ALEMBIC, *args], DATABASE_URL=url, DATABASE_URL_UNPOOLED=url):
                    return code
    except NoServerError as error:
        print(f"check: {error}", file=sys.stderr)
        return 4
    return 0


def revision_ranges() -> list[tuple[str, str]]:
    """``(range, revision)`` for every single-parent revision, oldest first."""
    script = ScriptDirectory.from_config(Config(str(BACKEND / "alembic.ini")))
    ranges = []
    for revision in reversed(list(script.walk_revisions())):
        if isinstance(revision.down_revision, tuple):
            continue  # a merge point: its parents are linted on their own
        start = revision.down_revision or "base"
        ranges.append((f"{start}:{revision.revision}", revision.revision))
    return ranges


def lint_migrations() -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="lint-migrations-") as tmp:
        for span, revision in revision_ranges():
            sql_file = Path(tmp) / f"{revision}.sql"
            with sql_file.open("w") as out:
                result = subprocess.run(
                    [*ALEMBIC, "upgrade", span, "--sql"],
                    cwd=BACKEND,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            if result.returncode:
                print(f"{revision}: cannot render its SQL:\n{result.stderr}", file=sys.stderr)
                failures += 1
                continue
            print(f"$ squawk {revision}.sql", flush=True)
            failures += (
                subprocess.run(
                    ["squawk", "--config", str(BACKEND / ".squawk.toml"), str(sql_file)],
                    cwd=BACKEND,
                ).returncode
                != 0
            )
    if failures:
        print(f"lint-migrations: {failures} revision(s) have lock hazards", file=sys.stderr)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.migration_gate.cli")
    parser.add_argument("command", choices=["check", "lint-migrations"])
    command = parser.parse_args().command
    return check() if command == "check" else lint_migrations()


if __name__ == "__main__":
    sys.exit(main())
