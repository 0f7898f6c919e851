"""What an upgrade makes possible, and rows that use it (template-owned).

Production uses what a revision allows the day after it deploys: longer text,
wider numbers, a new enum label, a NULL where NOT NULL went, a duplicate where
a unique key went, a value that a dropped CHECK forbade, a reference to no row
where a foreign key went. A downgrade that takes the allowance back then loses
those rows or cannot run on them. So after each upgrade, the climb on rows
(``on_rows.py``) reads what the revision allowed from the schema lines it
removed (``allowances``), and writes one row per allowance that uses it
(``use``): a row of the table's generated rows (``rows.py``) with the
allowance's value in its columns, deterministic as the rest. A value the new
schema refuses is not written: then nothing was allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .data_state import sql_text
from .rows import (
    UNBOUNDED_TEXT,
    Column,
    Rows,
    TableShape,
    Value,
    column_values,
    fetch_references,
    first_line,
    generate,
    insert_sql,
    literal,
    masked,
    normalized,
    quote,
    read_shapes,
)
from .schema_state import Change, part_of

FITS = """
CREATE OR REPLACE FUNCTION pg_temp.gate_fits(value text, new_type text, old_type text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    same boolean;
BEGIN
    EXECUTE format('SELECT $1::%s::%s::%s::text = $1::%s::text',
                   new_type, old_type, new_type, new_type) INTO same USING value;
    RETURN coalesce(same, false);
EXCEPTION WHEN OTHERS THEN
    RETURN false;
END $$;
"""
# The relations' names as schema lines write them (``public.customer``).
LINE_NAMES = """
SELECT c.oid::regclass::text, n.nspname || '.' || c.relname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(%s::oid[])
"""
ENUM_COLUMNS = """
SELECT a.attrelid::regclass::text, a.attname::text FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  AND to_regtype(%s) IN (t.oid, t.typelem, t.typbasetype)
"""
COLUMN_ENDS = (" not null", " default ", " identity", " generated")
CONSTRAINT = re.compile(r"^constraint (.+) \((unique|primary key|check|foreign key)\) on ")
ENUM = re.compile(r"^type (.+) \(enum: (.*)\)$")
LISTED = re.compile(r"\(([^()]*)\)")
REFERENCES = re.compile(r"^FOREIGN KEY \((.+?)\) REFERENCES (.+?)\((.+?)\)")
TEXT_TYPES = ("character varying", "character", "text", "citext", "name")
ROOM_TEXT = "room to grow "  # longer text than the old type held: not a prefix of its values
TRIES = 10  # candidate rows per allowance, at most


@dataclass(frozen=True)
class Allowance:
    """One thing a revision allows on a table; ``kind`` says what, ``old`` what it was."""

    table: str  # as the gate's copies name it (``regclass`` text)
    columns: tuple[str, ...]
    kind: str  # "type", "null", "labels", "duplicate", "check", "reference"
    old: str = ""  # the old type, the enum, the CHECK's expression, the referenced table
    names: tuple[str, ...] = ()  # the new labels, the CHECK's name, the referenced columns


class NoValue(Exception):
    """The gate makes up no value of a column's new type; the message names the column."""


@dataclass
class Used:
    """What the gate wrote into one table to use what a revision allowed."""

    table: str
    wrote: list[str] = field(default_factory=list)  # "40-character values into customer.code"
    notes: list[str] = field(default_factory=list)  # why an allowance got no row


def unquoted(names: str) -> tuple[str, ...]:
    return tuple(name.strip().strip('"').replace('""', '"') for name in names.split(","))


def column_type(definition: str) -> tuple[str, bool]:
    """A column line's type and whether it is NOT NULL, from what follows the column's name."""
    end = min([definition.find(mark) for mark in COLUMN_ENDS if mark in definition]
              or [len(definition)])  # fmt: skip
    return definition[:end], " not null" in definition


def allowances(
    shape: TableShape, line_name: str, change: Change, labels: Mapping[str, tuple[str, ...]]
) -> list[Allowance]:
    """What the change allows on the table that ``shape`` describes now: from the lines it
    removed of that table (``line_name``), and the enums that gained ``labels``."""
    table = shape.name
    found: list[Allowance] = []
    added = [line for line in change.added if part_of(line, line_name)]
    by_length = sorted(shape.columns, key=lambda column: -len(column.name))
    for line in sorted(change.removed):  # in a fixed order, as the rows are
        if not part_of(line, line_name):
            continue
        if line.startswith(f"column {line_name}."):
            rest = line.removeprefix(f"column {line_name}.")
            column = next((c for c in by_length if rest.startswith(f"{c.name} ")), None)
            prefix = f"column {line_name}.{column.name} " if column else ""
            now = next((a for a in added if a.startswith(prefix)), None) if column else None
            if column is None or now is None:
                continue
            old_type, was_not_null = column_type(line.removeprefix(prefix))
            new_type, _ = column_type(now.removeprefix(prefix))
            if old_type != new_type:
                found.append(Allowance(table, (column.name,), "type", old_type))
            if was_not_null and column.nullable:
                found.append(Allowance(table, (column.name,), "null"))
        elif match := CONSTRAINT.match(line):
            name, kind = match.groups()
            definition = line.partition(": ")[2].removesuffix(" NOT VALID")
            if kind == "check":
                found.append(Allowance(table, (), "check", definition.removeprefix("CHECK "),
                                       (name,)))  # fmt: skip
            elif kind == "foreign key" and (key := REFERENCES.match(definition)):
                columns, referenced, referenced_columns = key.groups()
                found.append(Allowance(table, unquoted(columns), "reference", referenced,
                                       unquoted(referenced_columns)))  # fmt: skip
            elif kind in ("unique", "primary key") and (listed := LISTED.search(definition)):
                found.append(Allowance(table, unquoted(listed.group(1)), "duplicate"))
        elif line.startswith("index ") and "CREATE UNIQUE INDEX" in line and " WHERE " not in line:
            listed = LISTED.search(line.partition(" USING ")[2])
            if listed and "(" not in listed.group(1):
                found.append(Allowance(table, unquoted(listed.group(1)), "duplicate"))
    for column in shape.columns:
        if new := labels.get(column.base_type.removesuffix("[]"), ()):
            found.append(Allowance(table, (column.name,), "labels", column.base_type, new))
    return list(dict.fromkeys(found))


def new_labels(change: Change) -> dict[str, tuple[str, ...]]:
    """Enum types that gained labels: type name to the labels that are new."""
    before = {match[1]: match[2].split(", ") for line in change.removed
              if (match := ENUM.match(line))}  # fmt: skip
    found = {}
    for line in change.added:
        match = ENUM.match(line)
        if match and match[1] in before:
            gained = tuple(label for label in match[2].split(", ") if label not in before[match[1]])
            if gained:
                found[match[1]] = gained
    return found


class RoomWriter:
    """Writes, after an upgrade, the rows that use what it allowed, over the gate's cursor."""

    def __init__(self, cursor: Any, count: int) -> None:
        self.cursor = cursor
        self.count = count
        self.next_row = count  # row numbers past every table's generated rows
        self.rows = max(count, TRIES)  # rows made up per table, one of which uses an allowance
        self.ready = False

    def use(self, change: Change, tables: Mapping[str, int]) -> list[Used]:
        """Rows that use what ``change`` allowed, in the ``tables`` (name to oid) with rows."""
        labels = new_labels(change)
        if not change.removed or not tables:
            return []
        if not self.ready:
            self.cursor.execute(FITS)
            self.ready = True
        self.cursor.execute(LINE_NAMES, (list(tables.values()),))
        line_names = dict(self.cursor.fetchall())
        touched = {table for table, line_name in line_names.items()
                   if any(part_of(line, line_name) for line in change.removed)}  # fmt: skip
        for enum in labels:
            self.cursor.execute(ENUM_COLUMNS, (list(tables.values()), enum))
            touched |= {table for table, _ in self.cursor.fetchall()}
        if not touched:
            return []
        shapes = read_shapes(self.cursor, sorted(touched))
        by_type = self.enum_type_names(labels)
        used = []
        for table, shape in shapes.items():
            found = allowances(shape, line_names.get(table, ""), change, by_type)
            if found:
                used.append(self.write(shape, found))
        return used

    def enum_type_names(self, labels: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """The new labels by the enum's name as a column's type reads (``format_type``)."""
        found = {}
        for enum, gained in labels.items():
            self.cursor.execute("SELECT format_type(to_regtype(%s), NULL)", (enum,))
            row = self.cursor.fetchone()
            if row and row[0]:
                found[row[0]] = gained
        return found

    def write(self, shape: TableShape, found: Iterable[Allowance]) -> Used:
        used = Used(shape.name)
        references = fetch_references(self.cursor, shape, self.count)
        base = generate(shape, self.rows, references, first_row=self.next_row)
        self.next_row += len(base.values) + TRIES
        if base.unfillable or not base.values:
            used.notes.append(f"no row to use what the upgrade allowed in {shape.name}: "
                              f"{base.unfillable or 'no row the gate can make up'}")  # fmt: skip
            return used
        for allowance in found:
            try:
                if wrote := self.use_one(shape, base, allowance):
                    used.wrote.append(wrote)
            except NoValue as missing:
                used.notes.append(str(missing))
            except Exception as error:  # a value or an expression the server refuses to read
                used.notes.append(
                    f"no row to use what the upgrade allowed in {place(shape, allowance)}: "
                    f"{masked(first_line(error))}"
                )
        return used

    def use_one(self, shape: TableShape, base: Rows, allowance: Allowance) -> str | None:
        """Write one row that uses ``allowance``; returns what it holds, or None when the new
        schema refuses every such row (then nothing was allowed)."""
        columns = list(base.columns)
        columns += [column for column in shape.columns
                    if column.name in allowance.columns and column not in columns]  # fmt: skip
        position = {column.name: index for index, column in enumerate(columns)}
        rows = [row + (None,) * (len(columns) - len(row)) for row in base.values]
        overrides = allowance.kind in ("type", "null", "labels", "duplicate")
        target = [column for column in columns if overrides and column.name in allowance.columns]
        values, condition = self.candidates(shape, allowance, target)
        if values is None:
            raise NoValue(f"column {place(shape, allowance)} ({target[0].type}): no value the "
                          "gate can make up to use what the upgrade allowed")  # fmt: skip
        candidates = []
        for number, value in enumerate(values):
            row = list(rows[number % len(rows)])
            for column, item in zip(target, value, strict=True):
                row[position[column.name]] = item
            candidates.append(tuple(row))
        if condition:
            candidates = self.matching(columns, candidates, condition)
        written = Rows(shape, tuple(columns), [], 1)
        for row in candidates[:TRIES]:
            # Whether the row holds the values as written (a trigger or a rule may change them).
            held = " AND ".join(
                f"{quote(column.name)} IS NOT DISTINCT FROM "
                f"{literal(row[position[column.name]], column.type)}"
                for column in target
            )
            try:
                self.cursor.execute(f"{insert_sql(written, [row])} RETURNING {held or 'true'}")
            except Exception:  # the new schema refuses it: try the next one
                continue
            if self.cursor.rowcount and self.cursor.fetchone()[0]:
                value = row[position[target[0].name]] if target else None
                return f"{described(allowance, target, value)} into {place(shape, allowance)}"
        return None

    def candidates(
        self, shape: TableShape, allowance: Allowance, target: list[Column]
    ) -> tuple[list[tuple[Value, ...]] | None, str]:
        """Values for the allowance's columns (None when the gate can make up none), and the
        condition a row must meet to use the allowance (SQL over the row's columns)."""
        kind = allowance.kind
        if kind == "type":
            column = target[0]
            pool = [(value,) for value in column_values(column) if isinstance(value, str)]
            name, modifiers, is_array = normalized(column.base_type)
            if name in TEXT_TYPES and not is_array:  # the longest text, unlike the old longest
                longest = modifiers[0] if modifiers else UNBOUNDED_TEXT
                pool.insert(0, ((ROOM_TEXT * (longest // len(ROOM_TEXT) + 1))[:longest],))
            old = f"{sql_text(column.type)}, {sql_text(allowance.old)}"
            return pool or None, f"NOT pg_temp.gate_fits({quote(column.name)}::text, {old})"
        if kind == "null":
            return [(None,)] * TRIES, ""
        if kind == "labels":
            is_array = target[0].base_type.endswith("[]")
            return [("{" + label + "}" if is_array else label,) for label in allowance.names], ""
        if kind == "duplicate":
            if len(target) != len(allowance.columns):
                return [], ""
            present = " AND ".join(f"{quote(name)} IS NOT NULL" for name in allowance.columns)
            listed = ", ".join(f"{quote(column.name)}::text" for column in target)
            order = ", ".join(str(number + 1) for number in range(len(target)))
            self.cursor.execute(f"SELECT DISTINCT {listed} FROM {shape.name} WHERE {present} "
                                f"ORDER BY {order} LIMIT {TRIES}")  # fmt: skip
            return [tuple(row) for row in self.cursor.fetchall()], ""
        if kind == "check":
            return [()] * self.rows, f"({allowance.old}) IS FALSE"
        pairs = " AND ".join(
            f"r.{quote(referenced)} = v.{quote(column)}"
            for column, referenced in zip(allowance.columns, allowance.names, strict=False)
        )
        present = " AND ".join(f"v.{quote(column)} IS NOT NULL" for column in allowance.columns)
        missing = f"NOT EXISTS (SELECT FROM {allowance.old} r WHERE {pairs})"
        return [()] * self.rows, f"{present} AND {missing}"

    def matching(
        self, columns: list[Column], rows: list[tuple[Value, ...]], condition: str
    ) -> list[tuple[Value, ...]]:
        """The rows that meet ``condition``, asked of the server, in their order."""
        listed = ", ".join(['"gate row"', *(quote(column.name) for column in columns)])
        values = ",\n".join(
            "(" + ", ".join([str(number), *(
                literal(None if not isinstance(value, str) else value, column.type)
                for column, value in zip(columns, row, strict=True)
            )]) + ")"
            for number, row in enumerate(rows)
        )  # fmt: skip
        self.cursor.execute(
            f'SELECT "gate row" FROM (VALUES {values}) AS v({listed}) WHERE {condition} '
            'ORDER BY "gate row"'
        )
        return [rows[number] for (number,) in self.cursor.fetchall()]


def described(allowance: Allowance, target: list[Column], value: Value) -> str:
    """What the row written for ``allowance`` holds, without the value."""
    kind = allowance.kind
    if kind == "type":
        if normalized(target[0].base_type)[0] in TEXT_TYPES and isinstance(value, str):
            return f"{len(value)}-character values"
        return f"values {allowance.old} cannot hold"
    if kind == "null":
        return "NULLs"
    if kind == "labels":
        return f"the new labels of {allowance.old}"
    if kind == "duplicate":
        return f"duplicates of ({', '.join(allowance.columns)})"
    if kind == "check":
        return f"values CHECK {allowance.names[0]} forbade"
    return f"references to missing rows of {allowance.old}"


def place(shape: TableShape, allowance: Allowance) -> str:
    if len(allowance.columns) == 1 and allowance.kind != "duplicate":
        return f"{shape.name}.{allowance.columns[0]}"
    return shape.name
