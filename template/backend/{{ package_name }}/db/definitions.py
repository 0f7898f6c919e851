"""What Alembic's comparisons leave out, compared by the definitions Postgres itself writes.

Template-owned: `copier update` keeps this file current. ``db/autogenerate.py``
imports it, so that ``revision --autogenerate`` sees:

- an index whose predicate, operator class, method or INCLUDE changed (Alembic
  compares only its columns and uniqueness);
- a named CHECK whose expression changed (Alembic compares CHECKs by name, and
  skips what it cannot compare).

Postgres settles what "the same" means: the model's indexes and CHECKs are
created on an empty temporary table of the same name, in a savepoint that is
rolled back, and each one's ``pg_get_indexdef`` or ``pg_get_constraintdef`` is
compared with the database's. Only tables that have such an index or a named
CHECK, on either side, pay for the temporary table.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from alembic.autogenerate import comparators
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.util import PriorityDispatchResult
from sqlalchemy import CheckConstraint, Connection, Index, MetaData, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import AddConstraint, CreateIndex

log = logging.getLogger("alembic.env")
QUOTE = postgresql.dialect().identifier_preparer
UNCOMPARED_INDEX_OPTIONS = (
    "postgresql_where",
    "postgresql_ops",
    "postgresql_using",
    "postgresql_include",
)
# Each index and CHECK of a table, by name, as Postgres writes it after "ON <table>".
DEFINITIONS = text(
    "SELECT c.relname, regexp_replace(pg_get_indexdef(c.oid), '^.*? ON \\S+ ', '') "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = to_regclass(:table) "
    "UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = to_regclass(:table) AND contype = 'c'"
)


@comparators.dispatch_for("table")
def changed_definitions(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> PriorityDispatchResult:
    """Drop and create again each index or CHECK whose definition changed."""
    connection = autogen_context.connection
    if conn_table is None or metadata_table is None or connection is None:
        return PriorityDispatchResult.CONTINUE
    if not writes_a_revision(autogen_context):
        return PriorityDispatchResult.CONTINUE
    indexes = shared(metadata_table.indexes, conn_table.indexes)
    checks = shared(checks_of(metadata_table), checks_of(conn_table))
    if not checks and not any(
        has_uncompared_options(index) for index in [*metadata_table.indexes, *conn_table.indexes]
    ):
        return PriorityDispatchResult.CONTINUE
    touched = {
        getattr(op, "index_name", None) or getattr(op, "constraint_name", None)
        for op in modify_table_ops.ops
    }
    found = definitions(connection, QUOTE.format_table(conn_table))
    wanted = model_definitions(connection, metadata_table)
    if wanted is None:
        log.info("Indexes and CHECKs of %r not compared by definition", table_name)
        return PriorityDispatchResult.CONTINUE
    for name, (model, reflected) in sorted({**indexes, **checks}.items()):
        if name in touched or found.get(name) == wanted.get(name):
            continue
        kind = "index" if isinstance(model, Index) else "check_constraint"
        if not autogen_context.run_object_filters(model, name, kind, False, reflected):
            continue
        log.info("Detected changed %s %r on %r: %s", kind, name, table_name, wanted.get(name))
        if isinstance(model, Index):
            modify_table_ops.ops += [
                ops.DropIndexOp.from_index(reflected),
                ops.CreateIndexOp.from_index(model),
            ]
        else:
            modify_table_ops.ops += [
                ops.DropConstraintOp.from_constraint(reflected),
                ops.AddConstraintOp.from_constraint(model),
            ]
    return PriorityDispatchResult.CONTINUE


def shared(model_items: Any, database_items: Any) -> dict[str, tuple[Any, Any]]:
    """The named items on both sides, by name: (the model's, the database's)."""
    found = {item.name: item for item in database_items if isinstance(item.name, str)}
    return {
        item.name: (item, found[item.name])
        for item in model_items
        if isinstance(item.name, str) and item.name in found
    }


def checks_of(table: Table) -> list[CheckConstraint]:
    return [c for c in table.constraints if isinstance(c, CheckConstraint)]


def has_uncompared_options(index: Index) -> bool:
    return any(index.dialect_kwargs.get(o) not in (None, [], ()) for o in UNCOMPARED_INDEX_OPTIONS)


def writes_a_revision(autogen_context: AutogenContext) -> bool:
    """Only ``revision --autogenerate`` compares by definition: it builds a temporary table,
    which ``alembic check`` must not do on production (a read-only role, an event trigger);
    there the gate's model-match check compares by definition instead."""
    config = getattr(autogen_context.migration_context, "config", None)
    return bool(getattr(getattr(config, "cmd_opts", None), "autogenerate", False))


def definitions(connection: Connection, table: str) -> dict[str, str]:
    rows = connection.execute(DEFINITIONS, {"table": table}).all()  # type: ignore[arg-type]
    return {name: definition.removesuffix(" NOT VALID") for name, definition in rows}


def model_definitions(connection: Connection, metadata_table: Table) -> dict[str, str] | None:
    """The model's indexes and CHECKs as Postgres writes them, built on a temporary table of
    the same name, which hides the real one in this session alone; None where the role may
    create no temporary table."""
    copy = metadata_table.to_metadata(MetaData(), schema=None)
    savepoint = connection.begin_nested()
    try:
        source = QUOTE.format_table(metadata_table)
        try:
            connection.execute(
                text(f"CREATE TEMPORARY TABLE {QUOTE.quote(copy.name)} (LIKE {source})")
            )
        except DBAPIError:
            return None
        ddl = [CreateIndex(index) for index in copy.indexes]
        ddl += [AddConstraint(check) for check in checks_of(copy) if isinstance(check.name, str)]
        for statement in ddl:  # one on a column the table does not have yet is new anyway
            with suppress(DBAPIError), connection.begin_nested():
                connection.execute(statement)
        return definitions(connection, f"pg_temp.{QUOTE.quote(copy.name)}")
    finally:
        savepoint.rollback()
