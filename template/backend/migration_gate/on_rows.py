"""The climb on rows: fill the tables, measure each revision, see what each downgrade keeps.

Template-owned. Production has rows, so the gate runs the revisions it checks
on a database that has them: ``MIGRATION_GATE_ROWS`` rows per table (20 by
default; 0 climbs empty tables). The revisions a change adds, the ones
``lint-migrations`` lints, are the ones checked: those already on the base ran
in production long ago, and climb empty tables as before. Where the first
checked revision starts, every table there is gets rows (``rows.py``), as
production has them; each table that a checked revision creates gets rows
right after it. The rows stay as the climb goes on: a column that a revision
adds holds what Postgres gives it, and the next revision sees that. After each
upgrade, the tables it changed get rows that use what it allowed (``room.py``):
longer text, a new enum label, a NULL where NOT NULL went, and so on.

For each checked revision the gate measures the locks it holds on tables with
rows and what it rewrites (``trace.py``), and keeps a copy of every table
whose rows it changed (``data_state.py``). On the way down, each downgrade must
keep what its upgrade did not create, and the rows that use what it allowed;
one that cannot run on those rows cannot run once production has used them. A
revision that rewrites a table with rows, or whose downgrade loses data or
cannot run on what its upgrade allowed, fails unless it accepts
``table-rewrite`` or ``lossy-downgrade`` on the record (``hazards.py``); an
acceptance that no longer fires fails as well.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script
from sqlalchemy import Engine

from .data_state import Copy, Loss, RowKeeper
from .evidence import Satisfied, learn, rehearsed_rules, satisfy
from .hazards import DeclarationError, accepted_hazards, how_to_accept, stale
from .project import ROWS_SETTING
from .revisions import where
from .room import RoomWriter
from .rows import Inserted, fill, masked
from .schema_state import Change, own_connection
from .trace import AutocommitSteps, Measured, Trace
from .violations import Constraint

RECIPES = "docs/safe-migrations.md"
DEDUPLICATE = f'deduplicate first ({RECIPES}, "Add a unique constraint")'
BACKFILL = f'backfill first ({RECIPES}, "Add a NOT NULL column")'
CAST = f'cast with care ({RECIPES}, "Change a column\'s type")'
POINT = f'point every row at a row that exists first ({RECIPES}, "Add a foreign key")'
# What a SQLSTATE says of the rows, and the recipe for it.
DATA_ERRORS = {
    "23505": ("two rows share a value of {columns}", DEDUPLICATE),
    "23P01": ("two rows overlap", DEDUPLICATE),
    "23502": ("a NULL in {column}", BACKFILL),
    "23514": ("a row that breaks {check}", BACKFILL),
    "23503": ("a row whose {columns} points at no row", POINT),
    "22P02": ("text that is not {a_type}{in_column}", CAST),
    "22001": ("text longer than {type} holds{in_column}", CAST),
    "22003": ("a number out of range for {type}{in_column}", CAST),
    "22007": ("a value that is not a valid {type}{in_column}", CAST),
    "22008": ("a date or time out of range{in_column}", CAST),
}
KEY_COLUMNS = re.compile(r"Key \((.*?)\)=")
TYPE_IN_MESSAGE = re.compile(r"for (?:type|enum) ([\w .\"()]+?)(?::|$)|^(\w+) out of range")
ALTERED = re.compile(r'ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?((?:"[^"]+"|[\w.])+)', re.I)
ALTERED_COLUMN = re.compile(r'ALTER\s+COLUMN\s+("[^"]+"|\w+)\s+(?:SET\s+DATA\s+)?TYPE', re.I)


def with_article(type_name: str) -> str:
    if type_name.startswith("enum "):
        return f"a label of {type_name}"
    return ("an " if type_name[:1] in "aeiou" else "a ") + type_name


@dataclass(frozen=True)
class DataError:
    """A step's failure on the gate's rows: the server's message (values masked), what in
    the rows it met, and the recipe for that."""

    table: str | None
    message: str
    data: str
    recipe: str

    def what(self) -> str:
        return f"{self.message} ({self.data})"

    def line(self, step: str) -> str:
        where = f" in {self.table}" if self.table else ""
        return f"{step} failed on the gate's rows{where}: {self.what()}: {self.recipe}"


@dataclass
class Timings:
    """Where the climb's time on rows goes, in seconds."""

    rows: float = 0.0  # reading tables' shapes, making up rows and writing them
    comparisons: float = 0.0  # copies of rows, which tables changed, what a downgrade lost
    trace: float = 0.0  # locks and storage around each revision

    @contextmanager
    def timing(self, part: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, part, getattr(self, part) + time.perf_counter() - started)


