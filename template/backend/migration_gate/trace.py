"""The locks a revision takes and the rewrites it makes on tables with rows, measured.

Template-owned. While a revision runs in the gate's climb, inside its own
transaction, Alembic's ``on_version_apply`` callback reads the locks that the
transaction holds (``pg_locks``): a lock is held until the commit, so that is
every lock the revision took in it. A statement in an ``autocommit_block()`` is
a transaction of its own, and its locks are gone when it ends, so each one is
measured as a step (``AutocommitSteps``, on the migration connection's cursor
events), with how long it ran:

- a statement that can run in a transaction block runs in one that the gate
  opens just before it and commits just after reading its locks: the same one
  statement, committed the same, and its locks are exact ("measured");
- one that cannot (``CREATE INDEX CONCURRENTLY``, ``DROP INDEX CONCURRENTLY``,
  ``REINDEX ... CONCURRENTLY``) is watched from a second connection that reads
  its locks over and over while it runs ("sampled"); if it ends before a sample sees it,
  the step shows the lock PostgreSQL documents for it, SHARE UPDATE EXCLUSIVE
  on its table ("documented"). Its time is exact either way.

After the revision, the storage of each table that had rows, and of its
indexes (``relfilenode``), says what it rewrote: a rewrite writes a new file, a
change in the catalog alone does not. On the way down only the locks are read:
they say which tables a downgrade may have changed (``on_rows.py``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from .schema_state import own_connection
from .sql_names import QUALIFIED

# pg_locks' modes, weakest first, as the PostgreSQL docs name them, and what each one blocks.
LOCK_MODES = {
    "AccessShareLock": ("ACCESS SHARE", "blocks only ACCESS EXCLUSIVE"),
    "RowShareLock": ("ROW SHARE", "blocks EXCLUSIVE and ACCESS EXCLUSIVE"),
    "RowExclusiveLock": ("ROW EXCLUSIVE", "row locks: blocks no reads"),
    "ShareUpdateExclusiveLock": ("SHARE UPDATE EXCLUSIVE", "blocks no reads or writes"),
    "ShareLock": ("SHARE", "blocks writes"),
    "ShareRowExclusiveLock": ("SHARE ROW EXCLUSIVE", "blocks writes"),
    "ExclusiveLock": ("EXCLUSIVE", "blocks writes"),
    "AccessExclusiveLock": ("ACCESS EXCLUSIVE", "blocks reads and writes"),
}
STRENGTH = {mode: rank for rank, mode in enumerate(LOCK_MODES)}
HELD_LOCKS = (
    "SELECT relation::bigint, mode FROM pg_locks "
    "WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted"
)
# A statement the gate measures as a step when it runs in an autocommit_block().
STEP = re.compile(
    r"^\s*(ALTER|CREATE|DROP|DO|COMMENT|UPDATE|INSERT|DELETE|TRUNCATE|REINDEX|CLUSTER|LOCK|WITH)\b",
    re.IGNORECASE,
)
# Statements that cannot run in a transaction block, or end one themselves.
OWN_TRANSACTION = re.compile(
    r"\bCONCURRENTLY\b|^\s*(VACUUM|(CREATE|DROP)\s+(DATABASE|TABLESPACE)|ALTER\s+SYSTEM)\b"
    r"|\b(COMMIT|ROLLBACK)\s*(;|$)",
    re.IGNORECASE,
)
# The relation a concurrent index step works on: the table it indexes, or the index it drops
# or rebuilds (whose table the lookup below finds).
CONCURRENT_TARGET = re.compile(
    rf"\bINDEX\s+CONCURRENTLY\b.*?\bON\s+(?:ONLY\s+)?(?P<table>{QUALIFIED})"
    rf"|\b(?:INDEX|TABLE)\s+CONCURRENTLY\s+(?:IF\s+EXISTS\s+)?(?P<name>{QUALIFIED})",
    re.IGNORECASE | re.DOTALL,
)
TABLE_OF = """
SELECT coalesce(i.indrelid, c.oid)::bigint FROM pg_class c
LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.oid = to_regclass(%s)
"""
LOCKS_OF = (
    "SELECT relation::bigint, mode FROM pg_locks "
    "WHERE pid = %s AND locktype = 'relation' AND granted"
)
# What PostgreSQL documents for CREATE/DROP INDEX CONCURRENTLY and REINDEX CONCURRENTLY.
CONCURRENT_MODE = "ShareUpdateExclusiveLock"
SHOWN_STATEMENT = 100  # characters
IDLE = 0  # a connection's transaction status outside a transaction (psycopg 2 and 3)
STORAGE = """
SELECT c.oid::bigint, c.relfilenode::bigint, coalesce(i.indrelid, c.oid)::bigint
FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.oid = ANY(%s::text[]::oid[]) OR i.indrelid = ANY(%s::text[]::oid[])
"""


def strongest(locks: dict[Any, str], rows: Any, wanted: Mapping[int, Any]) -> None:
    """Keep in ``locks`` the strongest mode of each (relation, mode) row whose relation is
    wanted, by ``wanted[relation]``."""
    for relation, mode in rows:
        if relation in wanted:
            key = wanted[relation]
            if STRENGTH.get(mode, -1) > STRENGTH.get(locks.get(key, ""), -1):
                locks[key] = mode


@dataclass
class Step:
    """One statement of an ``autocommit_block()``: its locks on tables with rows, its time."""

    statement: str
    locks: dict[str, str]  # table to its strongest mode
    seconds: float
    how: str  # "measured", "sampled" or "documented"

    def line(self) -> str:
        took = f"{self.seconds * 1000:.0f} ms" if self.seconds >= 0.0005 else "<1 ms"
        if not self.locks:
            return f"{self.statement}: no lock on a table with rows, {took}"
        held = []
        for table, mode in sorted(self.locks.items(), key=lambda item: -STRENGTH[item[1]]):
            name, blocks = LOCK_MODES[mode]
            held.append(f"{name} on {table} ({blocks})")
        return f"{self.statement}: {', '.join(held)}, {took} ({self.how})"


def shown(statement: str) -> str:
    """A statement on one short line; a guarded DO block by the statement it guards."""
    text = " ".join(statement.split())
    if guarded := re.match(r"DO\b.*?\bTHEN\s+(.*?);", text, re.IGNORECASE):
        text = f"{guarded[1]} (guarded)"
    return text if len(text) <= SHOWN_STATEMENT else text[: SHOWN_STATEMENT - 3] + "..."


@dataclass
class Measured:
    """What one revision did to the tables that had rows when it started."""

    locks: dict[str, str] = field(default_factory=dict)  # table to its strongest pg_locks mode
    rewritten: dict[str, int] = field(default_factory=dict)  # table to its indexes rewritten
    reindexed: dict[str, int] = field(default_factory=dict)  # indexes rewritten, table not
    recreated: list[str] = field(default_factory=list)  # dropped and created again
    steps: list[Step] = field(default_factory=list)  # its autocommit_block() statements

    def rewrote(self) -> list[str]:
        return sorted({*self.rewritten, *self.recreated})

    def lines(self) -> list[str]:
        """What a reviewer reads: the locks, the rewrites, or that there were none."""
        found = []
        by_mode: dict[str, list[str]] = {}
        for table, mode in sorted(self.locks.items()):
            by_mode.setdefault(mode, []).append(table)
        for mode in sorted(by_mode, key=lambda mode: -STRENGTH[mode]):
            name, blocks = LOCK_MODES[mode]
            found.append(f"takes {name} on {', '.join(by_mode[mode])} ({blocks})")
        for table, indexes in sorted(self.rewritten.items()):
            found.append(
                f"rewrote {table}" + (f" and {plural(indexes, 'index')}" if indexes else "")
            )
        for table, indexes in sorted(self.reindexed.items()):
            found.append(f"rebuilt {plural(indexes, 'index')} of {table}")
        found += [f"recreated {table}" for table in self.recreated]
        found = found or ["no lock on a table with rows"]
        return found + [f"autocommit step: {step.line()}" for step in self.steps]


def plural(count: int, noun: str) -> str:
    return (
        f"{count} {noun}"
        if count == 1
        else f"{count} {noun}es"
        if noun.endswith("x")
        else (f"{count} {noun}s")
    )


class Trace:
    """Measures one revision at a time: ``start``, the revision runs, ``finish``."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.tables: dict[int, str] = {}
        self.storage: dict[int, tuple[int, int]] = {}
        self.locks: dict[int, str] = {}
        self.steps: list[Step] = []
        self.running = False

    def start(self, tables: Mapping[str, int], storage: bool = True) -> None:
        """Before a step: the tables with rows, by name, with their oids; ``storage`` reads
        their files too (an upgrade's rewrites are measured, a downgrade's are not)."""
        self.tables = {oid: name for name, oid in tables.items()}
        self.storage = self.read_storage() if storage else {}
        self.locks = {}
        self.steps = []
        self.running = True

    def read_storage(self) -> dict[int, tuple[int, int]]:
        oids = [str(oid) for oid in self.tables]  # as text: psycopg 3 sends small ints as int2
        if not oids:
            return {}
        self.cursor.execute(STORAGE, (oids, oids))
        return {oid: (filenode, table) for oid, filenode, table in self.cursor.fetchall()}

    def on_version_apply(self, ctx: Any, **_: Any) -> None:
        """Alembic's callback, inside the revision's transaction: the locks it holds."""
        if not self.running or ctx.connection is None:
            return
        held = ctx.connection.exec_driver_sql(HELD_LOCKS).fetchall()
        strongest(self.locks, held, {oid: oid for oid in self.tables})

    def add_step(self, statement: str, held: list[Any], seconds: float, how: str) -> None:
        """A statement of an ``autocommit_block()`` and the locks it held; they count as the
        revision's too."""
        locks: dict[str, str] = {}
        strongest(locks, held, self.tables)
        strongest(self.locks, held, {oid: oid for oid in self.tables})
        self.steps.append(Step(shown(statement), locks, seconds, how))

    def locked(self) -> Measured:
        """After a step: only the locks it held (a downgrade's rewrites are not reported)."""
        self.running = False
        locks = {self.tables[oid]: mode for oid, mode in self.locks.items()}
        return Measured(locks=locks, steps=self.steps)

    def finish(self, now: Mapping[str, int]) -> Measured:
        """After the revision: ``now`` is which tables exist, by name, with their oids."""
        measured = self.locked()
        after = self.read_storage()
        indexes_of: dict[int, list[tuple[int, int]]] = {}
        for index, (index_filenode, owner) in after.items():
            if index != owner:
                indexes_of.setdefault(owner, []).append((index, index_filenode))
        for oid, (filenode, table) in self.storage.items():
            if oid != table:
                continue
            name = self.tables[oid]
            if oid not in after:
                if now.get(name) is not None:
                    measured.recreated.append(name)
                continue
            rebuilt = [
                index
                for index, index_filenode in indexes_of.get(oid, [])
                if index not in self.storage or self.storage[index][0] != index_filenode
            ]
            if after[oid][0] != filenode:  # its indexes were rebuilt with it, some anew
                measured.rewritten[name] = len(rebuilt)
            elif reindexed := [index for index in rebuilt if index in self.storage]:
                measured.reindexed[name] = len(reindexed)
        return measured


