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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script

from .applied_revisions import squashes
from .project import PACKAGE
from .revisions import git, where
from .schema_state import Change

PROBE = Path(__file__).with_name("release_probe.py")
ROWS = Path(__file__).with_name("rows.py")
RULE = "breaks-running-release"
RECIPES = "docs/safe-migrations.md"
NOT_NULL_VIOLATION = "23502"
# A constraint a new revision adds that the running release's rows break: the recipe.
CONSTRAINT_RECIPES = {
    "23514": (
        "add-a-not-null-column",
        "add the constraint NOT VALID, and validate it once no "
        "running code writes rows that break it",
    ),
    "23505": (
        "add-a-unique-constraint",
        "add the unique constraint once no running code writes duplicates",
    ),
    "23503": (
        "add-a-foreign-key",
        "add the foreign key once no running code writes rows that point nowhere",
    ),
}


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


def mentions(lines: Iterable[str], table: str, column: str | None) -> bool:
    """Whether schema ``lines`` hold the table (``column`` None) or the column."""
    if column is None:
        return f"table {qualified(table)}" in lines
    return any(line.startswith(f"column {qualified(table)}.{column} ") for line in lines)


@dataclass(frozen=True)
class Blame:
    """Which new revision changed an object: the newest one whose change matches."""

    newest_first: list[tuple[Script, Change]]

    @classmethod
    def of(cls, changes: list[tuple[Script, Change]], new: list[Script]) -> Blame:
        """A squash baseline makes the schema the base already has: it changes nothing."""
        new_ids = {revision.revision for revision in new if not squashes(revision)}
        return cls([(r, change) for r, change in reversed(changes) if r.revision in new_ids])

    def __call__(self, test: Callable[[Change], bool]) -> tuple[Script, Change] | None:
        return next(((r, change) for r, change in self.newest_first if test(change)), None)


def breaks(
    release: OldRelease, changes: list[tuple[Script, Change]], new: list[Script]
) -> Findings:
    """Each failure of the running release, blamed on the new revision that caused it."""
    blame = Blame.of(changes, new)
    findings = Findings()
    for table, found in release.tables.items():
        if "select" not in found:
            continue
        gone: list[str | None] = list(found["missing"])
        if found["select"] and not gone:
            gone = [None]  # the table itself
        for column in gone:
            found_break = selected_gone(release.ref, table, column, blame)
            if isinstance(found_break, Break):
                findings.breaks.append(found_break)
            else:
                findings.notices.append(found_break)
        insert = found.get("insert") or {}
        if insert.get("sqlstate") and (inserted := insert_break(table, insert, blame)):
            findings.breaks.append(inserted)
    return findings


def selected_gone(ref: str, table: str, column: str | None, blame: Blame) -> Break | str:
    """What selecting a table or column that is gone breaks; or, when no new revision
    removed it, the notice that the base maps what its history never created."""
    name = table if column is None else f"{table}.{column}"
    blamed = blame(lambda change: mentions(change.removed, table, column))
    if blamed is None:
        return (
            f"the running release ({ref}) maps {name}, which the history never created: a "
            "model without a revision on the base"
        )
    revision, change = blamed
    kind = "table" if column is None else "column"
    siblings = "table " if column is None else f"column {qualified(table)}."
    renamed = any(line.startswith(siblings) for line in change.added)
    return Break(
        revision,
        f"selects {'from ' if column is None else ''}{name}, which this revision "
        f"{'renames' if renamed else 'drops'}",
        f"{'rename' if renamed else 'drop'}-a-{kind}",
        f"release the model change first, then drop the {'old ' if renamed else ''}{kind} in a "
        "later pull request",
    )


def insert_break(table: str, insert: dict[str, Any], blame: Blame) -> Break | None:
    """What inserting one row of the old columns into the new schema breaks; None when no
    new revision made what refused it (the base's schema refused that row as well)."""
    column, constraint = insert.get("column"), insert.get("constraint")
    if insert["sqlstate"] == NOT_NULL_VIOLATION and column:
        made = blame(
            lambda change: any(
                line.startswith(f"column {qualified(table)}.{column} ") and " not null" in line
                for line in change.added
            )
        )
        return made and Break(
            made[0],
            f"inserts into {table} without {column}, which this revision makes NOT NULL with "
            "no default",
            "add-a-not-null-column",
            "add the column with a server default (or nullable) first, and make it required "
            "once no running code inserts without it",
        )
    if constraint:
        made = blame(
            lambda change: any(
                line.startswith(f"constraint {constraint} ") for line in change.added
            )
        )
        recipe, how = CONSTRAINT_RECIPES.get(insert["sqlstate"], CONSTRAINT_RECIPES["23514"])
    else:
        made = blame(
            lambda change: any(
                line.startswith(f"column {qualified(table)}.{column or ''}")
                for line in change.added
            )
        )
        recipe, how = "change-a-columns-type", "keep the old shape working until the release "
        how += "that stops writing it"
    return made and Break(
        made[0],
        f"inserts into {table}, which the new schema refuses ({insert['message']})",
        recipe,
        how,
    )
