"""What the tables' rows hold, kept and compared on the server (template-owned).

Whenever a step of the climb changes a table's rows, the gate keeps a copy of
them: per row, its key (the primary key, else a unique key of NOT NULL
columns) and the text of each value. The copies live in a temporary table of
the gate's own connection: nothing is copied into Python, and nothing shows
in the schema the gate compares. Which tables a step changed is asked of the
server too, among those it locked: a table whose row count or columns changed,
or that holds a row a later transaction wrote (its ``xmin``).

After a downgrade, each table it changed is compared with two copies: the one
from before the upgrade, and the one from just before the downgrade. A row
that was there before the upgrade and is still there before the downgrade must
be there afterwards, and each of its values (in the columns all three have)
must be what it was in one of the two copies: a backfill or a deduplication
may stay, a cut or a lost value may not. The rows written after the upgrade to
use what it allowed (``room.py``) must be there as they were written. A table
without such a key is compared by content: every row that neither step
changed must still be there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .rows import quote

SET_UP = """
CREATE TEMP TABLE IF NOT EXISTS gate_rows (version integer, key text, content jsonb);
CREATE INDEX IF NOT EXISTS gate_rows_version_key ON gate_rows (version, key);
CREATE OR REPLACE FUNCTION pg_temp.gate_same(old text, new text, type text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    same boolean;
BEGIN
    IF old IS NULL OR new IS NULL THEN
        RETURN old IS NULL AND new IS NULL;
    END IF;
    IF old = new THEN
        RETURN true;
    END IF;
    EXECUTE format('SELECT $1::%s = $2::%s', type, type) INTO same USING old, new;
    RETURN coalesce(same, false);
EXCEPTION WHEN OTHERS THEN
    RETURN false;
END $$;
"""
# The next transaction id: rows that a step writes later carry a newer xmin.
MARK = "SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint % 4294967296)::text"
# For each table: its columns with their types (without length or precision), and its key.
SHAPE = """
SELECT c.oid::regclass::text, c.oid::bigint,
       array_agg(a.attname::text ORDER BY a.attnum),
       array_agg(CASE WHEN a.atttypid = 'json'::regtype THEN 'jsonb'
                      ELSE format_type(a.atttypid, NULL) END ORDER BY a.attnum),
       coalesce((
           SELECT ARRAY(SELECT k.attname::text FROM unnest(i.indkey) WITH ORDINALITY u(n, o)
                        JOIN pg_attribute k ON k.attrelid = c.oid AND k.attnum = u.n ORDER BY u.o)
           FROM pg_index i
           WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indexprs IS NULL
             AND i.indpred IS NULL
             AND NOT EXISTS (SELECT FROM unnest(i.indkey) u(n) JOIN pg_attribute k
                             ON k.attrelid = c.oid AND k.attnum = u.n WHERE NOT k.attnotnull)
           ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid LIMIT 1
       ), '{}')
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = ANY(%s::regclass[])
GROUP BY c.oid
"""
PAIRS_PER_CALL = 50  # jsonb_build_object takes at most 100 arguments


@dataclass(frozen=True)
class Copy:
    """A table's rows as one step left them, kept under ``version``."""

    version: int
    table: str
    oid: int
    columns: Mapping[str, str]  # name to type, without length or precision
    key: tuple[str, ...]  # () when the table has no key to match rows by
    rows: int


@dataclass
class Loss:
    """What a downgrade lost of one table's rows."""

    table: str
    recreated: bool = False
    rows_gone: int = 0
    keyless: bool = False
    changed: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # all, NULLed, cut

    def __bool__(self) -> bool:
        return bool(self.rows_gone or self.changed)

    def describe(self) -> str:
        parts = []
        if self.recreated:
            parts.append("recreated the table")
        if self.rows_gone:
            noun = "row" if self.rows_gone == 1 else "rows"
            how = " (it has no key: rows are compared by content)" if self.keyless else ""
            parts.append(f"{self.rows_gone} {noun} gone{how}")
        for column, (count, nulled, cut) in sorted(self.changed.items()):
            kind = "set to NULL" if nulled == count else "cut short" if cut == count else "changed"
            parts.append(f"{column} {kind} in {count} row{'s' if count != 1 else ''}")
        return f"{self.table}: {', '.join(parts)}"


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def build_object(pairs: list[str]) -> str:
    """``jsonb_build_object`` of ``key, value`` pairs, in calls of its argument limit."""
    calls = [
        f"jsonb_build_object({', '.join(pairs[start : start + PAIRS_PER_CALL])})"
        for start in range(0, len(pairs), PAIRS_PER_CALL)
    ]
    return " || ".join(calls) or "'{}'::jsonb"


def content(columns: Iterable[str]) -> str:
    """Each column's value as text, in one jsonb."""
    return build_object([f"{sql_text(name)}, {quote(name)}::text" for name in columns])


def key_text(key: Iterable[str]) -> str:
    names = [f"{quote(name)}::text" for name in key]
    return f"jsonb_build_array({', '.join(names)})::text" if names else "NULL::text"


class RowKeeper:
    """Copies of tables' rows, and comparisons of them, over a connection of its own."""

    def __init__(self, connection: Any) -> None:
        self.cursor = connection.cursor()
        self.cursor.execute(SET_UP)
        self.versions = 0

    def mark(self) -> str:
        self.cursor.execute(MARK)
        return self.cursor.fetchone()[0]

    def existing(self, tables: Iterable[str]) -> dict[str, int]:
        """Which of ``tables`` are tables now (not gone, not a view in their place), with oids."""
        names = list(tables)
        if not names:
            return {}
        self.cursor.execute(
            "SELECT name, c.oid::bigint FROM unnest(%s::text[]) name "
            "JOIN pg_class c ON c.oid = to_regclass(name) AND c.relkind IN ('r', 'p')",
            (names,),
        )
        return {name: oid for name, oid in self.cursor.fetchall() if oid is not None}

    def changed(self, copies: Iterable[Copy], mark: str) -> set[str]:
        """The tables, among those copied, whose rows or columns changed since ``mark`` (or
        that are gone, or were recreated)."""
        copies = list(copies)
        now = self.existing(copy.table for copy in copies)
        changed = {copy.table for copy in copies if now.get(copy.table) != copy.oid}
        alive = [copy for copy in copies if copy.table not in changed]
        if not alive:
            return changed
        counts = " UNION ALL ".join(
            f"SELECT {number}, count(*), coalesce(bool_or(age(xmin) <= age('{mark}'::xid)), false),"
            f" (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute WHERE attrelid"
            f" = {copy.oid} AND attnum > 0 AND NOT attisdropped) FROM {copy.table}"
            for number, copy in enumerate(alive)
        )
        self.cursor.execute(counts)
        for number, count, written, columns in self.cursor.fetchall():
            copy = alive[number]
            if written or count != copy.rows or list(columns) != list(copy.columns):
                changed.add(copy.table)
        return changed

    def copy(self, tables: Iterable[str], since: str | None = None) -> dict[str, Copy]:
        """Keep a copy of each table's rows now (only those written since the mark ``since``,
        when given); returns the copies by table."""
        names = list(tables)
        if not names:
            return {}
        self.cursor.execute(SHAPE, (names,))
        copies = {}
        written = f" WHERE age(xmin) <= age('{since}'::xid)" if since else ""
        for table, oid, columns, types, key in self.cursor.fetchall():
            self.versions += 1
            self.cursor.execute(
                f"INSERT INTO gate_rows SELECT {self.versions}, {key_text(key)}, "
                f"{content(columns)} FROM {table}{written}"
            )
            copies[table] = Copy(
                self.versions, table, oid, dict(zip(columns, types, strict=True)), tuple(key),
                self.cursor.rowcount,
            )  # fmt: skip
        return copies

    def losses(self, before: Copy, prior: Copy, now: Copy, used: Copy | None = None) -> Loss:
        """What the rows ``now`` lost of those in ``before`` (the upgrade's start) that
        ``prior`` (the downgrade's start) still held; ``used`` holds rows written after the
        upgrade, which must stay as ``prior`` holds them."""
        loss = Loss(now.table, recreated=now.oid != prior.oid)
        shared = [name for name in now.columns if name in before.columns and name in prior.columns]
        kept = (before.version,) if used is None else (before.version, used.version)
        if before.key and before.key == prior.key == now.key == (used or before).key:
            self._keyed_losses(kept, prior, now, shared, loss)
        else:
            self._content_losses(kept, prior, now, shared, loss)
        return loss

    def delete(self, copy: Copy) -> None:
        """Delete from its table the rows that ``copy`` holds (matched by its key, or by
        content when it has none)."""
        match = key_text(copy.key) if copy.key else f"({content(copy.columns)})::text"
        stored = "key" if copy.key else "content::text"
        self.cursor.execute(
            f"DELETE FROM {copy.table} WHERE {match} IN "
            f"(SELECT {stored} FROM gate_rows WHERE version = {copy.version})"
        )

    def _keyed_losses(
        self, kept: tuple[int, ...], prior: Copy, now: Copy, shared: list[str], loss: Loss
    ) -> None:
        types = ", ".join(f"({sql_text(name)}, {sql_text(now.columns[name])})" for name in shared)
        self.cursor.execute(
            f"""
            WITH types (col, type) AS (VALUES {types or "(NULL, NULL)"}),
            pairs AS (
                SELECT n.key IS NULL AS gone, b.content AS bc, p.content AS pc, n.content AS nc
                FROM gate_rows b
                JOIN gate_rows p ON p.version = {prior.version} AND p.key = b.key
                LEFT JOIN gate_rows n ON n.version = {now.version} AND n.key = b.key
                WHERE b.version IN ({", ".join(map(str, kept))})
            )
            SELECT NULL, count(*), 0, 0 FROM pairs WHERE gone
            UNION ALL
            SELECT t.col, count(*), count(*) FILTER (WHERE nc ->> t.col IS NULL),
                   count(*) FILTER (WHERE starts_with(pc ->> t.col, nc ->> t.col)
                                       OR starts_with(bc ->> t.col, nc ->> t.col))
            FROM pairs JOIN types t ON t.col IS NOT NULL
            WHERE NOT gone
              AND (nc ->> t.col) IS DISTINCT FROM (bc ->> t.col)
              AND (nc ->> t.col) IS DISTINCT FROM (pc ->> t.col)
              AND NOT pg_temp.gate_same(bc ->> t.col, nc ->> t.col, t.type)
              AND NOT pg_temp.gate_same(pc ->> t.col, nc ->> t.col, t.type)
            GROUP BY t.col
            """
        )
        for column, count, nulled, cut in self.cursor.fetchall():
            if column is None:
                loss.rows_gone = count
            elif count:
                loss.changed[column] = (count, nulled, cut)

    def _content_losses(
        self, kept: tuple[int, ...], prior: Copy, now: Copy, shared: list[str], loss: Loss
    ) -> None:
        """Rows with the same values in ``kept`` and ``prior`` must all be in ``now``."""
        loss.keyless = True
        projected = build_object([f"{sql_text(name)}, content -> {sql_text(name)}"
                                  for name in shared])  # fmt: skip
        versions = (*kept, prior.version, now.version)
        self.cursor.execute(
            f"""
            WITH counted AS (
                SELECT version, ({projected})::text AS row_content, count(*) AS n
                FROM gate_rows WHERE version IN {versions} GROUP BY 1, 2
            ),
            b AS (SELECT row_content, sum(n) AS n FROM counted
                  WHERE version IN ({", ".join(map(str, kept))}) GROUP BY 1),
            p AS (SELECT row_content, n FROM counted WHERE version = {prior.version}),
            w AS (SELECT row_content, n FROM counted WHERE version = {now.version})
            SELECT coalesce(sum(least(b.n, p.n) - coalesce(w.n, 0)), 0)
            FROM b JOIN p USING (row_content) LEFT JOIN w USING (row_content)
            WHERE least(b.n, p.n) > coalesce(w.n, 0)
            """
        )
        loss.rows_gone = int(self.cursor.fetchone()[0])
