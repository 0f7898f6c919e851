"""The climb through the history, and the way back down (template-owned).

One database climbs the whole history in a single Alembic run, and its schema
is read after each upgrade. Then it goes back down in one run, and after each
downgrade the schema must be exactly what it was before that revision's
upgrade; at base, that is empty. So each revision runs twice, as the bare work
does. The revisions the gate checks run on rows (``on_rows.py``): their
tables hold rows, and each downgrade must keep what its upgrade did not
create. ``checks.py`` runs these as the gate's tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import RevisionStep
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine

from .on_rows import OnRows
from .project import engine_for, project_config, rows_per_table
from .revisions import select_revisions, where
from .schema_state import Change, SchemaReader, not_undone

# Yields (revision, is_upgrade) steps; reads the schema after each with the reader.
Steps = Callable[[SchemaReader], Iterator[tuple[Script, bool]]]


class StepFailed(Exception):
    """A revision failed or did not undo itself; the message is one line that names it.

    ``on_rows`` says what in the gate's rows the step failed on, when that is why.
    """

    def __init__(self, message: str, revision: Script | None = None, on_rows: str = "") -> None:
        super().__init__(message)
        self.revision = revision
        self.on_rows = on_rows


@dataclass
class HistoryDatabase:
    """A database the gate climbs: what each upgrade changed, the schema at head, the rows."""

    engine: Engine
    script: ScriptDirectory
    rows: OnRows
    changes: list[tuple[Script, Change]] = field(default_factory=list)
    schema_at_head: frozenset[str] | None = None  # None until the climb gets to head
    seconds: float = 0.0  # spent climbing and descending
    attempted: bool = False  # whether the gate's tests climbed it yet
    failure: StepFailed | None = None  # what stopped that climb

    @classmethod
    def on(cls, url: str, everything: bool = False) -> HistoryDatabase:
        """A database to climb; the revisions ``lint-migrations`` selects run on rows."""
        script = ScriptDirectory.from_config(project_config())
        engine = engine_for(url)
        count = rows_per_table()
        checked = set()
        if count:
            selected = {revision.revision for revision in select_revisions(script, everything)
                        .revisions}  # fmt: skip
            checked = checked_revisions(script, selected)
        return cls(engine, script, OnRows(engine, count, checked))

    def close(self) -> None:
        self.rows.close()
        self.engine.dispose()


def checked_revisions(script: ScriptDirectory, selected: set[str]) -> set[str]:
    """The selected revisions and every one the climb takes after the first of them."""
    climb_order = [revision.revision for revision in oldest_first(script)]
    first = next((index for index, rev in enumerate(climb_order) if rev in selected), None)
    return set() if first is None else set(climb_order[first:])


def oldest_first(script: ScriptDirectory) -> list[Script]:
    """Every revision, each after the ones it depends on."""
    return list(reversed(list(script.walk_revisions())))


def run_steps(history: HistoryDatabase, steps: Steps) -> None:
    """Take the steps in one Alembic run through env.py.

    A failure raises ``StepFailed`` with one line that names the revision, its
    file and the step.
    """
    config = project_config(history.engine)
    config.attributes["on_version_apply"] = history.rows.on_version_apply
    script = history.script
    reader = SchemaReader(history.engine)
    at: list[Any] = [None, "env.py"]

    def migrations(heads: Any, context: Any) -> Iterator[RevisionStep]:
        for revision, is_upgrade in steps(reader):
            at[:] = [revision, "upgrade" if is_upgrade else "downgrade"]
            yield RevisionStep(script.revision_map, revision, is_upgrade)

    started = time.perf_counter()
    try:
        with EnvironmentContext(config, script, fn=migrations):
            script.run_env()
    except StepFailed:
        raise
    except Exception as error:
        revision, step = at
        if found := history.rows.data_error(error):
            line = f"{where(revision)}: {found.line(step)}"
            raise StepFailed(line, revision, found.what()) from None
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        raise StepFailed(
            f"{where(revision)}: {step} failed: {reason[0] if reason else error!r}"
        ) from None
    finally:
        reader.close()
        history.seconds += time.perf_counter() - started


def climb(history: HistoryDatabase) -> None:
    """Upgrade from empty to head, one revision at a time, noting what each one changed."""

    climb_order = oldest_first(history.script)
    started = time.perf_counter()
    history.rows.learn_evidence(climb_order)
    history.seconds += time.perf_counter() - started

    def upgrades(reader: SchemaReader) -> Iterator[tuple[Script, bool]]:
        before = reader.lines()
        for revision in climb_order:
            history.rows.before_upgrade(revision, before)
            yield revision, True
            after = reader.lines()
            change = Change.between(before, after)
            history.changes.append((revision, change))
            history.rows.after_upgrade(revision, change)
            before = after
        history.schema_at_head = before

    run_steps(history, upgrades)


@dataclass
class Descent:
    """Where the way down is: the next step, the schema it starts from, and the downgrade run
    again without the rows that use its upgrade's allowance (with what it failed on)."""

    steps: list[tuple[Script, Change]]
    schema: frozenset[str]
    step: int = 0
    retried: tuple[Script, str] | None = None


def descend(history: HistoryDatabase) -> None:
    """Downgrade from head to base; each downgrade must bring back the schema before its upgrade.

    A downgrade that fails on the rows written to use what its upgrade allowed
    runs again without them: when it then passes, it cannot run once production
    has used the allowance (``on_rows.py`` says whether the revision accepts that).
    """
    at_head = history.schema_at_head
    assert at_head is not None, "climb the history first"
    history.schema_at_head = None  # whatever happens next, it is not at head any more
    descent = Descent(list(reversed(history.changes)), at_head)

    def downgrades(reader: SchemaReader) -> Iterator[tuple[Script, bool]]:
        for index in range(descent.step, len(descent.steps)):
            revision, change = descent.steps[index]
            descent.step = index
            history.rows.before_downgrade(revision)
            yield revision, False
            found, expected = reader.lines(), change.undone(descent.schema)
            if found != expected:
                raise StepFailed(
                    f"{where(revision)}: its downgrade did not undo its upgrade: "
                    f"{not_undone(expected, found)}"
                )
            if loss := history.rows.after_downgrade(revision):
                raise StepFailed(history.rows.loss_problem(revision, loss))
            if descent.retried and descent.retried[0] is revision:
                if problem := history.rows.cannot_run_problem(revision, descent.retried[1]):
                    raise StepFailed(problem)
                descent.retried = None
            descent.schema = found

    while True:
        try:
            run_steps(history, downgrades)
            break
        except StepFailed as failure:
            if not retry_without_room(history, descent, failure):
                raise
    if stale := history.rows.stale_losses():
        raise StepFailed("; ".join(stale))


def retry_without_room(history: HistoryDatabase, descent: Descent, failure: StepFailed) -> bool:
    """Whether the downgrade that failed on the rows runs again, without the rows that use
    what its upgrade allowed (once, and only when there are such rows)."""
    revision = failure.revision
    if (not failure.on_rows or revision is None or descent.retried is not None
            or revision is not descent.steps[descent.step][0]
            or not history.rows.take_back_room(revision)):  # fmt: skip
        return False
    descent.retried = (revision, failure.on_rows)
    return True
