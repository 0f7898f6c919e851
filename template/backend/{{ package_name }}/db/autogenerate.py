"""What autogenerate and ``alembic check`` compare, and what a new revision must be.

Template-owned: `copier update` keeps this file current. ``migrations/env.py``
passes these hooks to ``context.configure()``; column types are written by
``db/column_types.py``, and the extensions the models need are created by
``db/extensions.py`` (imported here, so that autogenerate compares them).

The comparison knows what Postgres does with what the models declare, so
nothing drifts forever: a primary key is NOT NULL whatever the model says, a
unique constraint on exactly the primary key's columns is not created
(Postgres drops it from ``CREATE TABLE``), and a default that calls a volatile
function (``gen_random_bytes(16)``) is compared as text, casts aside.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from alembic import context
from alembic.autogenerate import comparators, render
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.util import CommandError, DispatchPriority, PriorityDispatchResult
from sqlalchemy import (
    CheckConstraint,
    Column,
    DefaultClause,
    UniqueConstraint,
    text,
)
from sqlmodel import SQLModel

from . import definitions, extensions  # noqa: F401  (register their comparisons)
from .definitions import QUOTE
from .low_lock_forms import FUNCTION_CALL, write_low_lock_forms

log = logging.getLogger("alembic.env")

IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]
# Tables that belong to an extension (PostGIS's spatial_ref_sys, ...); the
# current schema is reported as NULL, as SQLAlchemy reflects it.
EXTENSION_TABLES = text(
    """
    SELECT NULLIF(n.nspname, current_schema()) AS schema, c.relname AS name
    FROM pg_depend d
    JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.deptype = 'e'
    """
)


# Alembic's comparisons, and its CHECK constraint comparison by name (opt-in since 1.19.2).
COMPARISONS = ["alembic.autogenerate.*", "alembic.ext.checkconstraint_byname"]


def revision_directives(
    migration_context: Any,
    revision: Any,
    directives: list[ops.MigrationScript],
    *,
    safe_migrations: bool = True,
) -> None:
    """What ``revision --autogenerate`` writes: no file when nothing changed, the low-lock
    form of each change to a table that already exists, none that does not compile.

    Only that command is affected: ``alembic check`` runs through the same hook
    and needs the (empty) script to report "No new upgrade operations detected".
    """
    if not getattr(migration_context.config.cmd_opts, "autogenerate", False):
        return
    script = directives[0]
    if all(upgrade_ops.is_empty() for upgrade_ops in script.upgrade_ops_list):
        directives[:] = []
        log.info("No changes in schema detected; no revision file written")
        return
    for upgrade_ops in script.upgrade_ops_list:
        add_column_checks(upgrade_ops)
    if safe_migrations:
        write_low_lock_forms(script, migration_context.connection)
    refuse_what_does_not_compile(script, migration_context)


def add_column_checks(upgrade_ops: ops.UpgradeOps) -> None:
    """Write the CHECK constraints declared on a column, which Alembic leaves out.

    ``Column("threshold", Integer, CheckConstraint("threshold > 0"))`` keeps its
    constraint on the column, and Alembic renders only a table's own
    constraints: such a CHECK would silently never reach the database. A new
    table gets it among its constraints; a new column, right after it is added.
    """
    for op in upgrade_ops.ops:
        if isinstance(op, ops.CreateTableOp):
            op.columns += [
                CheckConstraint(check.sqltext, name=check.name)
                for column in op.columns
                if isinstance(column, Column)
                for check in column_checks(column)
            ]
        elif isinstance(op, ops.ModifyTableOps):
            added = []
            for each in op.ops:
                added.append(each)
                if isinstance(each, ops.AddColumnOp):
                    added += [
                        ops.CreateCheckConstraintOp(
                            check.name, op.table_name, check.sqltext, schema=op.schema
                        )
                        for check in column_checks(each.column)
                    ]
            op.ops = added


def column_checks(column: Column[Any]) -> list[CheckConstraint]:
    return sorted(
        (c for c in column.constraints if isinstance(c, CheckConstraint)),
        key=lambda check: str(check.name),
    )


def refuse_what_does_not_compile(script: ops.MigrationScript, migration_context: Any) -> None:
    """Compile the upgrade and downgrade the revision would hold; refuse it in one line if
    either does not compile, before any file is written.

    ``render_python_code``, Alembic's public form of this, builds a context
    without the models and refuses to run during autogenerate.
    """
    autogen_context = AutogenContext(migration_context, autogenerate=False)
    for step, ops_lists in (
        ("upgrade", script.upgrade_ops_list),
        ("downgrade", script.downgrade_ops_list),
    ):
        for each in ops_lists:
            body = render._indent(render._render_cmd_body(each, autogen_context))
            try:
                compile(f"def {step}():\n{body}\n", f"<{step}()>", "exec")
            except SyntaxError as error:
                line = (error.text or "").strip()
                raise CommandError(
                    f"autogenerate would write a {step}() that does not compile "
                    f"({error.msg}: {line}); no revision was written"
                ) from None


@comparators.dispatch_for("column", subgroup="nullable", priority=DispatchPriority.FIRST)
def primary_keys_are_not_null(
    autogen_context: AutogenContext,
    alter_column_op: ops.AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> PriorityDispatchResult:
    """Postgres makes every primary key column NOT NULL, whatever the model declares."""
    if metadata_col.primary_key and not conn_col.nullable:
        alter_column_op.existing_nullable = False
        return PriorityDispatchResult.STOP
    return PriorityDispatchResult.CONTINUE


# The casts Postgres writes into a stored default ('hex' becomes 'hex'::text).
ADDED_CAST = re.compile(
    r"::(?:text|character varying|integer|bigint|smallint|numeric|boolean|bytea|uuid|jsonb?"
    r"|date|interval|regclass|timestamp(?: with(?:out)? time zone)?)\b(?:\[\])?"
)
VOLATILE = text(
    "SELECT coalesce(bool_or(provolatile = 'v'), false) FROM pg_proc WHERE proname = ANY(:names)"
)


@comparators.dispatch_for("column", subgroup="server_default", priority=DispatchPriority.FIRST)
def volatile_defaults_as_text(
    autogen_context: AutogenContext,
    alter_column_op: ops.AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> PriorityDispatchResult:
    """A default that calls a volatile function is the same as the database's when only
    the casts Postgres adds tell them apart.

    Alembic compares two defaults that read differently by evaluating both on the
    server, and ``gen_random_bytes(16)`` never equals itself: the check would ask
    for the same revision forever. Every other default is left to Alembic.
    """
    found, wanted = conn_col.server_default, metadata_col.server_default
    if not (isinstance(found, DefaultClause) and isinstance(wanted, DefaultClause)):
        return PriorityDispatchResult.CONTINUE
    wanted_sql = default_sql(wanted, autogen_context)
    names = sorted({name.lower() for name in FUNCTION_CALL.findall(wanted_sql)})
    connection = autogen_context.connection
    if (
        not names
        or connection is None
        or not connection.execute(VOLATILE, {"names": names}).scalar()
    ):
        return PriorityDispatchResult.CONTINUE
    if without_added_casts(default_sql(found, autogen_context)) != without_added_casts(wanted_sql):
        return PriorityDispatchResult.CONTINUE
    alter_column_op.existing_server_default = found
    return PriorityDispatchResult.STOP


def default_sql(default: DefaultClause, autogen_context: AutogenContext) -> str:
    arg = default.arg
    if isinstance(arg, str):
        return arg
    return str(arg.compile(dialect=autogen_context.dialect, compile_kwargs={"literal_binds": True}))


def without_added_casts(expression: str) -> str:
    return " ".join(ADDED_CAST.sub("", expression).strip().strip("'").split())


def repeats_primary_key(constraint: Any) -> bool:
    """A unique constraint on exactly the primary key's columns, which Postgres never creates
    in ``CREATE TABLE``: the primary key already is unique."""
    table = getattr(constraint, "table", None)
    if not isinstance(constraint, UniqueConstraint) or table is None:
        return False
    key = {column.name for column in table.primary_key.columns}
    return bool(key) and {column.name for column in constraint.columns} == key


def compared_objects(include_object: IncludeObject) -> IncludeObject:
    """Wrap ``include_object`` so that what Postgres owns or drops is never compared:
    tables an extension owns, and unique constraints that repeat the primary key."""
    owned: set[tuple[str | None, str]] | None = None

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        nonlocal owned
        if type_ == "table" and reflected and compare_to is None:
            if owned is None:
                rows = context.get_bind().execute(EXTENSION_TABLES)
                owned = {(row.schema, row.name) for row in rows}
            if (obj.schema, name) in owned:
                return False
        if type_ == "unique_constraint" and repeats_primary_key(obj):
            return False
        if type_ == "check_constraint" and compare_to is None and is_truncated_pair(obj, reflected):
            return False
        return include_object(obj, name, type_, reflected, compare_to)

    return include


CONSTRAINT_NAMED = text(
    "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = to_regclass(:table) "
    "AND conname = :name)"
)


def name_in_database(constraint: Any) -> str:
    """A constraint's name as its DDL writes it: SQLAlchemy cuts a conventional name longer
    than Postgres' 63 bytes to 55 and a digest (``ck_..._sub_b51d``)."""
    return QUOTE.format_constraint(constraint).strip('"').replace('""', '"')


