"""Your SQLModel table classes live in this package: one module per area.

Importing this package imports every module in it (subpackages included), so a
new ``models/<name>.py`` is seen by ``alembic revision --autogenerate`` without
editing any other file. The naming convention is set before any model exists,
so every constraint and index gets a stable name that a downgrade can drop.

This file is template-owned; the modules beside it are yours.
"""

import importlib
import pkgutil

from sqlmodel import SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLModel.metadata.naming_convention = NAMING_CONVENTION


def import_model_modules() -> list[str]:
    """Import every module under this package; return their names."""
    names = []
    for module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module.name)
        names.append(module.name)
    return names


MODEL_MODULES = import_model_modules()
