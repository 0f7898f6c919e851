"""Production-like, adversarial rows for a table, made from its shape (template-owned).

A table's shape is its columns (type, length, precision, nullability,
defaults, enum labels) and its keys, foreign keys and CHECKs: read from the
catalog (``read_shapes``) or from a SQLAlchemy ``Table`` (``shape_of``).
``generate`` turns a shape into rows; ``insert`` writes them over a DBAPI
cursor, and ``fill`` does both for tables in foreign-key order. The climb
(``climb.py``) fills every table of the revisions it checks with them.

The rows hold what years of production hold, on purpose: a NULL in every
nullable column, a duplicate in every column that no unique key covers,
strings at their maximum length, empty and non-ASCII, text that does not
parse as a number, a date, a UUID or JSON, zero, negative and extreme
numbers, timestamps at the edges, every enum label, JSON of several shapes
(``VALUE_KINDS`` lists them). Foreign keys point at rows that exist; unique
keys, enum labels and CHECKs hold. No value looks like a secret: no random
strings, nothing shaped like a key or a password. The same shape and row
count always give the same rows, so a failure reproduces.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql


class _Default:
    """The column's server default: ``DEFAULT`` in the row."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()
Value = str | None | _Default  # Postgres input text, NULL, or the column's default

# What the rows hold, by the kind of column (the docs and the gate's report list these).
VALUE_KINDS: dict[str, tuple[str, ...]] = {
    "every column": ("a NULL where the column allows one", "a duplicate unless a key is unique"),
    "text": (
        "plain words",
        "an empty string",
        "text at the column's maximum length (1000 characters when it has none)",
        "non-ASCII text (accents, CJK, an emoji)",
        "text that is not a number",
        "text that is a number",
        "text that is not a date",
        "text that is not a UUID",
        "text that is not JSON",
        "the word null",
        "spaces around the text",
        "quotes and a backslash",
        "a line break",
    ),
    "integer": ("zero", "one", "minus one", "the type's largest and smallest value"),
    "numeric": (
        "zero",
        "a negative number",
        "the largest and smallest value the precision allows",
        "the smallest step of its scale",
        "NaN where unconstrained",
    ),
    "float": (
        "zero",
        "a negative number",
        "the largest and tiniest magnitude",
        "NaN",
        "Infinity and -Infinity",
    ),
    "boolean": ("true", "false"),
    "date and time": (
        "a leap day",
        "the epoch",
        "year 1",
        "year 9999",
        "infinity and -infinity (dates, timestamps)",
        "midnight and 24:00 (times)",
        "zero and negative intervals",
    ),
    "uuid": ("the nil UUID", "the max UUID", "counted UUIDs"),
    "json": (
        "an empty object",
        "an empty array",
        "JSON null",
        "a string",
        "a number",
        "true",
        "a nested object with non-ASCII text",
        "a mixed array",
    ),
    "enum": ("every label, in order",),
    "bytea": ("empty", "a few bytes with a zero byte"),
    "array": ("an empty array", "an array holding a NULL", "an array of the element's values"),
}

LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
UNBOUNDED_TEXT = 1000  # characters of "text at its maximum length" for text without one
NON_ASCII = "Zoë Ørsted, Ünïcødé 東京 🙂"
TEXT_VALUES = (
    ("plain words", "Ada Lovelace"),
    ("an empty string", ""),
    ("max", None),  # filled in per column: text at its maximum length
    ("non-ASCII text", NON_ASCII),
    ("text that is not a number", "A-17"),
    ("text that is a number", "42"),
    ("text that is not a date", "2024-02-30"),
    ("text that is not a UUID", "123e4567-e89b-12d3-a456-42661417400"),
    ("text that is not JSON", "{'single': quotes}"),
    ("the word null", "null"),
    ("spaces around the text", "  padded  "),
    ("quotes and a backslash", 'O\'Brien says "hi" \\ back'),
    ("a line break", "first line\nsecond line"),
)
INTEGER_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
FLOAT_EXTREMES = {"real": ("3.4e38", "1e-45"), "double precision": ("1.7e308", "5e-324")}
DATES = ("2024-02-29", "1970-01-01", "0001-01-01", "9999-12-31", "infinity", "-infinity")
TIMES = ("12:30:00", "00:00:00", "23:59:59.999999", "24:00:00")
TIMESTAMPS = (
    "2024-02-29 12:30:00",
    "1970-01-01 00:00:00",
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59.999999",
    "infinity",
    "-infinity",
)
INTERVALS = ("1 day", "0", "-1 day", "1 year 2 months 3 days 04:05:06", "00:00:00.000001")
UUIDS = (
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
)
JSON_VALUES = (
    '{"name": "Ada", "tags": ["a", "b"]}',
    "{}",
    "[]",
    "null",
    '"text"',
    "0",
    "-1.5",
    "true",
    '{"nested": {"deep": [1, {"x": null}]}, "name": "Zoë"}',
    '[1, "two", null, {"three": 3}]',
)
# A few types beyond the core ones, each with values Postgres parses.
OTHER_TYPES: dict[str, tuple[str, ...]] = {
    "bytea": ("\\x00ff10", "\\x"),
    "inet": ("192.0.2.1", "2001:db8::1", "0.0.0.0"),
    "cidr": ("192.0.2.0/24", "2001:db8::/32"),
    "macaddr": ("08:00:2b:01:02:03",),
    "tsvector": ("a fat cat", ""),
    "xml": ("<note>hi</note>",),
    "money": ("12.34", "0", "-1.50"),
}
TYPE_ALIASES = {
    "varchar": "character varying",
    "char": "character",
    "bpchar": "character",
    "int": "integer",
    "int4": "integer",
    "int2": "smallint",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "float": "double precision",
    "bool": "boolean",
    "decimal": "numeric",
    "timestamptz": "timestamp with time zone",
    "timetz": "time with time zone",
    "timestamp": "timestamp without time zone",
    "time": "time without time zone",
}
TYPE_PATTERN = re.compile(
    r"^(?P<name>[a-z_][a-z0-9_ ]*?)\s*(?:\((?P<args>[\d,\s]+)\))?"
    r"(?P<zone>\s+with(?:out)?\s+time\s+zone)?$"
)


@dataclass(frozen=True)
class Column:
    """One column: ``type`` is what values are cast to, ``base`` the type under a domain."""

    name: str
    type: str
    nullable: bool = True
    filled_by_server: bool = False  # identity, serial or generated: never written
    has_default: bool = False  # a server default that is worth leaving to the server now and then
    base: str = ""
    labels: tuple[str, ...] = ()  # enum labels, in order (of the element, for an array)

    @property
    def base_type(self) -> str:
        return self.base or self.type


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str  # the referenced table, as Postgres names it (``regclass`` text)
    referenced: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    name: str
    expression: str  # as Postgres writes it, without CHECK
    columns: tuple[str, ...]  # the columns it reads


