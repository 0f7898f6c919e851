"""The models against the database at head, by definition (template-owned).

``alembic check`` compares through Alembic's comparators, and they leave
things out: a CHECK on an existing table (``checkconstraint_byname`` is
opt-in), an index's predicate, method or operator class, a column's
collation. So the gate also builds the models' schema with ``create_all`` on a
scratch database of its server, reads it and the database at head with its
schema reader (``schema_state.py``), and names, table by table, each column,
index and constraint whose definition differs. Postgres renders both sides
(``pg_get_constraintdef``, ``pg_get_indexdef``, ``pg_get_expr``), so what
SQLAlchemy and a revision merely spell differently reads the same.

What may differ and is not a difference: column order (``ADD COLUMN``
appends), Alembic's version table, what an extension owns, tables, columns and
objects that ``env_hooks.py``'s ``include_name`` and ``include_object`` hide (a
retired column, say), a constraint's name that Postgres generated (the models
or a revision left it unnamed), a primary key's name (a renamed table keeps
its own), the sequence a SERIAL column's default names, and triggers (no
model declares one). Tables and objects missing on one side are ``alembic
check``'s to name.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import SQLModel

from .project import PACKAGE, engine_for, env_hooks
from .schema_state import SchemaReader, own_connection, part_of
from .servers import PostgresServer, temporary_database

# What the models use that ``create_all`` does not make, copied from the database at head
# in this order: schemas, extensions, enum types (a model may use one with
# create_type=False), and functions a default or CHECK may call.
PREREQUISITES = r"""
SELECT statement FROM (
    SELECT 1, 0::oid, format('CREATE SCHEMA IF NOT EXISTS %I', nspname) FROM pg_namespace
    WHERE oid >= 16384 AND nspname !~ '^pg_'
    UNION ALL
    SELECT 2, e.oid, format('CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA %I', e.extname,
        n.nspname)
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.oid >= 16384
    UNION ALL
    SELECT 3, t.oid, format('CREATE TYPE %I.%I AS ENUM (%s)', n.nspname, t.typname,
        (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
         FROM pg_enum e WHERE e.enumtypid = t.oid))
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.oid >= 16384 AND t.typtype = 'e' AND NOT EXISTS (
        SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
        AND d.deptype = 'e')
    UNION ALL
    SELECT 4, p.oid, pg_get_functiondef(p.oid) FROM pg_proc p
    WHERE p.oid >= 16384 AND p.prokind IN ('f', 'p')
      AND p.pronamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname LIKE 'pg\_%')
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')
) prerequisites (step, oid, statement)
ORDER BY step, oid
"""
# The names Postgres gives a constraint the models leave unnamed (``order_pkey``,
# ``order_total_cents_check1``, PostgreSQL 18's ``order_id_not_null``).
GENERATED_NAME = re.compile(r"_(pkey|key|fkey|check|excl|not_null)\d*$")
SERIAL_DEFAULT = re.compile(r"nextval\('(?:[^']|'')+'::regclass\)")
# Alembic's ``include_object`` kinds, by the kind a constraint line names.
OBJECT_KINDS = {
    "unique": "unique_constraint",
    "foreign key": "foreign_key_constraint",
    "check": "check_constraint",
}
HOW_TO_FIX = (
    "autogenerate writes what it sees (`uv run alembic revision --autogenerate -m "
    '"..."`); write the rest into a revision by hand (docs/models.md, "Autogenerate still '
    'cannot see")'
)


class NotCompared(Exception):
    """The models' schema could not be built; the message is one line that says why."""


@dataclass(frozen=True)
class Part:
    """A column, index or constraint of a table, and its definition."""

    category: str  # "column", "index" or "constraint"
    name: str
    definition: str
    kind: str = ""  # a constraint's: "check", "unique", "primary key"...

    @property
    def key(self) -> tuple[str, str]:
        return self.category, self.name

    def __str__(self) -> str:
        return f"{self.category} {self.name}" + (f" ({self.kind})" if self.kind else "")


def parts(lines: frozenset[str], table: str) -> dict[tuple[str, str], Part]:
    """The columns, indexes and constraints of ``table`` (``public.order``), by kind and name."""
    found = {}
    for line in lines:
        if not part_of(line, table) or line.startswith("trigger "):
            continue
        head, _, definition = line.partition(": ")
        if line.startswith("column "):
            name, _, definition = line.removeprefix(f"column {table}.").partition(" ")
            part = Part("column", name, SERIAL_DEFAULT.sub("nextval(<its sequence>)", definition))
        elif line.startswith("index "):
            qualified = head.removeprefix("index ").removesuffix(f" on {table}")
            part = Part("index", qualified.split(".", 1)[-1], definition)
        else:  # constraint NAME (KIND) on TABLE: DEFINITION
            named = head.removeprefix("constraint ").removesuffix(f" on {table}")
            name, _, kind = named.rpartition(" (")
            part = Part("constraint", name, definition, kind.removesuffix(")"))
        found[part.key] = part
    return found


def build_models_schema(head: Engine, scratch: Engine) -> None:
    """The models' schema on ``scratch``: what they need from ``head`` first, then
    ``create_all``."""
    source, target = own_connection(head), own_connection(scratch)
    try:
        cursor = source.cursor()
        cursor.execute(PREREQUISITES)
        statements = [statement for (statement,) in cursor.fetchall()]
        cursor = target.cursor()
        cursor.execute("SET check_function_bodies = off")
        for statement in statements:
            try:
                cursor.execute(statement)
            except Exception:  # a function on a table's row type, say: no model needs it
                continue
    finally:
        source.close()
        target.close()
    try:
        SQLModel.metadata.create_all(scratch)
    except sa.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        raise NotCompared(
            "not compared by definition: the models' schema could not be built on a "
            f"scratch database: {reason[0] if reason else type(error).__name__}"
        ) from None