def is_truncated_pair(check: Any, reflected: bool) -> bool:
    """A CHECK whose long conventional name the database holds cut short: Alembic's CHECK
    comparison matches by name, and would drop and add it again on every revision."""
    table = check.table
    if reflected:
        key = f"{table.schema}.{table.name}" if table.schema else table.name
        modelled = SQLModel.metadata.tables.get(key)
        return modelled is not None and any(
            isinstance(c, CheckConstraint) and c.name != check.name == name_in_database(c)
            for c in modelled.constraints
        )
    short = name_in_database(check)
    if short == check.name:
        return False
    found = context.get_bind().execute(
        CONSTRAINT_NAMED, {"table": QUOTE.format_table(table), "name": short}
    )
    return bool(found.scalar())


# What migrations/env_hooks.py may define, and the template's default for each.
DEFAULT_MANAGED_SCHEMAS: frozenset[str | None] = frozenset({None, "public"})


def hook_options(hooks: ModuleType) -> dict[str, Any]:
    """``context.configure()`` options: the names ``hooks`` defines, the defaults for the rest.

    A hooks module rendered by an older template defines all three filters; it
    keeps working as it is. ``SAFE_MIGRATIONS = False`` keeps Alembic's plain
    forms (``db/low_lock_forms.py``), for a team that deploys in a maintenance window.
    """
    managed_schemas = getattr(hooks, "MANAGED_SCHEMAS", DEFAULT_MANAGED_SCHEMAS)
    safe_migrations = bool(getattr(hooks, "SAFE_MIGRATIONS", True))

    def include_managed_schemas(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name in managed_schemas

    def include_every_object(*_: Any) -> bool:
        return True

    return {
        "process_revision_directives": functools.partial(
            revision_directives, safe_migrations=safe_migrations
        ),
        "include_schemas": True,
        "include_name": getattr(hooks, "include_name", include_managed_schemas),
        "include_object": compared_objects(getattr(hooks, "include_object", include_every_object)),
    }
