"""The low-lock forms autogenerate writes for tables that exist before the revision.

Template-owned: `copier update` keeps this file current. ``db/autogenerate.py``
calls ``write_low_lock_forms()`` on every revision it writes, unless
``migrations/env_hooks.py`` sets ``SAFE_MIGRATIONS = False``.

A table the same revision creates (or drops) keeps Alembic's plain form, inside
the revision's transaction. On any other table:

- an index is built and dropped ``CONCURRENTLY``, after an invalid leftover of
  the same name is dropped;
- a unique constraint is a unique index built concurrently, then
  ``ADD CONSTRAINT ... UNIQUE USING INDEX``;
- a foreign key or a CHECK is added ``NOT VALID``, then validated;
- NOT NULL is a ``CHECK (col IS NOT NULL) NOT VALID``, validated, then
  ``SET NOT NULL`` (which trusts the CHECK and skips its scan), then the CHECK
  is dropped;
- an enum value is ``ADD VALUE IF NOT EXISTS``.

These steps run in ``autocommit_block()``: each statement is a transaction of
its own, so a lock that blocks reads or writes is held for milliseconds, and a
step that fails leaves the ones before it in place. Each step first looks at
what is there (``DO`` blocks over the catalogs), so a rerun of the revision
after a failure at any step, once its cause is gone, finishes the work.

What no form makes safe stops autogenerate, in one line, before a file is
written: a NOT NULL column without a server default added to a table with rows,
and a server default that calls a volatile function (it rewrites the table).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import render_op
from alembic.operations import ops
from alembic.util import CommandError
from sqlalchemy import Column, DefaultClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.schema import AddConstraint

# "named": a % in a CHECK stays one % (psycopg2's pyformat would double it in the text).
DIALECT = postgresql.dialect(paramstyle="named")
QUOTE = DIALECT.identifier_preparer
NAME_LIMIT = 63
FUNCTION_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE)
VOLATILE_CALLS = text(
    "SELECT string_agg(DISTINCT proname, ', ') FROM pg_proc "
    "WHERE provolatile = 'v' AND proname = ANY(:names)"
)


class AutocommitBlockOp(ops.MigrateOperation):
    """Statements that run each in a transaction of its own (``autocommit_block()``)."""

    def __init__(self, steps: list[ops.MigrateOperation]) -> None:
        self.steps = steps


class StatementOp(ops.MigrateOperation):
    """One SQL statement, written into the revision as it will run."""

    def __init__(self, sql: str) -> None:
        self.sql = sql


@renderers.dispatch_for(AutocommitBlockOp)
def render_autocommit_block(autogen_context: AutogenContext, op: AutocommitBlockOp) -> list[str]:
    lines = ["with op.get_context().autocommit_block():"]
    for step in op.steps:
        lines += render_op(autogen_context, step)
    return [*lines, ""]


@renderers.dispatch_for(StatementOp)
def render_statement(autogen_context: AutogenContext, op: StatementOp) -> str:
    if "\n" not in op.sql:
        return f"op.execute({op.sql!r})"
    # The printer indents the first line to the block; the rest keep these spaces.
    body = "\n".join(f"        {line}" for line in op.sql.splitlines())
    return f'op.execute(\n        """\n{body}\n        """\n    )'


def write_low_lock_forms(script: ops.MigrationScript, connection: Connection | None) -> None:
    """Rewrite the upgrade and downgrade of ``script`` in place; refuse what cannot be safe."""
    for upgrade_ops in script.upgrade_ops_list:
        refuse_unsafe_additions(upgrade_ops, connection)
        upgrade_ops.ops = low_lock_ops(upgrade_ops.ops)
    for downgrade_ops in script.downgrade_ops_list:
        downgrade_ops.ops = low_lock_ops(downgrade_ops.ops)


def tables_created_or_dropped(top_level: Iterable[ops.MigrateOperation]) -> set[tuple[Any, str]]:
    return {
        (op.schema, op.table_name)
        for op in top_level
        if isinstance(op, ops.CreateTableOp | ops.DropTableOp)
    }


def low_lock_ops(top_level: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    """The same operations, in the same order: each one on a table that exists before and
    after the revision in its low-lock form, grouped into autocommit blocks."""
    whole_tables = tables_created_or_dropped(top_level)
    written: list[ops.MigrateOperation] = []

    def add(step: ops.MigrateOperation, low_lock: bool) -> None:
        if low_lock and written and isinstance(written[-1], AutocommitBlockOp):
            written[-1].steps.append(step)
        elif low_lock:
            written.append(AutocommitBlockOp([step]))
        elif isinstance(step, ops.AlterTableOp | ops.CreateIndexOp | ops.DropIndexOp):
            table_ops = written[-1] if written else None
            if not (
                isinstance(table_ops, ops.ModifyTableOps)
                and (table_ops.schema, table_ops.table_name) == (step.schema, step.table_name)
            ):
                table_ops = ops.ModifyTableOps(step.table_name, [], schema=step.schema)
                written.append(table_ops)
            table_ops.ops.append(step)
        else:
            written.append(step)

    for op in top_level:
        if isinstance(op, ops.ModifyTableOps) and (op.schema, op.table_name) not in whole_tables:
            for each in op.ops:
                steps = low_lock_steps(each)
                if steps is None:
                    add(each, low_lock=False)
                for step in steps or ():
                    add(step, low_lock=not is_plain_part(step, each))
        elif enum_values_added(op):
            for step in enum_value_steps(op):
                add(step, low_lock=True)
        else:
            add(op, low_lock=False)
    return written


def is_plain_part(step: ops.MigrateOperation, original: ops.MigrateOperation) -> bool:
    """The part of an ``alter_column`` that stays plain (a type or default change)."""
    return isinstance(step, ops.AlterColumnOp) and step is not original


def low_lock_steps(op: ops.MigrateOperation) -> list[ops.MigrateOperation] | None:
    """The low-lock steps for one operation on a table with rows, or None to keep it."""
    if isinstance(op, ops.CreateIndexOp):
        return index_steps(op)
    if isinstance(op, ops.DropIndexOp):
        op.if_exists = True
        op.kw["postgresql_concurrently"] = True
        return [op]
    if isinstance(op, ops.CreateUniqueConstraintOp):
        return unique_steps(op)
    if isinstance(op, ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp):
        return not_valid_steps(op)
    if isinstance(op, ops.AlterColumnOp) and op.modify_nullable is False:
        return not_null_steps(op)
    return None


def index_steps(op: ops.CreateIndexOp) -> list[ops.MigrateOperation]:
    op.if_not_exists = True
    op.kw["postgresql_concurrently"] = True
    return [drop_invalid_leftover(op.index_name, op.schema), op]


def drop_invalid_leftover(index_name: Any, schema: str | None) -> StatementOp:
    index = qualified(schema, str(index_name))
    return StatementOp(
        only_if(
            f"EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass({literal(index)})"
            " AND NOT indisvalid)",
            f"DROP INDEX {index}",
        )
    )


def unique_steps(op: ops.CreateUniqueConstraintOp) -> list[ops.MigrateOperation]:
    constraint = op.to_constraint()
    name = str(op.constraint_name or default_name(op.table_name, op.columns, "key"))
    index = ops.CreateIndexOp(name, op.table_name, list(op.columns), schema=op.schema, unique=True)
    table = qualified(op.schema, op.table_name)
    deferrable = ""
    if constraint.deferrable:
        deferrable = " DEFERRABLE" + (
            f" INITIALLY {constraint.initially}" if constraint.initially else ""
        )
    attach = only_if(
        f"NOT EXISTS ({constraint_named(table, name)})",
        f"ALTER TABLE {table} ADD CONSTRAINT {QUOTE.quote(name)}"
        f" UNIQUE USING INDEX {QUOTE.quote(name)}{deferrable}",
    )
    return [*index_steps(index), StatementOp(attach)]


def not_valid_steps(
    op: ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp,
) -> list[ops.MigrateOperation]:
    constraint = op.to_constraint()
    if constraint.name is None:
        if isinstance(op, ops.CreateForeignKeyOp):
            constraint.name = default_name(op.source_table, op.local_cols, "fkey")
        else:
            constraint.name = default_name(op.table_name, [], "check")
    name = str(constraint.name)
    constraint.dialect_options["postgresql"]["not_valid"] = True
    table = qualified(constraint.table.schema, constraint.table.name)
    add = AddConstraint(constraint).compile(dialect=DIALECT, compile_kwargs={"literal_binds": True})
    return [
        StatementOp(
            only_if(f"NOT EXISTS ({constraint_named(table, name)})", " ".join(str(add).split()))
        ),
        validate(table, name),
    ]


def not_null_steps(op: ops.AlterColumnOp) -> list[ops.MigrateOperation]:
    """A CHECK proves there is no NULL while reads and writes go on; ``SET NOT NULL`` then
    trusts it, and swaps it for the column's own NOT NULL in one short transaction."""
    table = qualified(op.schema, op.table_name)
    column = QUOTE.quote(op.column_name)
    check = default_name(op.table_name, [op.column_name], "not_null", prefix="ck")
    nullable = (
        f"EXISTS (SELECT FROM pg_attribute WHERE attrelid = {literal(table)}::regclass"
        f" AND attname = {literal(op.column_name)} AND NOT attnotnull)"
    )
    steps: list[ops.MigrateOperation] = []
    if op.modify_type is not None or op.modify_server_default is not False:
        op.modify_nullable = None
        steps.append(op)
    return [
        *steps,
        StatementOp(
            only_if(
                f"{nullable}\n  AND NOT EXISTS ({constraint_named(table, check)})",
                f"ALTER TABLE {table} ADD CONSTRAINT {QUOTE.quote(check)}"
                f" CHECK ({column} IS NOT NULL) NOT VALID",
            )
        ),
        validate(table, check),
        StatementOp(
            only_if(
                nullable,
                f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
                f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {QUOTE.quote(check)}",
            )
        ),
    ]


