"""Postgres extensions: which ones the models need, and a revision that creates them first.

Template-owned: `copier update` keeps this file current. ``db/autogenerate.py``
wires it into autogenerate and ``alembic check``.

A model needs an extension through a column type (pgvector's ``VECTOR``,
``postgresql.CITEXT``), an index method or operator class (``hnsw``,
``gin_trgm_ops``), or a function in a server default or generated column
(``uuid_generate_v4()``, ``gen_random_bytes(16)``). Autogenerate writes
``CREATE EXTENSION IF NOT EXISTS`` before the first use of each one the
database lacks, and its downgrade drops it after the last; an extension the
models do not need is never dropped. Every statement is plain ``op.execute``,
so a revision imports nothing for it. The extensions listed here are ones
Neon supports.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from traceback import walk_tb
from typing import Any

from alembic.autogenerate import comparators, renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.util import CommandError
from sqlalchemy import Column, Computed, Index, MetaData, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@dataclass(frozen=True)
class ExtensionPackage:
    """A package of SQLAlchemy types for an extension, that a revision may import."""

    distribution: str  # its name in pyproject.toml's dependencies
    module: str  # where a revision imports its types from
    extension: str  # the Postgres extension its types need


# By the top-level module of a type's class.
EXTENSION_PACKAGES = {
    "pgvector": ExtensionPackage("pgvector", "pgvector.sqlalchemy", "vector"),
}
# Types SQLAlchemy itself can name, that an extension provides.
SQLALCHEMY_TYPE_EXTENSIONS: dict[type[TypeEngine[Any]], str] = {postgresql.CITEXT: "citext"}
INDEX_METHOD_EXTENSIONS = {"hnsw": "vector", "ivfflat": "vector"}
OPERATOR_CLASS_EXTENSIONS = {
    r"(vector|halfvec|sparsevec)_\w+_ops|bit_(hamming|jaccard)_ops": "vector",
    r"(gin|gist)_trgm_ops": "pg_trgm",
}
FUNCTION_EXTENSIONS = {
    "uuid-ossp": (
        "uuid_generate_v1 uuid_generate_v1mc uuid_generate_v3 uuid_generate_v4 "
        "uuid_generate_v5 uuid_nil uuid_ns_dns uuid_ns_url uuid_ns_oid uuid_ns_x500"
    ),
    "pgcrypto": (
        "gen_random_bytes gen_salt crypt digest hmac armor dearmor pgp_sym_encrypt "
        "pgp_sym_decrypt pgp_pub_encrypt pgp_pub_decrypt"
    ),
    "pg_trgm": "similarity word_similarity strict_word_similarity show_trgm",
    "unaccent": "unaccent",
}
FUNCTION_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE)


def extension_package(type_: TypeEngine[Any]) -> ExtensionPackage | None:
    return EXTENSION_PACKAGES.get(type(type_).__module__.split(".")[0])


def type_extension(type_: TypeEngine[Any]) -> str | None:
    item = getattr(type_, "item_type", None)  # an ARRAY of such a type needs it too
    for candidate in (type_, item) if item is not None else (type_,):
        if package := extension_package(candidate):
            return package.extension
        for cls, extension in SQLALCHEMY_TYPE_EXTENSIONS.items():
            if isinstance(candidate, cls):
                return extension
    return None


def expression_extensions(sql: str) -> set[str]:
    called = {name.lower() for name in FUNCTION_CALL.findall(sql)}
    return {ext for ext, names in FUNCTION_EXTENSIONS.items() if called & set(names.split())}


def column_extensions(column: Column[Any]) -> set[str]:
    found = set()
    if extension := type_extension(getattr(column.type, "impl_instance", column.type)):
        found.add(extension)
    default = getattr(column.server_default, "arg", None)
    if isinstance(column.server_default, Computed):
        default = column.server_default.sqltext
    if default is not None and not isinstance(default, str):
        default = str(default)
    if default:
        found |= expression_extensions(default)
    return found


def index_extensions(index: Index) -> set[str]:
    options = index.dialect_options["postgresql"]
    found = set()
    if method := INDEX_METHOD_EXTENSIONS.get(str(options.get("using") or "").lower()):
        found.add(method)
    for operator_class in (options.get("ops") or {}).values():
        for pattern, extension in OPERATOR_CLASS_EXTENSIONS.items():
            if re.fullmatch(pattern, str(operator_class)):
                found.add(extension)
    for expression in index.expressions:
        found |= expression_extensions(str(expression))
    return found


def needed_extensions(metadata: MetaData | list[MetaData] | tuple[MetaData, ...]) -> set[str]:
    """Every extension the models' tables need."""
    found: set[str] = set()
    for each in metadata if isinstance(metadata, list | tuple) else [metadata]:
        for table in each.tables.values():
            for column in table.columns:
                found |= column_extensions(column)
            for index in table.indexes:
                found |= index_extensions(index)
    return found


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class CreateExtensionOp(ops.MigrateOperation):
    """``CREATE EXTENSION IF NOT EXISTS``, before the first table that needs it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def reverse(self) -> DropExtensionOp:
        return DropExtensionOp(self.name)

    def to_diff_tuple(self) -> tuple[str, str]:
        return ("add_extension", self.name)


class DropExtensionOp(ops.MigrateOperation):
    """``DROP EXTENSION IF EXISTS``, after the last table that needed it (no CASCADE)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def reverse(self) -> CreateExtensionOp:
        return CreateExtensionOp(self.name)

    def to_diff_tuple(self) -> tuple[str, str]:
        return ("remove_extension", self.name)


