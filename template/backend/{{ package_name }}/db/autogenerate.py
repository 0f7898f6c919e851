"""What autogenerate and ``alembic check`` see, and how revisions are written.

Template-owned: `copier update` keeps this file current. ``migrations/env.py``
passes these hooks to ``context.configure()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

# Alembic's renderer for every column type: it also adds the import
# (``from sqlalchemy.dialects import postgresql``) that a dialect type needs.
from alembic.autogenerate.render import _repr_type
from alembic.operations import ops
from alembic.util import CommandError
from alembic_postgresql_enum.add_create_type_false import get_replacement_type
from sqlalchemy import Dialect, text
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

log = logging.getLogger("alembic.env")

# What a revision can name: ``sa.X`` (sqlalchemy.types) and ``postgresql.X``.
PUBLIC_TYPE_NAMESPACES = (sqltypes, postgresql)
NOT_DATABASE_TYPES = frozenset(
    {
        sqltypes.TypeEngine,
        sqltypes.TypeDecorator,
        sqltypes.UserDefinedType,
        sqltypes.NullType,
        sqltypes.Variant,
    }
)

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


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write each column type as the SQLAlchemy type of the database column it makes.

    A type wrapper (a ``TypeDecorator`` from SQLModel, another library or your
    own code) is written as the type it stores its values in, with the arguments
    that reach the DDL; a subclass of a SQLAlchemy type, as that type. Alembic's
    own renderer writes the result and adds the import a dialect type needs, so
    a revision imports only SQLAlchemy and still runs after the library is gone
    or your type is renamed. A type that is no database type SQLAlchemy knows
    stops ``revision --autogenerate`` with one line naming its column.
    """
    if type_ != "type" or is_from_sqlalchemy(type(obj)):
        return False
    try:
        stored = database_type(obj, autogen_context.dialect)
    except UnrenderableTypeError as error:
        columns = ", ".join(columns_using(obj, autogen_context.metadata)) or "a column"
        raise CommandError(f"{columns}: {error}") from None
    return _repr_type(stored, autogen_context)


class UnrenderableTypeError(Exception):
    """A model's column type that a revision could write only by importing its library."""


def database_type(type_: TypeEngine[Any], dialect: Dialect) -> TypeEngine[Any]:
    """The SQLAlchemy type that ``type_`` stores its values in on ``dialect``."""
    while isinstance(type_, TypeDecorator) and not is_from_sqlalchemy(type(type_)):
        try:
            stored = type_.load_dialect_impl(dialect)
        except Exception as error:
            raise UnrenderableTypeError(
                f"{type_!r} cannot say which database type it stores: {error}"
            ) from error
        if stored is type_:
            break
        type_ = stored
    public = next((cls for cls in type(type_).__mro__ if is_public_database_type(cls)), None)
    if public is None:
        raise UnrenderableTypeError(
            f"{type_!r} from {type(type_).__module__} is not a database type SQLAlchemy "
            "knows, and a revision could write it only by importing that module; use a "
            "SQLAlchemy type or a TypeDecorator over one, or write this column by hand "
            "(see docs/models.md)"
        )
    if public is not type(type_):
        type_ = type_.adapt(public)
    if isinstance(type_, sqltypes.Enum) and type_.native_enum:
        # alembic-postgresql-enum creates the type before the table, as it does
        # for a plain Enum column; the column must not create it a second time.
        type_ = get_replacement_type(type_.copy())
    return type_


def is_from_sqlalchemy(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "sqlalchemy"


def is_public_database_type(cls: type) -> bool:
    """``cls`` is a database type a revision can write as ``sa.X`` or ``postgresql.X``."""
    return (
        issubclass(cls, TypeEngine)
        and cls not in NOT_DATABASE_TYPES
        and any(getattr(ns, cls.__name__, None) is cls for ns in PUBLIC_TYPE_NAMESPACES)
    )


def columns_using(type_: TypeEngine[Any], metadata: Any) -> list[str]:
    """``table.column`` of each model column of ``type_``'s class (or an array of it).

    By class: Alembic renders a new table from copies of its columns and types.
    """
    found = []
    for each in metadata if isinstance(metadata, list | tuple) else [metadata]:
        for table in each.tables.values():
            for column in table.columns:
                column_types = (column.type, getattr(column.type, "item_type", None))
                if any(type(candidate) is type(type_) for candidate in column_types):
                    found.append(f"{table.fullname}.{column.name}")
    return found


def skip_empty_autogenerate(
    migration_context: Any, revision: Any, directives: list[ops.MigrationScript]
) -> None:
    """``revision --autogenerate`` with no schema change writes no file.

    Only that command is affected: ``alembic check`` runs through the same hook
    and needs the (empty) script to report "No new upgrade operations detected".
    """
    if not getattr(migration_context.config.cmd_opts, "autogenerate", False):
        return
    script = directives[0]
    if all(upgrade_ops.is_empty() for upgrade_ops in script.upgrade_ops_list):
        directives[:] = []
        log.info("No changes in schema detected; no revision file written")


def skip_extension_objects(include_object: IncludeObject) -> IncludeObject:
    """Wrap ``include_object`` so that tables an extension owns are never compared."""
    owned: set[tuple[str | None, str]] | None = None

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        nonlocal owned
        if type_ == "table" and reflected and compare_to is None:
            if owned is None:
                rows = context.get_bind().execute(EXTENSION_TABLES)
                owned = {(row.schema, row.name) for row in rows}
            if (obj.schema, name) in owned:
                return False
        return include_object(obj, name, type_, reflected, compare_to)

    return include


# What migrations/env_hooks.py may define, and the template's default for each.
DEFAULT_MANAGED_SCHEMAS: frozenset[str | None] = frozenset({None, "public"})


def hook_options(hooks: ModuleType) -> dict[str, Any]:
    """``context.configure()`` filters: the names ``hooks`` defines, the defaults for the rest.

    A hooks module rendered by an older template defines all three names; it
    keeps working as it is.
    """
    managed_schemas = getattr(hooks, "MANAGED_SCHEMAS", DEFAULT_MANAGED_SCHEMAS)

    def include_managed_schemas(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "schema" or name in managed_schemas

    def include_every_object(*_: Any) -> bool:
        return True

    return {
        "include_schemas": True,
        "include_name": getattr(hooks, "include_name", include_managed_schemas),
        "include_object": skip_extension_objects(
            getattr(hooks, "include_object", include_every_object)
        ),
    }