def validate(table: str, name: str) -> StatementOp:
    """``VALIDATE CONSTRAINT`` scans under a lock that blocks no reads or writes."""
    return StatementOp(
        only_if(
            f"EXISTS ({constraint_named(table, name)} AND NOT convalidated)",
            f"ALTER TABLE {table} VALIDATE CONSTRAINT {QUOTE.quote(name)}",
        )
    )


def enum_values_added(op: ops.MigrateOperation) -> bool:
    """alembic-postgresql-enum's operation for labels that are only added (1.8 and later)."""
    return type(op).__name__ == "AddEnumValuesOp"


def enum_value_steps(op: Any) -> Iterator[StatementOp]:
    """``ALTER TYPE ... ADD VALUE IF NOT EXISTS``, in the place the model declares it."""
    enum = qualified(op.schema, op.name)
    old = list(op.old_values)
    for position, value in enumerate(op.new_values):
        if value in old:
            continue
        following = next((v for v in op.new_values[position + 1 :] if v in old), None)
        where = f" BEFORE {literal(following)}" if following is not None else ""
        yield StatementOp(f"ALTER TYPE {enum} ADD VALUE IF NOT EXISTS {literal(value)}{where}")


def only_if(condition: str, *statements: str) -> str:
    """A step that first looks at what is there, so that a rerun does only what is left."""
    body = "".join(f"    {statement};\n" for statement in statements)
    return f"DO $$ BEGIN\n  IF {condition} THEN\n{body}  END IF;\nEND $$"


