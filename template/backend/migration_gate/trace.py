"""The locks a revision takes and the rewrites it makes on tables with rows, measured.

Template-owned. While a revision runs in the gate's climb, inside its own
transaction, Alembic's ``on_version_apply`` callback reads the locks that the
transaction holds (``pg_locks``): a lock is held until the commit, so that is
every lock the revision took, except those of statements it ran in an
``autocommit_block()`` (which commits them one by one). After the revision, the
storage of each table that had rows, and of its indexes (``relfilenode``),
says what it rewrote: a rewrite writes a new file, a change in the catalog
alone does not. On the way down only the locks are read: they say which tables
a downgrade may have changed (``on_rows.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
STORAGE = """
SELECT c.oid::bigint, c.relfilenode::bigint, coalesce(i.indrelid, c.oid)::bigint
FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.oid = ANY(%s::text[]::oid[]) OR i.indrelid = ANY(%s::text[]::oid[])
"""


@dataclass
class Measured:
    """What one revision did to the tables that had rows when it started."""

    locks: dict[str, str] = field(default_factory=dict)  # table to its strongest pg_locks mode
    rewritten: dict[str, int] = field(default_factory=dict)  # table to its indexes rewritten
    reindexed: dict[str, int] = field(default_factory=dict)  # indexes rewritten, table not
    recreated: list[str] = field(default_factory=list)  # dropped and created again

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
        return found or ["no lock on a table with rows"]


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
        self.running = False

    def start(self, tables: Mapping[str, int], storage: bool = True) -> None:
        """Before a step: the tables with rows, by name, with their oids; ``storage`` reads
        their files too (an upgrade's rewrites are measured, a downgrade's are not)."""
        self.tables = {oid: name for name, oid in tables.items()}
        self.storage = self.read_storage() if storage else {}
        self.locks = {}
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
        for relation, mode in ctx.connection.exec_driver_sql(HELD_LOCKS).fetchall():
            if relation in self.tables and STRENGTH.get(mode, -1) > STRENGTH.get(
                self.locks.get(relation, ""), -1
            ):
                self.locks[relation] = mode

    def locked(self) -> Measured:
        """After a step: only the locks it held (a downgrade's rewrites are not reported)."""
        self.running = False
        return Measured(locks={self.tables[oid]: mode for oid, mode in self.locks.items()})

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
