"""Your SQLModel table classes live in this package: one module per area.

Importing this package imports every module in it (subpackages included), so a
new ``models/<name>.py`` is seen by ``alembic revision --autogenerate`` without
editing any other file. The naming convention (``db/naming.py``) is set before
any model exists, so every constraint and index gets a stable name that a
downgrade can drop.

This file is template-owned; the modules beside it are yours.
"""

import importlib
import pkgutil

from sqlmodel import SQLModel

from ..db.naming import NAMING_CONVENTION

SQLModel.metadata.naming_convention = NAMING_CONVENTION


def import_model_modules() -> list[str]:
    """Import every module under this package; return their names."""
    names = []
    for module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module.name)
        names.append(module.name)
    return names


MODEL_MODULES = import_model_modules()