def constraint_named(table: str, name: str) -> str:
    return (
        f"SELECT FROM pg_constraint WHERE conrelid = {literal(table)}::regclass"
        f" AND conname = {literal(name)}"
    )


def refuse_unsafe_additions(upgrade_ops: ops.UpgradeOps, connection: Connection | None) -> None:
    """A column that no form can add to a table with rows without a rewrite or a failure."""
    whole_tables = tables_created_or_dropped(upgrade_ops.ops)
    for op in upgrade_ops.ops:
        if not isinstance(op, ops.ModifyTableOps) or (op.schema, op.table_name) in whole_tables:
            continue
        for each in op.ops:
            if isinstance(each, ops.AddColumnOp):
                refuse_unsafe_column(op.table_name, each.column, connection)


def refuse_unsafe_column(table: str, column: Column[Any], connection: Connection | None) -> None:
    where = f"{table}.{column.name}"
    default = column.server_default
    fills_itself = column.identity is not None or column.computed is not None
    if not column.nullable and default is None and not fills_itself:
        raise CommandError(
            f"autogenerate: {where} is added NOT NULL without a server default to a table "
            "that already exists, so its rows would have no value: add it nullable, backfill "
            "it, then make it NOT NULL in a later revision (autogenerate writes that safely), "
            "or give it a server_default; no revision was written"
        )
    if isinstance(default, DefaultClause) and connection is not None:
        sql = str(getattr(default.arg, "text", default.arg))
        names = sorted({word.lower() for word in FUNCTION_CALL.findall(sql)})
        volatile = connection.execute(VOLATILE_CALLS, {"names": names}).scalar() if names else None
        if volatile:
            raise CommandError(
                f"autogenerate: {where} is added with a server default that calls the volatile "
                f"{volatile}(), which rewrites the whole table under an ACCESS EXCLUSIVE lock: "
                "add the column without a default, set the default in a later revision, and "
                "backfill the rows in batches (docs/data-migrations.md); no revision was written"
            )


def qualified(schema: str | None, name: str) -> str:
    quoted = QUOTE.quote(str(name))
    return f"{QUOTE.quote_schema(schema)}.{quoted}" if schema else quoted


def literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def default_name(table: str, columns: Iterable[Any], suffix: str, prefix: str = "") -> str:
    """The name Postgres would choose (``order_customer_id_fkey``), or ours for a leftover."""
    parts = [prefix, str(table), *(str(c) for c in columns), suffix]
    name = "_".join(part for part in parts if part)
    if len(name) > NAME_LIMIT:
        raise CommandError(
            f"autogenerate: {name} is longer than PostgreSQL's {NAME_LIMIT} characters; name the "
            "constraint in the model; no revision was written"
        )
    return name
