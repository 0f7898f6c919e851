"""The constraints a revision adds, read from the catalogs, and the existing rows that violate
each one, counted (template-owned; the rehearsal's, ``rehearsal.py``).

What a revision adds is learnt without parsing its SQL: it runs on a copy of
the schema alone (no rows), and the catalogs before and after it say which
unique indexes, NOT NULL columns, foreign keys and CHECK constraints are new.
Each one is then counted on the copy of production, where the rows are, by a
query built from Postgres' own definition (``pg_get_indexdef``,
``pg_get_expr``). Counts only: no query returns a row's value.

The counts follow Postgres' rules:

- a unique index: the rows that share their key with another row; rows with a
  NULL in the key share nothing, unless the index is ``NULLS NOT DISTINCT``;
  a partial index counts only the rows its predicate admits;
- NOT NULL: the rows whose column is NULL; a column the revision adds with no
  default: every row;
- a foreign key: ``MATCH SIMPLE``, rows whose key columns are all set and point
  at no row (``MATCH FULL`` also counts a key that is NULL in part);
- a CHECK: the rows where its expression is false; NULL passes.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

# The counts run side by side on this many connections (the copy is disposable, and its
# server idle meanwhile), each with this much memory for a GROUP BY.
COUNT_CONNECTIONS = 3
WORK_MEM = "128MB"
# The tables of the project's schemas, with what the counts need of each.
TABLES = """
SELECT c.oid::bigint, c.oid::regclass::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> 'alembic_version'
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""
COLUMNS = """
SELECT c.oid::regclass::text, a.attname, quote_ident(a.attname), a.attnotnull, a.atthasdef,
       format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.oid = ANY(%s::text[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""
UNIQUE_INDEXES = """
SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
       array(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k),
       pg_get_expr(i.indpred, i.indrelid, true), {nulls_not_distinct}
FROM pg_index i
WHERE i.indrelid = ANY(%s::text[]::oid[]) AND i.indisunique
"""
# A constraint's columns (of ``pg_constraint k``), quoted, in the constraint's order: those
# of its table (``conkey``, ``conrelid``), or those a foreign key points at (``confkey``,
# ``confrelid``).
CONSTRAINT_COLUMNS = """array(
    SELECT quote_ident(a.attname) FROM unnest(k.{keys}) WITH ORDINALITY AS u(n, o)
    JOIN pg_attribute a ON a.attrelid = k.{table} AND a.attnum = u.n ORDER BY u.o)"""
CHILD_COLUMNS = CONSTRAINT_COLUMNS.format(keys="conkey", table="conrelid")
PARENT_COLUMNS = CONSTRAINT_COLUMNS.format(keys="confkey", table="confrelid")
CONSTRAINTS = f"""
SELECT k.conrelid::regclass::text, quote_ident(k.conname), k.contype, k.convalidated,
       {CHILD_COLUMNS}, k.confrelid::regclass::text, {PARENT_COLUMNS},
       k.confmatchtype, pg_get_expr(k.conbin, k.conrelid, true)
FROM pg_constraint k
WHERE k.conrelid = ANY(%s::text[]::oid[]) AND k.contype IN ('f', 'c')
"""

# Each kind: its rule for accepted_hazards, its recipe, and what a violating row does.
KINDS = {
    "unique": ("rows-unique", "add-a-unique-constraint", "share {what} with another row"),
    "not-null": ("rows-not-null", "add-a-not-null-column", "have no {what}"),
    "foreign-key": ("rows-foreign-key", "add-a-foreign-key", "point at no {what}"),
    "check": ("rows-check", "add-a-not-null-column", "fail {what}"),
}


@dataclass(frozen=True)
class Catalog:
    """The schema's tables, columns and constraints, as the counts need them."""

    tables: dict[str, int]
    columns: dict[tuple[str, str], tuple[str, bool, bool, str]]  # quoted, NOT NULL, default, type
    unique: dict[tuple[str, str], tuple[tuple[str, ...], str | None, bool]]
    constraints: dict[tuple[str, str], tuple[Any, ...]]

    def table_shape(self, table: str) -> tuple[Any, ...]:
        """What a revision may change of a table: its columns, unique indexes, constraints."""
        return (
            sorted(item for item in self.columns.items() if item[0][0] == table),
            sorted(item for item in self.unique.items() if item[0][0] == table),
            sorted(
                (key, repr(value)) for key, value in self.constraints.items() if key[0] == table
            ),
        )


