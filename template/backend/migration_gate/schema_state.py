"""What a database's schema holds, as lines to compare (template-owned).

The gate reads the schema after each upgrade, and checks that each downgrade
brings back exactly the schema its upgrade started from: the same schemas,
extensions, types (enum labels in order), tables, views, sequences, columns
(type, nullability, default, identity, a collation other than the type's),
indexes and constraints by their definitions (``pg_get_indexdef``,
``pg_get_constraintdef``: columns, kind, uniqueness, ``NOT VALID``, and whether
an index is valid), functions and triggers. Grants and comments are not
compared; rows are, in ``data_state.py``. The model-match check reads the
models' schema with it too (``model_match.py``).
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
RELATIONS = r"""
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid >= 16384 AND n.nspname NOT LIKE 'pg\_%' AND c.relkind NOT IN ('i', 'I', 't')
  AND c.relname <> 'alembic_version'
  AND c.oid NOT IN (SELECT objid FROM pg_depend WHERE deptype = 'e' AND objid >= 16384
                    AND classid = 'pg_class'::regclass)
"""
# The lines of the relations $1 names (tables, views, sequences...), each with its relation:
# its own line, and those of its columns, indexes, constraints and triggers. Each is found
# from its relation by an index, however many relations there are.
RELATION_LINES = r"""
WITH relation AS (
    SELECT c.oid, c.relkind, n.nspname, n.nspname || '.' || c.relname AS name
    FROM unnest($1::oid[]) wanted (oid) JOIN pg_class c ON c.oid = wanted.oid
    JOIN pg_namespace n ON n.oid = c.relnamespace
)
SELECT r.oid, CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
    WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
    WHEN 'c' THEN 'composite type' ELSE 'relation' END || ' ' || r.name
FROM relation r
UNION ALL
SELECT r.oid, 'index ' || r.nspname || '.' || x.relname || ' on ' || r.name || ': '
    || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
FROM relation r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class x ON x.oid = i.indexrelid
WHERE x.relname <> 'alembic_version_pkc'
UNION ALL
SELECT r.oid, 'column ' || r.name || '.' || a.attname || ' '
    || format_type(a.atttypid, a.atttypmod)
    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
    || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
    || CASE WHEN a.attcollation NOT IN (0, t.typcollation)
       THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END
FROM relation r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
UNION ALL
SELECT r.oid, 'constraint ' || k.conname || ' (' || CASE k.contype
    WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key' WHEN 'u' THEN 'unique'
    WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion' WHEN 'n' THEN 'not null'
    ELSE k.contype::text END || ') on ' || r.name || ': ' || pg_get_constraintdef(k.oid)
