"""What autogenerate and ``alembic check`` see, and how revisions are written.

Template-owned: `copier update` keeps this file current. ``migrations/env.py``
passes these hooks to ``context.configure()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from alembic import context
from alembic.operations import ops
from sqlalchemy import text
from sqlalchemy.types import TypeDecorator

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


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render SQLModel's column types as the plain SQLAlchemy type they wrap.

    A revision then imports only ``sqlalchemy``: it stays valid whatever
    happens to SQLModel's internals, and ``import sqlmodel`` is never needed.
    """
    if (
        type_ == "type"
        and isinstance(obj, TypeDecorator)
        and type(obj).__module__.startswith("sqlmodel")
    ):
        return f"sa.{obj.impl!r}"
    return False


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