@dataclass(frozen=True)
class TableShape:
    """What rows of a table must look like. ``name`` is quoted as SQL needs it."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()  # unique constraints and plain unique indexes
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[Check, ...] = ()

    def unique_keys(self) -> list[tuple[str, ...]]:
        return [key for key in (self.primary_key, *self.unique) if key]


@dataclass
class Rows:
    """Generated rows of one table: values of ``columns`` per row, or why there can be none."""

    table: TableShape
    columns: tuple[Column, ...]
    values: list[tuple[Value, ...]]
    wanted: int
    unfillable: str | None = None


@dataclass
class Inserted:
    table: str
    wanted: int
    written: int
    reasons: list[str] = field(default_factory=list)

    def shortfall(self) -> str | None:
        """One line when the table got fewer rows than wanted, saying why."""
        if self.written >= self.wanted:
            return None
        why = "; ".join(dict.fromkeys(self.reasons)) or "rows left out"
        return f"table {self.table} got {self.written} of {self.wanted} rows: {why}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: Value, type_: str) -> str:
    if value is DEFAULT:
        return "DEFAULT"
    if value is None:
        return f"NULL::{type_}"
    assert isinstance(value, str)
    return "'" + value.replace("'", "''") + f"'::{type_}"


# --- what values a column takes --------------------------------------------------------------


def normalized(type_text: str) -> tuple[str, list[int], bool]:
    """``(name, modifiers, is_array)`` of a type as Postgres or SQLAlchemy writes it."""
    text = " ".join(type_text.lower().replace('"', "").split())
    is_array = text.endswith("[]")
    text = text.removesuffix("[]").strip()
    match = TYPE_PATTERN.match(text)
    if not match:
        return text, [], is_array
    name = match["name"].strip()
    if match["zone"]:
        name += " " + " ".join(match["zone"].split())
    name = TYPE_ALIASES.get(name, name)
    if name in ("timestamp", "time"):
        name += " without time zone"
    modifiers = [int(part) for part in (match["args"] or "").replace(" ", "").split(",") if part]
    return name, modifiers, is_array


def text_values(length: int | None) -> list[str]:
    limit = length or UNBOUNDED_TEXT
    longest = (LOREM * (limit // len(LOREM) + 1))[:limit]
    values = [longest if label == "max" else text for label, text in TEXT_VALUES]
    return list(dict.fromkeys(value[:limit] for value in values))


def number_values(name: str, modifiers: list[int]) -> list[str]:
    if name in INTEGER_BITS:
        largest = 2 ** (INTEGER_BITS[name] - 1) - 1
        return ["7", "0", "1", "-1", str(largest), str(-largest - 1)]
    if name in FLOAT_EXTREMES:
        huge, tiny = FLOAT_EXTREMES[name]
        return ["12.5", "0", "-1.5", huge, f"-{huge}", tiny, "NaN", "Infinity", "-Infinity"]
    if not modifiers:  # unconstrained numeric
        return ["12.50", "0", "-1.5", "123456789012345678901234567890.123456789", "0.000001", "NaN"]
    precision, scale = modifiers[0], (modifiers[1] if len(modifiers) > 1 else 0)
    digits = precision - scale
    step = f"0.{'0' * (scale - 1)}1" if scale > 0 else "1"
    largest = ("9" * digits or "0") + ("." + "9" * scale if scale > 0 else "")
    values = [largest, f"-{largest}", step, "0"]
    if digits >= 2:
        values = ["12" + ("." + "5" + "0" * (scale - 1) if scale > 0 else ""), *values, "-1"]
    return list(dict.fromkeys(values))


def time_values(name: str) -> list[str]:
    if name == "date":
        return list(DATES)
    if name.startswith("timestamp"):
        return list(TIMESTAMPS)
    if name.startswith("time"):
        return list(TIMES)
    return list(INTERVALS)


def vector_values(modifiers: list[int]) -> list[str]:
    dimensions = modifiers[0] if modifiers else 3
    return [
        "[" + ",".join(["0.5"] * dimensions) + "]",
        "[" + ",".join(["0"] * dimensions) + "]",
        "[" + ",".join(["-1"] * dimensions) + "]",
    ]


def scalar_values(type_text: str, labels: tuple[str, ...]) -> list[str]:
    """The non-NULL values of a column of this (non-array) type, most telling first."""
    if labels:
        return list(labels)
    name, modifiers, _ = normalized(type_text)
    if name in ("character varying", "character", "text", "citext", "name"):
        return text_values(modifiers[0] if modifiers else None)
    if name in INTEGER_BITS or name in FLOAT_EXTREMES or name == "numeric":
        return number_values(name, modifiers)
    if name == "boolean":
        return ["true", "false"]
    if name == "date" or name.startswith(("timestamp", "time ", "interval")):
        return time_values(name)
    if name == "uuid":
        return list(UUIDS)
    if name in ("json", "jsonb"):
        return list(JSON_VALUES)
    if name in ("vector", "halfvec"):
        return vector_values(modifiers)
    if name in ("bit", "bit varying", "varbit"):
        width = modifiers[0] if modifiers else 8
        return ["1" * width, "0" * width]
    return list(OTHER_TYPES.get(name, ()))


def array_element(text: str) -> str:
    if text == "":
        return '""'
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def column_values(column: Column) -> list[Value]:
    """What the column holds across rows, most telling first (NULL first where it may)."""
    _, _, is_array = normalized(column.base_type)
    if is_array:
        element_type = column.base_type.strip().removesuffix("[]")
        elements = scalar_values(element_type, column.labels)
        values: list[Value] = ["{}"]
        if elements:
            values += ["{" + ",".join(array_element(e) for e in elements[:3]) + "}", "{NULL}"]
    else:
        values = list(scalar_values(column.base_type, column.labels))
    if not values:
        return [None] if column.nullable else ([DEFAULT] if column.has_default else [])
    if len(values) > 1:  # a duplicate, early, so that even a few rows hold one
        values.insert(2, values[0])
    if column.has_default:
        values.insert(1, DEFAULT)
    if column.nullable:
        values.insert(0, None)
    return values


def distinct_value(column: Column, number: int) -> str | None:
    """A value no other row number gets, for a column that a unique key covers alone."""
    name, modifiers, is_array = normalized(column.base_type)
    if is_array or column.labels or name == "boolean":
        return None
    if name in INTEGER_BITS or name == "numeric" or name in FLOAT_EXTREMES:
        scale = modifiers[1] if name == "numeric" and len(modifiers) > 1 else 0
        whole = 1000 + number
        if name == "numeric" and modifiers and len(str(whole)) > modifiers[0] - scale:
            return None
        return str(whole)
    if name in ("character varying", "character", "text", "citext", "name"):
        length = modifiers[0] if modifiers else None
        text = f"row {number}"
        if length is not None and len(text) > length:
            text = base36(number)
            if len(text) > length:
                return None
        return text
    if name == "uuid":
        return f"00000000-0000-4000-8000-{number + 2:012d}"
    if name == "date":
        return (date(2000, 1, 1) + timedelta(days=number)).isoformat()
    if name.startswith("timestamp"):
        return (datetime(2000, 1, 1) + timedelta(minutes=number)).isoformat(sep=" ")
    if name in ("json", "jsonb"):
        return f'{{"row": {number}}}'
    return None


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def offset(table: str, column: str, period: int) -> int:
    """Where a column's values start: fixed per table and column, different between columns."""
    return zlib.crc32(f"{table}.{column}".encode()) % period if period else 0


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """Columns that take their values together: one column, or a foreign key's columns."""

    columns: tuple[str, ...]
    pool: tuple[tuple[Value, ...], ...]
    column: Column | None = None  # the column of a one-column unit