def read_catalog(cursor: Any) -> Catalog:
    cursor.execute(TABLES)
    tables = {name: oid for oid, name in cursor.fetchall()}
    oids = [str(oid) for oid in tables.values()]  # as text: psycopg 3 sends small ints as int2
    cursor.execute(COLUMNS, (oids,))
    columns = {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}
    cursor.execute("SELECT current_setting('server_version_num')::int >= 150000")
    [(has_nulls_not_distinct,)] = cursor.fetchall()
    nulls = "i.indnullsnotdistinct" if has_nulls_not_distinct else "false"
    cursor.execute(UNIQUE_INDEXES.format(nulls_not_distinct=nulls), (oids,))
    unique = {(row[0], row[1]): (tuple(row[2]), row[3], row[4]) for row in cursor.fetchall()}
    cursor.execute(CONSTRAINTS, (oids,))
    constraints = {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}
    return Catalog(tables, columns, unique, constraints)


@dataclass
class Constraint:
    """One constraint a revision adds to a table that has rows, and its count."""

    kind: str  # a key of KINDS
    table: str
    name: str  # the index, constraint or column
    what: str  # the columns, or the constraint, as a reviewer reads them
    query: str  # counts the violating rows, or (``scanned``) is the row condition; no value
    surplus: str  # the rows to remove so that it holds (one of rows sharing a key stays)
    enforced: bool = True  # False: NOT VALID, existing rows are not checked
    scanned: bool = False  # counted in one scan of its table, with the table's other such
    violating: int | None = None
    rows: int | None = None
    not_counted: str | None = None

    @property
    def rule(self) -> str:
        return KINDS[self.kind][0]

    @property
    def recipe(self) -> str:
        return f"docs/safe-migrations.md#{KINDS[self.kind][1]}"

    def finding(self) -> str:
        """``0 of 500,000 customer rows share email with another row``."""
        does = KINDS[self.kind][2].format(what=plain(self.what))
        return f"{self.violating:,} of {self.rows:,} {plain(self.table)} rows {does}"

    def fails(self) -> bool:
        return self.enforced and bool(self.violating)

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        del found["query"], found["surplus"]
        return found | {"rule": self.rule, "recipe": self.recipe}


def plain(name: str) -> str:
    """A name as a reviewer reads it: ``"user"`` is ``user``."""
    return name.replace('"', "")


def unique_queries(
    table: str, keys: tuple[str, ...], predicate: str | None, nulls: bool
) -> tuple[str, str]:
    """The count of rows that share a key, and the rows beyond the first of each key."""
    conditions = [f"({predicate})"] if predicate else []
    if not nulls:
        conditions += [f"({key}) IS NOT NULL" for key in keys]
    admitted = " AND ".join(conditions) or "true"
    grouped = ", ".join(f"({key})" for key in keys)
    count = (
        f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {table} "
        f"WHERE {admitted} GROUP BY {grouped} HAVING count(*) > 1) AS shared"
    )
    beyond_first = (
        f"{admitted} AND ctid NOT IN "
        f"(SELECT min(ctid) FROM {table} WHERE {admitted} GROUP BY {grouped})"
    )
    return count, beyond_first


def foreign_key_condition(row: tuple[Any, ...]) -> str:
    """The rows of the referencing table (``AS child``) that point at no row."""
    _, _, columns, referenced, referenced_columns, match, _ = row
    present = " AND ".join(f"child.{column} IS NOT NULL" for column in columns)
    pointed = " AND ".join(
        f"parent.{parent} = child.{child}"
        for child, parent in zip(columns, referenced_columns, strict=True)
    )
    violating = f"({present} AND NOT EXISTS (SELECT FROM {referenced} AS parent WHERE {pointed}))"
    if match == "f" and len(columns) > 1:  # MATCH FULL: a key NULL in part points nowhere either
        listed = ", ".join(f"child.{column}" for column in columns)
        violating += f" OR num_nulls({listed}) BETWEEN 1 AND {len(columns) - 1}"
    return violating


