"""What a database's schema holds, as lines to compare (template-owned).

The gate reads the schema after each upgrade, and checks that each downgrade
brings back exactly the schema its upgrade started from: the same schemas,
extensions, types (enum labels in order), tables, views, sequences, columns
(type, nullability, default, identity), indexes and constraints by their
definitions (``pg_get_indexdef``, ``pg_get_constraintdef``: columns, kind,
uniqueness, ``NOT VALID``, and whether an index is valid), functions and
triggers. Grants and comments are not compared; rows are, in ``data_state.py``.
Alembic's own version table is left out: it stays once created, and so are
the gate's own temporary tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

# User objects have OIDs from FirstNormalObjectId (16384) up, so the catalogs'
# own rows are skipped without a scan. An extension's own functions and tables
# come and go with its "extension" line, so they are not listed one by one.
SCHEMA_LINES = r"""
WITH member AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e' AND objid >= 16384
), relation AS (
    SELECT c.oid, c.relkind, n.nspname || '.' || c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid >= 16384 AND n.nspname NOT LIKE 'pg\_%'
      AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
      AND (c.oid NOT IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass))
)
SELECT CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
    WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
    WHEN 'c' THEN 'composite type' ELSE 'relation' END || ' ' || r.name
FROM relation r WHERE r.relkind NOT IN ('i', 'I', 't')
UNION ALL
SELECT 'index ' || r.name || ' on ' || t.name || ': ' || pg_get_indexdef(i.indexrelid)
    || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
FROM pg_index i JOIN relation r ON r.oid = i.indexrelid JOIN relation t ON t.oid = i.indrelid
UNION ALL
SELECT 'column ' || r.name || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
    || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
FROM relation r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
UNION ALL
SELECT 'constraint ' || k.conname || ' (' || CASE k.contype
    WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key' WHEN 'u' THEN 'unique'
    WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion' WHEN 'n' THEN 'not null'
    ELSE k.contype::text END || ') on ' || r.name || ': ' || pg_get_constraintdef(k.oid)
FROM relation r JOIN pg_constraint k ON k.conrelid = r.oid
UNION ALL
SELECT 'trigger ' || g.tgname || ' on ' || r.name
FROM relation r JOIN pg_trigger g ON g.tgrelid = r.oid AND NOT g.tgisinternal
UNION ALL
SELECT 'type ' || n.nspname || '.' || t.typname || CASE t.typtype WHEN 'e' THEN ' (enum: '
    || coalesce((SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
                 FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
    WHEN 'd' THEN ' (domain)' WHEN 'r' THEN ' (range)' ELSE '' END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid >= 16384 AND t.typtype IN ('e', 'd', 'r')
  AND t.oid NOT IN (SELECT objid FROM member WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT 'schema ' || nspname FROM pg_namespace WHERE oid >= 16384 AND nspname !~ '^pg_'
UNION ALL
SELECT 'extension ' || extname FROM pg_extension WHERE oid >= 16384
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p WHERE p.oid >= 16384
  AND p.oid NOT IN (SELECT objid FROM member WHERE classid = 'pg_proc'::regclass)
  AND p.pronamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname LIKE 'pg\_%')
"""
# What a reader looks for first; a table's own columns, indexes, constraints and
# triggers are not listed beside it.
KINDS = (
    "schema",
    "extension",
    "type",
    "table",
    "foreign table",
    "view",
    "materialized view",
    "composite type",
    "sequence",
    "function",
    "index",
    "constraint",
    "trigger",
    "column",
    "relation",
)
SHOWN = 8


def own_connection(engine: Engine) -> Any:
    """A DBAPI connection in autocommit mode that has left the engine's pool: the gate's own."""
    connection = engine.raw_connection()
    connection.detach()
    connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
    return connection


class SchemaReader:
    """Reads a database's schema over a connection of its own, so it sees committed work only.

    The query is prepared once, as the gate reads the schema twice per revision;
    the connection leaves the engine's pool, so no one else gets it prepared.
    """

    def __init__(self, engine: Engine) -> None:
        self._connection = own_connection(engine)
        self._cursor = self._connection.cursor()
        self._cursor.execute(f"PREPARE schema_lines AS {SCHEMA_LINES}")

    def lines(self) -> frozenset[str]:
        self._cursor.execute("EXECUTE schema_lines")
        return frozenset(line for (line,) in self._cursor.fetchall())

    def close(self) -> None:
        self._cursor.close()
        self._connection.close()


@dataclass(frozen=True)
class Change:
    """What one step did to the schema."""

    added: frozenset[str]
    removed: frozenset[str]

    @classmethod
    def between(cls, before: frozenset[str], after: frozenset[str]) -> Change:
        return cls(after - before, before - after)

    def undone(self, after: frozenset[str]) -> frozenset[str]:
        """The schema before this change, given the schema after it."""
        return (after - self.added) | self.removed


def kind(line: str) -> int:
    return next(index for index, name in enumerate(KINDS) if line.startswith(f"{name} "))


def part_of(line: str, table: str) -> bool:
    """Whether ``line`` is a column, index, constraint or trigger of ``table``."""
    return (
        line.startswith(f"column {table}.")
        or f" on {table}: " in line
        or line.endswith(f" on {table}")
    )


def listing(lines: Iterable[str]) -> str:
    """A few of ``lines`` on one line: the most telling first, a table without its parts."""
    lines = set(lines)
    tables = [line.split(" ")[-1] for line in lines if line.startswith("table ")]
    shown = sorted(
        (line for line in lines if not any(part_of(line, table) for table in tables)),
        key=lambda line: (kind(line), line),
    )
    more = f" and {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
    return ", ".join(shown[:SHOWN]) + more


def defined(lines: frozenset[str]) -> dict[str, str]:
    """Index and constraint lines by what they name (``index x on t``): their definition."""
    return {
        name: definition
        for name, _, definition in (line.partition(": ") for line in lines)
        if definition and name.startswith(("index ", "constraint "))
    }


def not_undone(expected: frozenset[str], found: frozenset[str]) -> str:
    """Why ``found`` is not the schema ``expected``, in one line."""
    left, gone = found - expected, expected - found
    was, now = defined(gone), defined(left)
    redefined = sorted(set(was) & set(now))
    parts = [f"{name} is {now[name]}, was {was[name]}" for name in redefined]
    left = {line for line in left if line.partition(": ")[0] not in redefined}
    gone = {line for line in gone if line.partition(": ")[0] not in redefined}
    if left:
        parts.append(f"left behind: {listing(left)}")
    if gone:
        parts.append(f"not restored: {listing(gone)}")
    return "; ".join(parts)