def schema_lines(engine: Engine) -> frozenset[str]:
    reader = SchemaReader(engine)
    try:
        return reader.lines()
    finally:
        reader.close()


class Filters:
    """``env_hooks.py``'s ``include_name`` and ``include_object``, as autogenerate applies them."""

    def __init__(self) -> None:
        autogenerate = importlib.import_module(f"{PACKAGE}.db.autogenerate")
        options = autogenerate.hook_options(env_hooks())
        self.include_name = options["include_name"]
        self.include_object = options["include_object"]

    def table(self, table: sa.Table) -> bool:
        return bool(
            self.include_name(table.schema, "schema", {})
            and self.include_name(table.name, "table", {"schema_name": table.schema})
            and self.include_object(table, table.name, "table", False, None)
        )

    def part(self, table: sa.Table, part: Part, in_models: bool) -> bool:
        """Whether autogenerate compares this part: its name as ``include_name`` sees it, and
        its object as ``include_object`` does; one the models lack is asked about as a
        reflected object of its name, as Alembic asks (a hook that cannot tell compares it)."""
        kind = OBJECT_KINDS.get(part.kind) if part.kind else part.category
        if kind is None:
            return True  # a primary key or an exclusion constraint: Alembic asks no hook
        found = model_object(table, part) if in_models else None
        parents = {
            "schema_name": table.schema,
            "table_name": table.name,
            "schema_qualified_table_name": table.fullname,
        }
        try:
            if not self.include_name(part.name, kind, parents):
                return False
            if found is not None:
                return bool(self.include_object(found, part.name, kind, False, None))
            return bool(self.include_object(stand_in(part), part.name, kind, True, None))
        except Exception:
            return True


def model_object(table: sa.Table, part: Part) -> Any:
    if part.category == "column":
        return table.columns.get(part.name)
    named = table.indexes if part.category == "index" else table.constraints
    return next((each for each in named if each.name == part.name), None)


def stand_in(part: Part) -> Any:
    if part.category == "column":
        return sa.Column(part.name)
    if part.category == "index":
        return sa.Index(part.name)
    return sa.UniqueConstraint(name=part.name)


def renamed_only(models_only: list[Part], head_only: list[Part]) -> set[tuple[str, str]]:
    """Pairs that differ only in a name nothing depends on: one Postgres generated, on either
    side (the models or a revision left the constraint unnamed), or a primary key's (a table
    has one; a renamed table keeps its old one, docs/safe-migrations.md): their keys."""
    same = set()
    for wanted in models_only:
        for found in head_only:
            if (
                found.category == wanted.category
                and found.kind == wanted.kind
                and unnamed(found) == unnamed(wanted)
                and (
                    wanted.kind == "primary key"
                    or any(GENERATED_NAME.search(part.name) for part in (wanted, found))
                )
            ):
                same |= {wanted.key, found.key}
                break
    return same


def unnamed(part: Part) -> str:
    return part.definition.replace(part.name, "<name>")


def differences(
    models: dict[tuple[str, str], Part],
    head: dict[tuple[str, str], Part],
    table: sa.Table,
    filters: Filters,
) -> Iterator[str]:
    """What differs in one table, one phrase each."""
    models_only = [part for key, part in models.items() if key not in head]
    head_only = [part for key, part in head.items() if key not in models]
    generated = renamed_only(models_only, head_only)
    constraints_differ = {
        key[1]
        for key in models.keys() | head.keys()
        if key[0] == "constraint" and models.get(key) != head.get(key)
    }
    for key in sorted(models.keys() | head.keys()):
        wanted, found = models.get(key), head.get(key)
        if wanted == found or key in generated:
            continue
        if key[0] == "index" and key[1] in constraints_differ:
            continue  # a unique or primary key's index: its constraint says what differs
        part = wanted or found
        assert part is not None
        if not filters.part(table, part, in_models=wanted is not None):
            continue
        if wanted is None:
            yield f"{part}: the database at head has {found.definition}, the models have none"
        elif found is None:
            yield f"{part}: the models have {wanted.definition}, the database at head has none"
        else:
            yield (
                f"{part}: the models have {wanted.definition}, "
                f"the database at head has {found.definition}"
            )


def model_differences(head: Engine, server: PostgresServer) -> list[str]:
    """Each model table whose definition differs from the database at head, one line each.

    Raises ``NotCompared`` when the models' schema cannot be built.
    """
    importlib.import_module(f"{PACKAGE}.models")
    if not SQLModel.metadata.tables:
        return []
    filters = Filters()
    with temporary_database(server) as url:
        scratch = engine_for(url)
        try:
            build_models_schema(head, scratch)
            wanted_lines = schema_lines(scratch)
            default_schema = scratch.dialect.default_schema_name or "public"
        finally:
            scratch.dispose()
    found_lines = schema_lines(head)
    problems = []
    for table in SQLModel.metadata.sorted_tables:
        qualified = f"{table.schema or default_schema}.{table.name}"
        if f"table {qualified}" not in found_lines or not filters.table(table):
            continue
        found = list(
            differences(parts(wanted_lines, qualified), parts(found_lines, qualified), table,
                        filters)
        )  # fmt: skip
        if found:
            problems.append(f"table {qualified}: {'; '.join(found)}")
    return problems
