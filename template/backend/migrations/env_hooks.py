"""Your hooks into migrations/env.py (user-owned: `copier update` never touches it).

Change what autogenerate and ``alembic check`` look at here, instead of
editing env.py.
"""

from typing import Any

# Schemas whose objects autogenerate manages. Objects elsewhere (for example
# Neon Auth's ``neon_auth`` schema) never appear in a revision or in `alembic check`.
MANAGED_SCHEMAS: set[str | None] = {None, "public"}


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "schema":
        return name in MANAGED_SCHEMAS
    return True


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return True