def added_constraints(before: Catalog, after: Catalog) -> list[Constraint]:
    """What a revision adds to tables that existed before it, with the query that counts."""
    found = []
    for (table, index), (keys, predicate, nulls) in sorted(after.unique.items()):
        if table in before.tables and (table, index) not in before.unique:
            query, surplus = unique_queries(table, keys, predicate, nulls)
            found.append(
                Constraint("unique", table, index, f"{', '.join(keys)} ({index})", query, surplus)
            )
    for (table, column), (quoted, notnull, default, _) in sorted(after.columns.items()):
        if table not in before.tables or not notnull:
            continue
        was = before.columns.get((table, column))
        if was is None:  # a new column: NULL in every row, unless it has a default
            condition = "false" if default else "true"
        elif not was[1]:
            condition = f"{quoted} IS NULL"
        else:
            continue
        found.append(
            Constraint("not-null", table, column, quoted, condition, condition, scanned=True)
        )
    for (table, name), row in sorted(after.constraints.items()):
        if table not in before.tables or (table, name) in before.constraints:
            continue
        contype, validated, columns, referenced, *_, expression = row
        if contype == "f":
            what = f"{referenced} ({name} on {', '.join(columns)})"
            condition = foreign_key_condition(row)
            query = f"SELECT count(*) FROM {table} AS child WHERE {condition}"
            found.append(Constraint("foreign-key", table, name, what, query, condition, validated))
        else:
            condition = f"NOT ({expression})"
            found.append(
                Constraint("check", table, name, name, condition, condition, validated, True)
            )
    return found


def touched_tables(before: Catalog, after: Catalog) -> list[str]:
    """The tables that existed before the revision and that it changed (or dropped)."""
    return [
        table
        for table in sorted(before.tables)
        if table not in after.tables or before.table_shape(table) != after.table_shape(table)
    ]


def count(
    connect: Callable[[], AbstractContextManager[Any]],
    constraints: list[Constraint],
    connections: int = COUNT_CONNECTIONS,
) -> None:
    """Count each constraint's violating rows, and its table's rows, on the copy, over up to
    ``connections`` cursors in autocommit that ``connect()`` opens, one query each at a time.
    NOT NULL and CHECK conditions are counted in one scan of their table with its rows. A
    query that cannot run there (it uses what the same revision adds) leaves its constraint
    not counted."""
    by_table: dict[str, list[Constraint]] = {}
    for constraint in constraints:
        by_table.setdefault(constraint.table, []).append(constraint)
    jobs: queue.SimpleQueue[Callable[[Any], None]] = queue.SimpleQueue()
    for table, each in by_table.items():
        jobs.put(partial(count_table, table, each))
        for constraint in each:
            if not constraint.scanned:
                jobs.put(partial(count_one, constraint))

    def work() -> None:
        with connect() as cursor:
            cursor.execute(f"SET work_mem = '{WORK_MEM}'")  # a GROUP BY in memory
            while True:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    return
                job(cursor)

    workers = max(1, min(connections, jobs.qsize()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for worker in [pool.submit(work) for _ in range(workers)]:
            worker.result()
    for constraint in constraints:
        if constraint.violating is None:
            constraint.not_counted = "not counted: it uses what the revision adds"


def count_table(table: str, each: list[Constraint], cursor: Any) -> None:
    """The table's rows, and its NOT NULL and CHECK conditions' violators, in one scan."""
    scanned = [constraint for constraint in each if constraint.scanned]
    filters = "".join(f", count(*) FILTER (WHERE {c.query})" for c in scanned)
    found = counted(cursor, f"SELECT count(*){filters} FROM {table}")
    if found is None:  # one condition cannot run here: each on its own
        found = [*counted(cursor, f"SELECT count(*) FROM {table}"), *([None] * len(scanned))]
    for constraint in each:
        constraint.rows = found[0]
    for constraint, violating in zip(scanned, found[1:], strict=True):
        if violating is None:
            violating = single(cursor, f"SELECT count(*) FROM {table} WHERE {constraint.query}")
        constraint.violating = violating


def count_one(constraint: Constraint, cursor: Any) -> None:
    constraint.violating = single(cursor, constraint.query)


def counted(cursor: Any, query: str) -> list[Any] | None:
    try:
        cursor.execute(query)
    except Exception:  # the driver's error; its text is never shown
        return None
    return list(cursor.fetchone())


def single(cursor: Any, query: str) -> int | None:
    found = counted(cursor, query)
    return None if found is None else int(found[0])