FROM relation r JOIN pg_constraint k ON k.conrelid = r.oid
UNION ALL
SELECT r.oid, 'trigger ' || g.tgname || ' on ' || r.name
FROM relation r JOIN pg_trigger g ON g.tgrelid = r.oid AND NOT g.tgisinternal
"""
# Everything else: schemas, extensions, types (enum labels in order), functions.
OTHER_LINES = r"""
WITH member AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e' AND objid >= 16384
)
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
# The catalog rows that describe an object a line shows, as (catalog, the object's class,
# the column that names the object).
DESCRIBING_ROWS = (
    ("pg_class", "pg_class", "oid"),
    ("pg_attribute", "pg_class", "attrelid"),
    ("pg_index", "pg_class", "indexrelid"),
    ("pg_constraint", "pg_constraint", "oid"),
    ("pg_attrdef", "pg_attrdef", "oid"),
    ("pg_rewrite", "pg_rewrite", "oid"),
    ("pg_trigger", "pg_trigger", "oid"),
    ("pg_type", "pg_type", "oid"),
    ("pg_proc", "pg_proc", "oid"),
    ("pg_collation", "pg_collation", "oid"),
    ("pg_operator", "pg_operator", "oid"),
    ("pg_opclass", "pg_opclass", "oid"),
)
WRITTEN_SINCE_MARK = "\n    UNION ".join(
    f"SELECT '{kind}'::regclass AS classid, {key} AS objid FROM {catalog}"
    f" WHERE {key} >= 16384 AND age(xmin) <= age($1)"
    for catalog, kind, key in DESCRIBING_ROWS
)
# What may have changed a relation's lines since the transaction $1 (a mark): each catalog
# row written since then, and each object that depends on one of them (a foreign key on a
# renamed column, a default on a renamed sequence, a column of a renamed type), by the
# relation it belongs to. A write that leaves no row behind (a dropped index, constraint,
# trigger or default) changes its relation's counts instead, and so does a validity
# flag; a renamed schema or a new extension changes every relation.
CHANGES = rf"""
WITH owner AS (
    SELECT 'pg_class'::regclass AS classid, indexrelid AS objid, indrelid AS relation
    FROM pg_index WHERE indexrelid >= 16384
    UNION ALL SELECT 'pg_constraint'::regclass, oid, conrelid FROM pg_constraint
    WHERE oid >= 16384 AND conrelid <> 0
    UNION ALL SELECT 'pg_attrdef'::regclass, oid, adrelid FROM pg_attrdef WHERE oid >= 16384
    UNION ALL SELECT 'pg_rewrite'::regclass, oid, ev_class FROM pg_rewrite WHERE oid >= 16384
    UNION ALL SELECT 'pg_trigger'::regclass, oid, tgrelid FROM pg_trigger WHERE oid >= 16384
    UNION ALL SELECT 'pg_type'::regclass, oid, typrelid FROM pg_type
    WHERE oid >= 16384 AND typrelid <> 0
), written AS (
    {WRITTEN_SINCE_MARK}
), affected AS (
    SELECT classid, objid FROM written
    UNION SELECT d.classid, d.objid FROM pg_depend d
    JOIN written w ON d.refclassid = w.classid AND d.refobjid = w.objid
)
SELECT ARRAY(
    SELECT DISTINCT coalesce(o.relation, a.objid)::bigint FROM affected a
    LEFT JOIN owner o ON o.classid = a.classid AND o.objid = a.objid
    WHERE o.relation IS NOT NULL OR a.classid = 'pg_class'::regclass
), ARRAY(
    SELECT concat_ws(' ', relation, sum(indexes), sum(invalid), sum(constraints),
                     sum(not_valid), sum(triggers), sum(defaults))
    FROM (
        SELECT indrelid AS relation, 1 AS indexes, (NOT indisvalid)::int AS invalid,
            0 AS constraints, 0 AS not_valid, 0 AS triggers, 0 AS defaults
        FROM pg_index WHERE indexrelid >= 16384
        UNION ALL SELECT conrelid, 0, 0, 1, (NOT convalidated)::int, 0, 0 FROM pg_constraint
        WHERE oid >= 16384 AND conrelid <> 0
        UNION ALL SELECT tgrelid, 0, 0, 0, 0, 1, 0 FROM pg_trigger WHERE oid >= 16384
        UNION ALL SELECT adrelid, 0, 0, 0, 0, 0, 1 FROM pg_attrdef WHERE oid >= 16384
    ) parts GROUP BY relation
), EXISTS (
    SELECT FROM pg_namespace WHERE oid >= 16384 AND age(xmin) <= age($1)
      AND nspname NOT LIKE 'pg\_%'
) OR EXISTS (SELECT FROM pg_extension WHERE oid >= 16384 AND age(xmin) <= age($1))
"""
# The oldest transaction that may still write: catalog rows written after a read have an
# xmin from it on.
MARK = "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text"
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

    The gate reads the schema twice per revision, and a revision changes a few
    relations, so a read renders only the relations whose catalog rows were
    written since the last read (``CHANGES``), and keeps the lines of the rest.
    The queries are prepared once, with generic plans; the connection leaves
    the engine's pool, so no one else gets them prepared.
    """

    def __init__(self, engine: Engine) -> None:
        self._connection = own_connection(engine)
        self._cursor = self._connection.cursor()
        # One generic plan per statement serves the whole climb, and compiling a catalog
        # query (JIT) takes longer than running it.
        self._cursor.execute("SET plan_cache_mode = force_generic_plan")
        self._cursor.execute("SET jit = off")
        self._cursor.execute(f"PREPARE schema_relations AS {RELATIONS}")
        self._cursor.execute(f"PREPARE schema_relation_lines(oid[]) AS {RELATION_LINES}")
        self._cursor.execute(f"PREPARE schema_other_lines AS {OTHER_LINES}")
        self._cursor.execute(f"PREPARE schema_changes(xid) AS {CHANGES}")
        self._relation_lines: dict[int, frozenset[str]] = {}
        self._counts: frozenset[str] = frozenset()  # of each relation's indexes, constraints...
        self._mark: str | None = None

    def lines(self) -> frozenset[str]:
        """The schema now; what cannot have changed since the last read is not read again."""
        mark = self._fetch_one(MARK)
        stale = self._stale(since=self._mark or mark)
        current = {oid for (oid,) in self._fetch("EXECUTE schema_relations")}
        kept = self._relation_lines
        for oid in kept.keys() - current:
            del kept[oid]
        wanted = [oid for oid in current if stale is None or oid in stale or oid not in kept]
        if wanted:
            found: dict[int, set[str]] = {oid: set() for oid in wanted}
            listed = ",".join(map(str, wanted))
            for oid, line in self._fetch(f"EXECUTE schema_relation_lines('{{{listed}}}')"):
                found[oid].add(line)
            kept.update((oid, frozenset(lines)) for oid, lines in found.items())
        self._mark = mark
        others = frozenset(line for (line,) in self._fetch("EXECUTE schema_other_lines"))
        return others.union(*kept.values())

    def _stale(self, since: str) -> set[int] | None:
        """The relations whose lines may have changed since the mark; None for every one."""
        self._cursor.execute(f"EXECUTE schema_changes('{since}')")
        changed, counts, everything = self._cursor.fetchone()
        stale = set(changed)
        now = frozenset(counts)
        stale |= {int(entry.split(" ", 1)[0]) for entry in now ^ self._counts}
        self._counts = now
        return None if everything or self._mark is None else stale

    def _fetch(self, statement: str) -> list[Any]:
        self._cursor.execute(statement)
        return self._cursor.fetchall()

    def _fetch_one(self, statement: str) -> str:
        self._cursor.execute(statement)
        return self._cursor.fetchone()[0]

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