class Sampler(threading.Thread):
    """Reads a backend's relation locks, one query after the other, over a connection of its
    own, from just before its statement starts until it ends (a concurrent index build on the
    gate's rows takes milliseconds)."""

    def __init__(self, connection: Any, pid: int) -> None:
        super().__init__(daemon=True)
        self.connection, self.pid = connection, pid
        self.held: dict[int, str] = {}
        self.done = threading.Event()
        self.sampling = threading.Event()

    def run(self) -> None:
        cursor = self.connection.cursor()
        try:
            while not self.done.is_set():
                cursor.execute(LOCKS_OF, (self.pid,))
                rows = cursor.fetchall()
                strongest(self.held, rows, {relation: relation for relation, _ in rows})
                self.sampling.set()
        finally:
            self.sampling.set()
            cursor.close()

    def begin(self) -> None:
        self.start()
        self.sampling.wait()

    def stop(self) -> list[tuple[int, str]]:
        self.done.set()
        self.join()
        return list(self.held.items())


@dataclass
class Pending:
    """The statement running now: when it started, and how its locks are read."""

    statement: str
    started: float
    sampler: Sampler | None = None
    began: bool = False  # the gate opened a transaction for it
    documented: list[tuple[int, str]] = field(default_factory=list)


class AutocommitSteps:
    """Measures each statement a revision runs in an ``autocommit_block()`` (see the module's
    docstring), through the cursor events of the engine the migrations run on."""

    def __init__(self, engine: Engine, trace: Trace) -> None:
        self.engine, self.trace = engine, trace
        self.pending: Pending | None = None
        self._sampling: Any = None  # the sampler's connection, opened when first needed
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)
        event.listen(engine, "handle_error", self.failed)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self.before)
        event.remove(self.engine, "after_cursor_execute", self.after)
        event.remove(self.engine, "handle_error", self.failed)
        if self._sampling is not None:
            self._sampling.close()
            self._sampling = None

    def before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        dbapi = cursor.connection
        if not (self.trace.running and dbapi.autocommit and STEP.match(statement)):
            return
        pending = Pending(statement, 0.0)
        if OWN_TRANSACTION.search(statement):
            if target := CONCURRENT_TARGET.search(statement):
                self.trace.cursor.execute(TABLE_OF, (target["table"] or target["name"],))
                found = self.trace.cursor.fetchone()
                if found and found[0] is not None:
                    pending.documented = [(found[0], CONCURRENT_MODE)]
            if self._sampling is None:
                self._sampling = own_connection(self.engine)
            pending.sampler = Sampler(self._sampling, side(dbapi, "SELECT pg_backend_pid()")[0][0])
            pending.sampler.begin()
        elif dbapi.info.transaction_status == IDLE:  # else a transaction of the caller's
            side(dbapi, "BEGIN")
            pending.began = True
        self.pending = pending
        pending.started = time.perf_counter()

    def after(self, conn: Any, cursor: Any, *_: Any) -> None:
        pending, self.pending = self.pending, None
        if pending is None:
            return
        seconds = time.perf_counter() - pending.started
        if pending.sampler is None:
            held = side(cursor.connection, HELD_LOCKS)
            if pending.began:
                side(cursor.connection, "COMMIT")
            self.trace.add_step(pending.statement, held, seconds, "measured")
            return
        held = pending.sampler.stop()
        tables = set(self.trace.tables)
        if any(relation in tables for relation, _ in held):
            self.trace.add_step(pending.statement, held, seconds, "sampled")
        else:
            self.trace.add_step(pending.statement, pending.documented, seconds, "documented")

    def failed(self, context: Any) -> None:
        """The statement failed: end the transaction the gate opened for it."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        if pending.sampler is not None:
            pending.sampler.stop()
        elif pending.began and context.cursor is not None:
            side(context.cursor.connection, "ROLLBACK")


def side(dbapi: Any, statement: str) -> list[Any]:
    """Run ``statement`` on a cursor of its own, beside the migration's (whose result stays)."""
    cursor = dbapi.cursor()
    try:
        cursor.execute(statement)
        return cursor.fetchall() if cursor.description else []
    finally:
        cursor.close()
