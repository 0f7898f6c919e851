"""The release that runs now, against the schema the new revisions make (template-owned).

During a deploy the running release serves traffic on the migrated schema
before the new code replaces it, so a revision is safe only if the base ref's
code still works there. ``old_release`` exports the base ref's package into a
temporary folder and runs ``release_probe.py`` on it in a process of its own:
it lists the tables and columns the old models map and, given a database,
runs what that code runs (a SELECT of every mapped column, an INSERT of one
generated row). ``breaks`` names, for each failure, the new revision that
caused it, what the running release will do, and the recipe that avoids it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script

from .project import PACKAGE
from .revisions import git, where
from .schema_state import Change

PROBE = Path(__file__).with_name("release_probe.py")
ROWS = Path(__file__).with_name("rows.py")
RULE = "breaks-running-release"
RECIPES = "docs/safe-migrations.md"
NOT_NULL_VIOLATION = "23502"


class ReleaseUnavailable(Exception):
    """The base ref's models cannot be loaded; the message is one line that says why."""


@dataclass(frozen=True)
class OldRelease:
    """The base ref's tables (as SQLAlchemy names them) and what running its code found."""

    ref: str
    tables: dict[str, dict[str, Any]]

    def maps(self, table: str, column: str | None = None) -> bool:
        mapped = self.tables.get(table)
        return mapped is not None and (column is None or column in mapped["columns"])


@dataclass
class Break:
    """One thing the running release does that the new schema refuses."""

    revision: Script | None  # the new revision that caused it, when one did
    does: str  # "selects user.nickname, which this revision drops"
    recipe: str  # the anchor in docs/safe-migrations.md
    how: str  # what to do instead

    def line(self, ref: str) -> str:
        blamed = where(self.revision) if self.revision else "the new revisions"
        return (
            f"{blamed}: the running release ({ref}) {self.does}: {self.how} "
            f"({RECIPES}#{self.recipe}); or accept {RULE} on the record"
        )


@dataclass
class Findings:
    breaks: list[Break] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # models of the base with no revision


def export_package(ref: str, into: Path) -> Path:
    """The base ref's ``backend/<package>/`` in ``into``; returns the backend folder."""
    top = git("rev-parse", "--show-toplevel").stdout.strip()
    prefix = git("rev-parse", "--show-prefix").stdout.strip()
    archived = subprocess.run(
        ["git", "archive", "--format=tar", f"{ref}:{prefix}", PACKAGE],
        cwd=top,
        capture_output=True,
        check=False,
    )
    if archived.returncode != 0:
        reason = archived.stderr.decode(errors="replace").strip().splitlines()
        raise ReleaseUnavailable(
            f"{ref} has no {PACKAGE}/ to load: {reason[0] if reason else 'git archive failed'}"
        )
    with tarfile.open(fileobj=io.BytesIO(archived.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


def old_release(ref: str, database_url: str | None = None) -> OldRelease:
    """What the base ref's models map, and (with a database) what its code runs into."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if database_url:
        environment["RELEASE_PROBE_URL"] = database_url
    with tempfile.TemporaryDirectory(prefix="running-release-") as tmp:
        checkout = export_package(ref, Path(tmp))
        probed = subprocess.run(
            [sys.executable, str(PROBE), PACKAGE, str(ROWS)],
            cwd=checkout,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        found = json.loads(probed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        reason = (probed.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReleaseUnavailable(f"the models of {ref} could not be loaded: {reason}") from None
    if "error" in found:
        raise ReleaseUnavailable(f"the models of {ref} do not import here: {found['error']}")
    return OldRelease(ref, found["tables"])


def qualified(table: str) -> str:
    """``user`` as the gate's schema lines name it: ``public.user``."""
    return table if "." in table else f"public.{table}"


def column_lines(lines: Iterable[str], table: str, column: str) -> list[str]:
    return [line for line in lines if line.startswith(f"column {qualified(table)}.{column} ")]


def table_line(table: str) -> str:
    return f"table {qualified(table)}"


def renames(change: Change, table: str) -> bool:
    """The revision removed a column of ``table`` and added another: a rename."""
    prefix = f"column {qualified(table)}."
    return any(line.startswith(prefix) for line in change.added)


def breaks(
    release: OldRelease, changes: list[tuple[Script, Change]], new: list[Script]
) -> Findings:
    """Each failure of the running release, blamed on the new revision that caused it."""
    new_ids = {revision.revision for revision in new}
    newest_first = [(r, change) for r, change in reversed(changes) if r.revision in new_ids]
    findings = Findings()

    def blame(test: Any) -> Script | None:
        return next((revision for revision, change in newest_first if test(change)), None)

    for table, found in release.tables.items():
        if "select" not in found:
            continue
        if found["select"] and not found["missing"]:
            gone = blame(lambda change, table=table: table_line(table) in change.removed)
            if gone is None:
                findings.notices.append(
                    f"the running release ({release.ref}) maps table {table}, which the history "
                    "never created: a model without a revision on the base"
                )
                continue
            kind = "renames" if renames_table(gone, changes, table) else "drops"
            findings.breaks.append(
                Break(
                    gone,
                    f"selects from {table}, which this revision {kind}",
                    "rename-a-table" if kind == "renames" else "drop-a-table",
                    "release the model change first, then change the table in a later pull request",
                )
            )
            continue
        for column in found["missing"]:
            gone = blame(
                lambda change, table=table, column=column: column_lines(
                    change.removed, table, column
                )
            )
            if gone is None:
                findings.notices.append(
                    f"the running release ({release.ref}) maps {table}.{column}, which the "
                    "history never created: a model without a revision on the base"
                )
                continue
            renamed = renames(change_of(changes, gone), table)
            findings.breaks.append(
                Break(
                    gone,
                    f"selects {table}.{column}, which this revision "
                    f"{'renames' if renamed else 'drops'}",
                    "rename-a-column" if renamed else "drop-a-column",
                    "release the model change first, then change the column in a later pull "
                    "request",
                )
            )
        insert = found.get("insert") or {}
        if insert.get("sqlstate"):
            findings.breaks.append(insert_break(table, insert, blame))
    return findings


def insert_break(table: str, insert: dict[str, Any], blame: Any) -> Break:
    column = insert.get("column")
    if insert["sqlstate"] == NOT_NULL_VIOLATION and column:
        made = blame(
            lambda change: any(
                " not null" in line for line in column_lines(change.added, table, column)
            )
        )
        return Break(
            made,
            f"inserts into {table} without {column}, which this revision makes NOT NULL with "
            "no default",
            "add-a-not-null-column",
            "add the column with a server default (or nullable) first, and make it required "
            "once no running code inserts without it",
        )
    made = blame(lambda change: bool(column and column_lines(change.added, table, column)))
    subject = f"{table}.{column}" if column else table
    return Break(
        made,
        f"inserts into {table}, which the new schema refuses ({insert['message']}; {subject})",
        "change-a-columns-type",
        "keep the old shape working until the release that stops writing it",
    )


def change_of(changes: list[tuple[Script, Change]], revision: Script) -> Change:
    return next(change for each, change in changes if each is revision)


def renames_table(revision: Script, changes: list[tuple[Script, Change]], table: str) -> bool:
    return any(line.startswith("table ") for line in change_of(changes, revision).added)