def accepted(revision: Script) -> dict[str, str]:
    """The revision's acceptances; a malformed declaration accepts nothing (the lint says why)."""
    try:
        return accepted_hazards(revision)
    except DeclarationError:
        return {}


@dataclass
class OnRows:
    """The rows of one database's climb, and what was measured on them."""

    engine: Engine
    count: int
    checked: set[str]  # the revisions that run on rows, and every one after the first of them
    active: bool = False
    started_at: str | None = None
    copies: dict[str, Copy] = field(default_factory=dict)  # tables with rows: their last copy
    before: dict[str, dict[str, Copy]] = field(default_factory=dict)  # revision: copies before it
    on_rows: list[Script] = field(default_factory=list)  # oldest first
    measured: dict[str, Measured] = field(default_factory=dict)
    shortfalls: list[str] = field(default_factory=list)
    losses: dict[str, list[Loss]] = field(default_factory=dict)
    used: dict[str, dict[str, Copy]] = field(default_factory=dict)  # revision: rows that use it
    wrote: dict[str, list[str]] = field(default_factory=dict)  # revision: what those rows hold
    cannot_run: set[str] = field(default_factory=set)  # downgrades that failed on those rows
    rehearsed: dict[str, set[str]] = field(default_factory=dict)  # revision: rows-* with evidence
    adds: dict[str, list[Constraint]] = field(default_factory=dict)  # what those revisions add
    satisfied: dict[str, Satisfied] = field(default_factory=dict)  # what the gate removed
    timings: Timings = field(default_factory=Timings)
    _keeper: RowKeeper | None = None
    _room: RoomWriter | None = None
    _trace: Trace | None = None
    _steps: AutocommitSteps | None = None
    _connection: Any = None
    _mark: str = ""

    @property
    def enabled(self) -> bool:
        return self.count > 0 and bool(self.checked)

    @property
    def keeper(self) -> RowKeeper:
        if self._keeper is None:
            self._connection = own_connection(self.engine)
            self._keeper = RowKeeper(self._connection)
            self._trace = Trace(self._keeper.cursor)
            self._steps = AutocommitSteps(self.engine, self._trace)
        return self._keeper

    @property
    def trace(self) -> Trace:
        self.keeper  # noqa: B018 - opens the connection the trace reads over
        assert self._trace is not None
        return self._trace

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        if self._connection is not None:
            self._connection.close()
            self._connection = self._keeper = self._trace = None

    def on_version_apply(self, **kwargs: Any) -> None:
        """Alembic's callback inside each revision's transaction (``context.configure``)."""
        if self._trace is not None and self.active:
            with self.timings.timing("trace"):
                self._trace.on_version_apply(**kwargs)

    # --- the climb ---------------------------------------------------------------------------

    def learn_evidence(self, climb_order: list[Script]) -> None:
        """Before the climb: what the checked revisions that accept a ``rows-*`` rule with a
        rehearsal's evidence add (``evidence.py``)."""
        if not self.enabled:
            return
        for revision in climb_order:
            if revision.revision in self.checked and (rules := rehearsed_rules(revision)):
                self.rehearsed[revision.revision] = rules
        if self.rehearsed:
            rehearsed = [rev for rev in climb_order if rev.revision in self.rehearsed]
            self.adds = learn(self.engine, rehearsed)

    def before_upgrade(self, revision: Script, schema: frozenset[str]) -> None:
        if not self.active and self.enabled and revision.revision in self.checked:
            self.start(revision, schema)
        if not self.active:
            return
        if not revision.is_merge_point:
            self.on_rows.append(revision)
        if revision.revision in self.adds:
            self.satisfy_evidence(revision)
        self.before[revision.revision] = dict(self.copies)
        with self.timings.timing("trace"):
            self.trace.start({name: copy.oid for name, copy in self.copies.items()})
        with self.timings.timing("comparisons"):
            self._mark = self.keeper.mark()

    def start(self, revision: Script, schema: frozenset[str]) -> None:
        """Rows into every table there is, as production has them when the change deploys."""
        self.active, self.started_at = True, revision.revision
        self.add_rows(tables_in(schema))

    def satisfy_evidence(self, revision: Script) -> None:
        """Remove the rows that violate what the revision's evidence says production holds."""
        keeper = self.keeper
        with self.timings.timing("rows"):
            self.satisfied[revision.revision] = satisfy(
                keeper.cursor,
                revision,
                self.rehearsed[revision.revision],
                self.adds[revision.revision],
            )
        with self.timings.timing("comparisons"):
            self.copies.update(keeper.copy(keeper.existing(self.copies)))

    def evidence_problems(self) -> list[str]:
        """Accepted ``rows-*`` rules that the gate's rows would not have violated anyway."""
        return [line for done in self.satisfied.values() for line in done.stale]

    def add_rows(self, qualified: list[str]) -> None:
        keeper = self.keeper
        with self.timings.timing("rows"):
            names = list(keeper.existing(qualified))
            written: list[Inserted] = fill(keeper.cursor, names, self.count)
        self.shortfalls += [line for item in written if (line := item.shortfall())]
        with self.timings.timing("comparisons"):
            self.copies.update(keeper.copy(item.table for item in written if item.written))

    def after_upgrade(self, revision: Script, change: Change) -> None:
        if not self.active:
            return
        keeper = self.keeper
        with self.timings.timing("comparisons"):
            existing = keeper.existing(self.copies)
        with self.timings.timing("trace"):
            measured = self.measured[revision.revision] = self.trace.finish(existing)
        with self.timings.timing("comparisons"):
            changed = keeper.changed(self.touched(revision, measured), self._mark)
            for table in changed - set(existing):
                del self.copies[table]
            self.copies.update(keeper.copy(changed & set(existing)))
        self.add_rows(sorted(tables_in(change.added)))
        self.use_room(revision, change)

    def use_room(self, revision: Script, change: Change) -> None:
        """Rows that use what the upgrade allowed (``room.py``), as production will write."""
        keeper = self.keeper
        if self._room is None:
            self._room = RoomWriter(keeper.cursor, self.count)
        with self.timings.timing("rows"):
            mark = keeper.mark()
            used = self._room.use(change, {name: copy.oid for name, copy in self.copies.items()})
        notes = [note for item in used for note in item.notes]
        self.shortfalls += [note for note in notes if note not in self.shortfalls]
        written = [item.table for item in used if item.wrote]
        if not written:
            return
        self.wrote[revision.revision] = [line for item in used for line in item.wrote]
        with self.timings.timing("comparisons"):
            self.used[revision.revision] = keeper.copy(written, since=mark)
            self.copies.update(keeper.copy(written))

    def rewrite_problems(self) -> list[str]:
        """A rewrite of a table with rows that the revision does not accept, or an accepted
        ``table-rewrite`` that nothing fired."""
        problems = []
        for revision in self.on_rows:
            rewrote = self.measured.get(revision.revision, Measured()).rewrote()
            accepts = "table-rewrite" in accepted(revision)
            if rewrote and not accepts:
                problems.append(
                    f"{where(revision)}: rewrote {', '.join(rewrote)}, which held rows, "
                    "under ACCESS EXCLUSIVE: every read and write waits while it copies the "
                    f"table; make the change without a rewrite ({RECIPES}), or accept it on the "
                    f"record: {how_to_accept('table-rewrite')}"
                )
            elif accepts and not rewrote:
                problems.append(
                    stale(where(revision), "table-rewrite", "it rewrote no table with rows")
                )
        return problems

    # --- the way down ------------------------------------------------------------------------

    def touched(self, revision: Script, measured: Measured) -> list[Copy]:
        """The tables whose rows the step may have changed: those it locked (a change of a
        row or a column holds a lock until the commit), or all when it commits on its own."""
        if "autocommit_block" in Path(revision.path).read_text():
            return list(self.copies.values())
        return [self.copies[table] for table in measured.locks if table in self.copies]

    def before_downgrade(self, revision: Script) -> None:
        if self.active and revision.revision in self.before:
            with self.timings.timing("trace"):
                tables = {name: copy.oid for name, copy in self.copies.items()}
                self.trace.start(tables, storage=False)
            with self.timings.timing("comparisons"):
                self._mark = self.keeper.mark()

    def after_downgrade(self, revision: Script) -> Loss | None:
        """What the downgrade lost that it did not create (None when nothing, or accepted)."""
        before = self.before.get(revision.revision)
        if not self.active or before is None:
            return None
        keeper = self.keeper
        with self.timings.timing("trace"):
            locked = self.trace.locked()
        with self.timings.timing("comparisons"):
            existing = keeper.existing({*self.copies, *before})
            changed = keeper.changed(self.touched(revision, locked), self._mark)
            changed |= {table for table in before if table not in self.copies}
            now = keeper.copy(changed & set(existing))
            used = self.used.get(revision.revision, {})
            losses = [
                loss
                for table, copy in now.items()
                if table in before and table in self.copies
                and (loss := keeper.losses(before[table], self.copies[table], copy,
                                           used.get(table)))
            ]  # fmt: skip
            for table in changed - set(existing):
                self.copies.pop(table, None)
            self.copies.update(now)
        if revision.revision == self.started_at:
            self.finish()
        if not losses:
            return None
        self.losses[revision.revision] = losses
        if "lossy-downgrade" in accepted(revision):
            return None
        return losses[0]

    def finish(self) -> None:
        """Below the first checked revision the rows go: older revisions climbed empty tables."""
        tables = list(self.keeper.existing(self.copies))
        if tables:
            self.keeper.cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        self.copies.clear()
        self.active = False

    def loss_problem(self, revision: Script, loss: Loss) -> str:
        return (
            f"{where(revision)}: its downgrade lost data it did not create, in "
            f"{loss.describe()}{self.after_upgrade_wrote(revision)}; keep the data (or leave "
            f"values the upgrade changed), or accept it on the record: "
            f"{how_to_accept('lossy-downgrade')}"
        )

    def after_upgrade_wrote(self, revision: Script) -> str:
        wrote = self.wrote.get(revision.revision)
        return f" (after the upgrade the gate wrote {', '.join(wrote)})" if wrote else ""

    def take_back_room(self, revision: Script) -> bool:
        """Delete the rows written to use what the upgrade allowed, so that its downgrade
        runs again without them; False when there are none, or they cannot go."""
        used = self.used.pop(revision.revision, None)
        if not used or not self.active:
            return False
        keeper = self.keeper
        try:
            for copy in used.values():
                keeper.delete(copy)
        except Exception:  # rows written later point at them: the downgrade fails as it did
            return False
        self.copies.update(keeper.copy(keeper.existing(used)))
        return True

    def cannot_run_problem(self, revision: Script, failure: str) -> str | None:
        """The downgrade failed on the rows that use what its upgrade allowed, and ran
        without them: one line, or None when the revision accepts ``lossy-downgrade``."""
        self.cannot_run.add(revision.revision)
        if "lossy-downgrade" in accepted(revision):
            return None
        return (
            f"{where(revision)}: its downgrade cannot run once production has used what the "
            f"upgrade allowed: after the upgrade the gate wrote "
            f"{', '.join(self.wrote.get(revision.revision, []))}, and the downgrade failed on "
            f"them ({failure}); make the downgrade keep such rows, or accept on the record that "
            f"this revision is not reversible after use: {how_to_accept('lossy-downgrade')}"
        )

    def stale_losses(self) -> list[str]:
        """Accepted ``lossy-downgrade`` where the downgrade lost nothing (after a whole descent)."""
        return [
            stale(
                where(revision), "lossy-downgrade", "its downgrade lost nothing on the gate's rows"
            )
            for revision in self.on_rows
            if "lossy-downgrade" in accepted(revision)
            and revision.revision not in self.losses
            and revision.revision not in self.cannot_run
        ]

    # --- what it says ------------------------------------------------------------------------

    def data_error(self, error: BaseException) -> DataError | None:
        """What a step failed on in the rows, or None when the rows are not why."""
        if not self.active:
            return None
        found = database_error(error)
        if found is None:
            return None
        sqlstate, diag, statement = found
        if sqlstate not in DATA_ERRORS:
            return None
        what, recipe = DATA_ERRORS[sqlstate]
        primary = getattr(diag, "message_primary", None) or ""
        detail = getattr(diag, "message_detail", None) or ""
        table = getattr(diag, "table_name", None) or altered_table(statement)
        column = getattr(diag, "column_name", None) or altered_column(statement)
        typed = TYPE_IN_MESSAGE.search(primary)
        type_name = next((name for name in typed.groups() if name), "") if typed else ""
        if "for enum" in primary:
            type_name = f"enum {type_name}"
        data = what.format(
            columns=", ".join(KEY_COLUMNS.findall(detail)) or column or "its key",
            column=column or "a column",
            check=self.check_definition(getattr(diag, "constraint_name", None), table),
            type=type_name or "the new type",
            a_type=with_article(type_name) if type_name else "of the new type",
            in_column=f" in {column}" if column else "",
        )
        message = masked(primary) if sqlstate.startswith("22") else primary  # values, quoted
        return DataError(table, message, data, recipe)

    def check_definition(self, constraint: str | None, table: str | None) -> str:
        if not constraint:
            return "a CHECK"
        try:
            self.keeper.cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s "
                "AND (%s::text IS NULL OR conrelid = to_regclass(%s))",
                (constraint, table, table),
            )
            found = self.keeper.cursor.fetchone()
        except Exception:
            found = None
        return found[0].removesuffix(" NOT VALID") if found else constraint

    def report(self) -> list[str]:
        """What the gate's output shows: each checked revision's locks and rewrites."""
        if self.count == 0:
            return [f"no rows: {ROWS_SETTING}=0, the revisions climbed empty tables"]
        if not self.on_rows:
            return ["no rows: no revision is new since the base, so none was checked on rows"]
        lines = [f"{len(self.on_rows)} revision(s) ran on {self.count} rows per table:"]
        for revision in self.on_rows:
            measured = self.measured.get(revision.revision)
            if measured is not None:
                wrote = [f"wrote {line}" for line in self.wrote.get(revision.revision, [])]
                satisfied = self.satisfied.get(revision.revision, Satisfied()).removed
                parts = [f"before it {line}" for line in satisfied] + measured.lines() + wrote
                lines.append(f"  {where(revision)}: {'; '.join(parts)}")
        lines += [f"  {line}" for line in self.shortfalls]
        for revision in self.on_rows:
            for loss in self.losses.get(revision.revision, []):
                reason = accepted(revision).get("lossy-downgrade")
                if reason:
                    lines.append(
                        f"  {where(revision)}: its downgrade lost data in {loss.describe()} "
                        f"(accepted lossy-downgrade: {reason})"
                    )
            if revision.revision in self.cannot_run and (
                reason := accepted(revision).get("lossy-downgrade")
            ):
                lines.append(
                    f"  {where(revision)}: its downgrade cannot run once production has used "
                    f"what the upgrade allowed (accepted lossy-downgrade: {reason})"
                )
        return lines


def tables_in(lines: frozenset[str]) -> list[str]:
    """The tables that schema lines name, as SQL names them (``"public"."user"``)."""
    found = []
    for line in lines:
        if line.startswith("table "):
            schema, _, name = line.removeprefix("table ").partition(".")
            found.append(f'"{schema.replace(chr(34), chr(34) * 2)}".'
                         f'"{name.replace(chr(34), chr(34) * 2)}"')  # fmt: skip
    return found


def database_error(error: BaseException) -> tuple[str, Any, str] | None:
    """The SQLSTATE, diagnostics and statement of the database error behind ``error``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        original = getattr(current, "orig", None) or current
        sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if sqlstate:
            statement = getattr(current, "statement", None) or ""
            return sqlstate, getattr(original, "diag", None), str(statement)
        current = current.__cause__ or current.__context__
    return None


def altered_table(statement: str) -> str | None:
    found = ALTERED.search(statement)
    return found.group(1) if found else None


def altered_column(statement: str) -> str | None:
    """The column whose type a statement changes, when it changes one."""
    found = ALTERED_COLUMN.findall(statement)
    return found[0].strip('"') if len(found) == 1 else None