@renderers.dispatch_for(CreateExtensionOp)
def render_create_extension(autogen_context: AutogenContext, op: CreateExtensionOp) -> str:
    return f"op.execute({f'CREATE EXTENSION IF NOT EXISTS {quoted(op.name)}'!r})"


@renderers.dispatch_for(DropExtensionOp)
def render_drop_extension(autogen_context: AutogenContext, op: DropExtensionOp) -> str:
    return f"op.execute({f'DROP EXTENSION IF EXISTS {quoted(op.name)}'!r})"


INSTALLED = text("SELECT extname FROM pg_extension")


@comparators.dispatch_for("schema")
def compare_extensions(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Any
) -> None:
    """Create each extension the models need and the database lacks, before anything else."""
    if autogen_context.metadata is None or autogen_context.connection is None:
        return
    needed = needed_extensions(autogen_context.metadata)
    if not needed:
        return
    installed = {name for (name,) in autogen_context.connection.execute(INSTALLED)}
    upgrade_ops.ops[:0] = [CreateExtensionOp(name) for name in sorted(needed - installed)]


@cache
def declared_distributions() -> frozenset[str]:
    """The distributions pyproject.toml's ``[project].dependencies`` name, normalized
    (read once a run, however many columns use an extension type)."""
    try:
        dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return frozenset()
    names = (re.match(r"[A-Za-z0-9._-]+", spec) for spec in dependencies)
    return frozenset(normalized(name.group()) for name in names if name)


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def undeclared(package: ExtensionPackage) -> bool:
    return normalized(package.distribution) not in declared_distributions()


@contextmanager
def explain_missing_extension_packages() -> Iterator[None]:
    """A revision that imports an extension package the venv lacks fails in one line."""
    try:
        yield
    except ModuleNotFoundError as error:
        package = EXTENSION_PACKAGES.get((error.name or "").split(".")[0])
        if package is None:
            raise
        revision = next(
            (
                Path(frame.f_code.co_filename).name
                for frame, _ in walk_tb(error.__traceback__)
                if Path(frame.f_code.co_filename).parent.name == "versions"
            ),
            "a revision",
        )
        raise CommandError(
            f"{revision} needs the package {package.distribution}, which is not installed: "
            f"declare it (uv add {package.distribution}), then uv sync"
        ) from None
