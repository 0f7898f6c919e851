"""How a model's column types are written into a revision.

Template-owned: `copier update` keeps this file current. ``migrations/env.py``
passes ``render_item`` to ``context.configure()``.

A revision names each column type as the SQLAlchemy type of the database
column it makes, so it imports only SQLAlchemy and still runs after a library
is gone or your type is renamed. The one exception is an extension's own
package of types (pgvector's, ``db/extensions.py``), which a revision imports
when the project declares it in pyproject.toml.
"""

from __future__ import annotations

import ast
import importlib
from contextvars import ContextVar
from typing import Any, Literal

from alembic.autogenerate.api import AutogenContext

# Alembic's renderer for every column type: it also adds the import
# (``from sqlalchemy.dialects import postgresql``) that a dialect type needs.
from alembic.autogenerate.render import _render_check_constraint, _repr_type
from alembic.util import CommandError
from alembic_postgresql_enum.add_create_type_false import get_replacement_type
from sqlalchemy import CheckConstraint, Dialect
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

from .extensions import ExtensionPackage, extension_package, undeclared

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
# The types being rendered right now, whose rendering is Alembic's own.
_RENDERING: ContextVar[frozenset[int]] = ContextVar("rendering", default=frozenset())


class UnrenderableTypeError(Exception):
    """A model's column type that a revision could write only by importing its library."""


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write each column type as the SQLAlchemy type of the database column it makes.

    A type wrapper (a ``TypeDecorator`` from SQLModel, another library or your
    own code) is written as the type it stores its values in, with the arguments
    that reach the DDL; a subclass of a SQLAlchemy type, as that type. Alembic's
    own renderer writes the result and adds the import a dialect type needs. A
    keyword that a type's repr repeats is written once. A type that is no
    database type SQLAlchemy or a declared extension package knows stops
    ``revision --autogenerate`` with one line naming its column.
    """
    if type_ == "check" and id(obj) not in _RENDERING.get():
        return check_with_its_own_percent_signs(obj, autogen_context)
    if type_ != "type" or id(obj) in _RENDERING.get():
        return False
    try:
        stored = obj if is_from_sqlalchemy(type(obj)) else database_type(obj, autogen_context)
    except UnrenderableTypeError as error:
        columns = ", ".join(columns_using(obj, autogen_context.metadata)) or "a column"
        raise CommandError(f"{columns}: {error}") from None
    if package := extension_package(stored):
        return extension_type(stored, package, autogen_context)
    token = _RENDERING.set(_RENDERING.get() | {id(stored)})
    try:
        rendered = _repr_type(stored, autogen_context)
    finally:
        _RENDERING.reset(token)
    return without_repeated_keywords(rendered)


def check_with_its_own_percent_signs(
    check: CheckConstraint, autogen_context: AutogenContext
) -> str | Literal[False]:
    """Alembic's rendering of a CHECK, with its expression as the model wrote it.

    Alembic compiles the expression with the connection's driver, and psycopg's
    placeholder style doubles each ``%``: ``LIKE 'x%'`` would reach the
    database as ``LIKE 'x%%'``, and differ from the model for good.
    """
    driver_text = autogen_context.migration_context.impl.render_ddl_sql_expr(check.sqltext)
    if "%" not in driver_text:
        return False
    own_text = str(
        check.sqltext.compile(
            dialect=postgresql.dialect(paramstyle="named"),
            compile_kwargs={"literal_binds": True},
        )
    )
    token = _RENDERING.set(_RENDERING.get() | {id(check)})
    try:
        rendered = _render_check_constraint(check, autogen_context, None)
    finally:
        _RENDERING.reset(token)
    return False if rendered is None else rendered.replace(repr(driver_text), repr(own_text), 1)


def database_type(type_: TypeEngine[Any], autogen_context: AutogenContext) -> TypeEngine[Any]:
    """The SQLAlchemy (or extension package) type that ``type_`` stores its values in."""
    dialect: Dialect = autogen_context.dialect  # type: ignore[assignment]
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
    if package := extension_package(type_):
        if undeclared(package):
            raise UnrenderableTypeError(
                f"{type_!r} comes from {package.distribution}, which pyproject.toml does not "
                f"declare, so the revision would not run where the project is installed: "
                f"uv add {package.distribution}"
            )
        return type_
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


def extension_type(
    type_: TypeEngine[Any], package: ExtensionPackage, autogen_context: AutogenContext
) -> str:
    """``VECTOR(dim=1536)``, with ``from pgvector.sqlalchemy import VECTOR`` among the imports."""
    cls = type(type_)
    module = package.module
    if getattr(importlib.import_module(module), cls.__name__, None) is not cls:
        module = cls.__module__
    if autogen_context.imports is not None:
        autogen_context.imports.add(f"from {module} import {cls.__name__}")
    return without_repeated_keywords(repr(type_))


def without_repeated_keywords(rendered: str) -> str:
    """``ENUM(..., create_type=False, create_type=False)`` as ``ENUM(..., create_type=False)``.

    alembic-postgresql-enum appends ``create_type=False`` to an enum's repr, which
    SQLAlchemy 2.1 already prints; a repeated keyword does not compile. The last
    one stays, as it is the one written with intent.
    """
    try:
        tree = ast.parse(rendered, mode="eval")
    except SyntaxError:
        return rendered
    repeated = False
    for call in ast.walk(tree):
        if isinstance(call, ast.Call):
            names = [keyword.arg for keyword in call.keywords]
            kept = [
                keyword
                for index, keyword in enumerate(call.keywords)
                if keyword.arg is None or keyword.arg not in names[index + 1 :]
            ]
            repeated |= len(kept) != len(call.keywords)
            call.keywords = kept
    return ast.unparse(tree) if repeated else rendered


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
