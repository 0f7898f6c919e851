"""Your hooks into migrations/env.py (user-owned: `copier update` never touches it).

Change what autogenerate and ``alembic check`` look at here, instead of
editing env.py.
"""

from typing import Any

# The schemas whose objects autogenerate and `alembic check` manage (None is the
# connection's default schema). Anything elsewhere, such as Neon Auth's
# ``neon_auth`` schema, never appears in a revision. Add a schema here when a
# model uses ``__table_args__ = {"schema": ...}``.
MANAGED_SCHEMAS: set[str | None] = {None, "public"}


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "schema":
        return name in MANAGED_SCHEMAS
    return True


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """False hides an object from autogenerate; extension-owned tables already are."""
    return True