def units_of(
    shape: TableShape,
    written: tuple[Column, ...],
    references: Mapping[ForeignKey, Sequence[tuple[str, ...]]],
) -> tuple[list[Unit], str | None]:
    """The units of the written columns, or why no row can be written."""
    units: list[Unit] = []
    taken: set[str] = set()
    nullable = {column.name for column in written if column.nullable}
    for foreign_key in shape.foreign_keys:
        if taken & set(foreign_key.columns):
            continue
        targets: list[tuple[Value, ...]] = list(references.get(foreign_key, ()))
        if set(foreign_key.columns) <= nullable:
            targets.insert(0, (None,) * len(foreign_key.columns))
        if not targets:
            return units, f"{describe(foreign_key)}: no row to point at"
        units.append(Unit(foreign_key.columns, tuple(targets)))
        taken |= set(foreign_key.columns)
    for column in written:
        if column.name in taken:
            continue
        values = column_values(column)
        if not values:
            return units, f"column {column.name} ({column.type}): no value the gate can make up"
        if any(column.name in key for key in shape.unique_keys()):  # keys repeat no value
            values = list(dict.fromkeys(values))
        units.append(Unit((column.name,), tuple((value,) for value in values), column))
    return units, None


def generate(
    shape: TableShape,
    count: int,
    references: Mapping[ForeignKey, Sequence[tuple[str, ...]]] | None = None,
    first_row: int = 0,
) -> Rows:
    """``count`` rows of ``shape``; ``references`` are the keys each foreign key may point at.

    Row numbers start at ``first_row``: a caller that adds rows to a table that
    has some already starts past them, so that unique values do not repeat.
    """
    written = tuple(column for column in shape.columns if not column.filled_by_server)
    units, unfillable = units_of(shape, written, references or {})
    if unfillable:
        return Rows(shape, written, [], count, unfillable)
    unit_of = {name: unit for unit in units for name in unit.columns}
    keys = [list(dict.fromkeys(unit_of[name] for name in key if name in unit_of))
            for key in shape.unique_keys()]  # fmt: skip
    alone = {units[0] for units in keys if len(units) == 1}
    composite = [units for units in keys if len(units) > 1]

    def index(unit: Unit, number: int) -> int:
        if unit in alone:
            return number
        key = next((key for key in composite if unit in key), None)
        if key is None:
            return number + offset(shape.name, unit.columns[0], len(unit.pool))
        # Digits of the row number in a mixed radix, the smallest pool fastest: the tuples
        # differ, the fastest column holds every value of its pool and repeats one, the
        # slower ones repeat theirs.
        place = 1
        ordered = sorted(key, key=lambda part: len(part.pool))
        for position, part in enumerate(ordered):
            last = position == len(ordered) - 1
            radix = len(part.pool) if last else min(len(part.pool), max(2, count - 1))
            if part is unit:
                return (number // place) % radix
            place *= radix
        return number

    def values(unit: Unit, number: int) -> tuple[Value, ...]:
        at = index(unit, number)
        if unit in alone and at >= len(unit.pool) and unit.column is not None:
            distinct = distinct_value(unit.column, number)
            if distinct is not None:
                return (distinct,)
        return unit.pool[at % len(unit.pool)]

    rows = []
    for number in range(first_row, first_row + count):
        row: dict[str, Value] = {}
        for unit in units:
            row.update(zip(unit.columns, values(unit, number), strict=True))
        rows.append(tuple(row[column.name] for column in written))
    return Rows(shape, written, rows, count)


def describe(foreign_key: ForeignKey) -> str:
    return f"foreign key ({', '.join(foreign_key.columns)}) to {foreign_key.table}"


# --- the catalog -----------------------------------------------------------------------------

COLUMNS_QUERY = """
SELECT c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod),
       format_type(b.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
       NOT (a.attnotnull OR t.typnotnull),
       a.attidentity <> '' OR a.attgenerated <> ''
           OR coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%', false),
       d.adbin IS NOT NULL,
       (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e
        WHERE e.enumtypid = CASE WHEN b.typcategory = 'A' THEN b.typelem ELSE b.oid END)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.oid = ANY(%s::regclass[])
ORDER BY c.oid, a.attnum
"""
KEYS_QUERY = """
SELECT k.conrelid::regclass::text, k.contype::text, k.conname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       k.confrelid::regclass::text,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i),
       pg_get_expr(k.conbin, k.conrelid)
FROM pg_constraint k
WHERE k.conrelid = ANY(%s::regclass[]) AND k.contype IN ('p', 'u', 'f', 'c')
UNION ALL
SELECT i.indrelid::regclass::text, 'u', c.relname,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY u(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n ORDER BY u.o),
       NULL, NULL, NULL
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY(%s::regclass[]) AND i.indisunique AND i.indexprs IS NULL
  AND i.indpred IS NULL
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY 1, 3
"""


def read_shapes(cursor: Any, tables: Sequence[str]) -> dict[str, TableShape]:
    """The shapes of ``tables`` (names as ``regclass`` accepts them), by ``regclass`` text."""
    if not tables:
        return {}
    names = list(tables)
    cursor.execute(COLUMNS_QUERY, (names,))
    columns: dict[str, list[Column]] = {}
    for table, name, type_, base, nullable, by_server, has_default, labels in cursor.fetchall():
        columns.setdefault(table, []).append(
            Column(name, type_, nullable, by_server, has_default and not by_server, base,
                   tuple(labels or ()))
        )  # fmt: skip
    cursor.execute(KEYS_QUERY, (names, names))
    parts: dict[str, dict[str, list[Any]]] = {
        table: {"p": [], "u": [], "f": [], "c": []} for table in columns
    }
    for table, kind, name, keys, referenced_table, referenced, expression in cursor.fetchall():
        found = parts.setdefault(table, {"p": [], "u": [], "f": [], "c": []})
        if kind == "f":
            found["f"].append(ForeignKey(tuple(keys), referenced_table, tuple(referenced)))
        elif kind == "c":
            found["c"].append(Check(name, expression, tuple(keys)))
        else:
            found[kind].append(tuple(keys))
    return {
        table: TableShape(
            table,
            tuple(found_columns),
            primary_key=next(iter(parts[table]["p"]), ()),
            unique=tuple(dict.fromkeys(parts[table]["u"])),
            foreign_keys=tuple(parts[table]["f"]),
            checks=tuple(parts[table]["c"]),
        )
        for table, found_columns in columns.items()
    }


def shape_of(table: Table) -> TableShape:
    """The shape of a SQLAlchemy ``Table``, as models (or an old release's models) declare it."""
    dialect = postgresql.dialect()
    serial = table.autoincrement_column
    columns = []
    for column in table.columns:
        labels = tuple(column.type.enums) if isinstance(column.type, sqltypes.Enum) else ()
        if isinstance(column.type, sqltypes.ARRAY) and isinstance(
            column.type.item_type, sqltypes.Enum
        ):
            labels = tuple(column.type.item_type.enums)
        by_server = column is serial or column.identity is not None or column.computed is not None
        columns.append(
            Column(
                column.name,
                column.type.compile(dialect=dialect),
                nullable=bool(column.nullable) and not column.primary_key,
                filled_by_server=by_server,
                has_default=column.server_default is not None and not by_server,
                labels=labels,
            )
        )
    primary_key = tuple(column.name for column in table.primary_key.columns)
    unique = [
        tuple(column.name for column in constraint.columns)
        for constraint in table.constraints
        if type(constraint).__name__ == "UniqueConstraint"
    ]
    unique += [(column.name,) for column in table.columns if column.unique]
    unique += [
        tuple(column.name for column in index.columns)
        for index in table.indexes
        if index.unique and len(index.columns) == len(index.expressions)
    ]
    foreign_keys = tuple(
        ForeignKey(
            tuple(column.name for column in constraint.columns),
            constraint.referred_table.fullname,
            tuple(element.column.name for element in constraint.elements),
        )
        for constraint in table.foreign_key_constraints
    )
    return TableShape(
        quote(table.name) if table.schema is None else f"{quote(table.schema)}.{quote(table.name)}",
        tuple(columns),
        primary_key=primary_key,
        unique=tuple(dict.fromkeys(key for key in unique if key != primary_key)),
        foreign_keys=foreign_keys,
    )


# --- writing them ----------------------------------------------------------------------------


def fetch_references(
    cursor: Any, shape: TableShape, limit: int
) -> dict[ForeignKey, list[tuple[str, ...]]]:
    """Up to ``limit`` keys of existing rows for each foreign key, as text, in a fixed order."""
    found = {}
    for foreign_key in shape.foreign_keys:
        columns = ", ".join(f"{quote(name)}::text" for name in foreign_key.referenced)
        present = " AND ".join(f"{quote(name)} IS NOT NULL" for name in foreign_key.referenced)
        cursor.execute(
            f"SELECT DISTINCT {columns} FROM {foreign_key.table} WHERE {present} "
            f"ORDER BY {', '.join(str(n + 1) for n in range(len(foreign_key.referenced)))} "
            f"LIMIT {int(limit)}"
        )
        found[foreign_key] = [tuple(row) for row in cursor.fetchall()]
    return found


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def masked(message: str) -> str:
    """A message without the values it quotes (Postgres quotes a value it cannot parse)."""
    return re.sub(r'"[^"]*"', '"…"', message)


def rejected_by_checks(cursor: Any, rows: Rows) -> dict[int, list[Check]]:
    """Which rows each CHECK rejects, asked of the server (None when it cannot tell)."""
    names = {column.name for column in rows.columns}
    checks = [check for check in rows.table.checks if set(check.columns) <= names]
    if not checks or not rows.values:
        return {}
    listed = ", ".join(['"gate row"', *(quote(column.name) for column in rows.columns)])
    values = ",\n".join(
        "(" + ", ".join([str(number), *(
            literal(None if value is DEFAULT else value, column.type)
            for column, value in zip(rows.columns, row, strict=True)
        )]) + ")"
        for number, row in enumerate(rows.values)
    )  # fmt: skip
    tests = ", ".join(f"({check.expression}) IS FALSE" for check in checks)
    cursor.execute(f'SELECT "gate row", {tests} FROM (VALUES {values}) AS v({listed})')
    return {
        number: [check for check, failed in zip(checks, fails, strict=True) if failed]
        for number, *fails in cursor.fetchall()
        if any(fails)
    }


def satisfy_checks(cursor: Any, rows: Rows) -> list[str]:
    """Give rows that a CHECK rejects tamer values for its columns (NULL, then plain), and
    drop those that no value saves; returns why rows were dropped."""
    columns = {column.name: index for index, column in enumerate(rows.columns)}
    for attempt in ("null", "plain"):
        rejected = rejected_by_checks(cursor, rows)
        if not rejected:
            return []
        for number, checks in rejected.items():
            row = list(rows.values[number])
            for check in checks:
                for name in check.columns:
                    column = rows.columns[columns[name]]
                    pool = [v for v in column_values(column) if isinstance(v, str)]
                    if attempt == "null" and column.nullable:
                        row[columns[name]] = None
                    elif attempt == "plain" and pool:
                        row[columns[name]] = pool[0]
            rows.values[number] = tuple(row)
    rejected = rejected_by_checks(cursor, rows)
    rows.values = [row for number, row in enumerate(rows.values) if number not in rejected]
    return [
        f"CHECK {check.name} ({check.expression}) rejects the values the gate makes up"
        for checks in rejected.values()
        for check in checks
    ]


def insert_sql(rows: Rows, values: Iterable[tuple[Value, ...]]) -> str:
    listed = ", ".join(quote(column.name) for column in rows.columns)
    tuples = ",\n".join(
        "(" + ", ".join(literal(value, column.type)
                        for column, value in zip(rows.columns, row, strict=True)) + ")"
        for row in values
    )  # fmt: skip
    if not rows.columns:
        return f"INSERT INTO {rows.table.name} DEFAULT VALUES ON CONFLICT DO NOTHING"
    return f"INSERT INTO {rows.table.name} ({listed}) VALUES {tuples} ON CONFLICT DO NOTHING"


def insert(cursor: Any, rows: Rows) -> Inserted:
    """Write the rows over ``cursor`` (autocommit), leaving out those Postgres refuses.

    One statement when every row goes in; else one savepoint per row, so each
    refused row costs only itself. Rows that repeat a unique key are left out.
    """
    done = Inserted(rows.table.name, rows.wanted, 0)
    if rows.unfillable:
        done.reasons.append(rows.unfillable)
        return done
    try:
        done.reasons += satisfy_checks(cursor, rows)
    except Exception as error:  # a CHECK that errors on a value: the rows find out one by one
        cursor.connection.rollback()
        done.reasons.append(f"a CHECK fails on the values: {masked(first_line(error))}")
    if not rows.values:
        return done
    if not rows.columns:
        cursor.execute("BEGIN")
        for _ in rows.values:
            cursor.execute(insert_sql(rows, []))
            done.written += cursor.rowcount
        cursor.execute("COMMIT")
        return done
    try:
        cursor.execute(insert_sql(rows, rows.values))
        done.written = cursor.rowcount
    except Exception:
        cursor.connection.rollback()
        done.written = insert_one_by_one(cursor, rows, done.reasons)
    if done.written < len(rows.values) and not done.reasons:
        done.reasons.append("rows that repeat a unique key were left out")
    return done


def insert_one_by_one(cursor: Any, rows: Rows, reasons: list[str]) -> int:
    written = 0
    cursor.execute("BEGIN")
    for row in rows.values:
        cursor.execute("SAVEPOINT gate_row")
        try:
            cursor.execute(insert_sql(rows, [row]))
            written += cursor.rowcount
            cursor.execute("RELEASE SAVEPOINT gate_row")
        except Exception as error:
            cursor.execute("ROLLBACK TO SAVEPOINT gate_row")
            reasons.append(masked(first_line(error)))
    cursor.execute("COMMIT")
    return written


def foreign_key_order(shapes: Mapping[str, TableShape]) -> Iterator[TableShape]:
    """Referenced tables before the tables that point at them; a cycle in the given order."""
    done: set[str] = set()
    pending = dict(shapes)
    while pending:
        ready = [
            name
            for name, shape in pending.items()
            if all(fk.table in done or fk.table not in pending or fk.table == name
                   for fk in shape.foreign_keys)
        ]  # fmt: skip
        for name in ready or [next(iter(pending))]:
            done.add(name)
            yield pending.pop(name)


def fill(cursor: Any, tables: Sequence[str], count: int) -> list[Inserted]:
    """``count`` rows into each of ``tables``, referenced tables first."""
    written = []
    for shape in foreign_key_order(read_shapes(cursor, tables)):
        references = fetch_references(cursor, shape, count)
        written.append(insert(cursor, generate(shape, count, references)))
    return written
