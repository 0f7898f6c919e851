"""Your SQLModel table classes live in this package: one module per area.

Importing this package imports every module in it (subpackages included), so a
new ``models/<name>.py`` is seen by ``alembic revision --autogenerate`` without
editing any other file, and every class a module defines can be imported from
the package itself: ``from <package>.models import User``. A name that two
modules define is left to its modules, and importing it from here says where
it is. The naming convention (``db/naming.py``: the template's, or the one
``migrations/env_hooks.py`` chooses) is set before any model exists.

This file is template-owned; the modules beside it are yours.
"""

import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

from sqlmodel import SQLModel

from ..db.naming import chosen_naming_convention

SQLModel.metadata.naming_convention = chosen_naming_convention()

# Names two model modules define, and the modules that define them.
_AMBIGUOUS: dict[str, list[str]] = {}


def classes_defined_in(module: ModuleType) -> dict[str, type]:
    """The public classes ``module`` defines itself (not those it imports)."""
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value) and value.__module__ == module.__name__ and name[0] != "_"
    }


def export_classes(module: ModuleType, exported: dict[str, str]) -> None:
    """Make ``module``'s classes importable from this package, as each module loads, so
    that a model module may import another's class from here too."""
    package = globals()
    for name, value in classes_defined_in(module).items():
        if name in _AMBIGUOUS:
            _AMBIGUOUS[name].append(module.__name__)
        elif name in exported:
            _AMBIGUOUS[name] = [exported.pop(name), module.__name__]
            del package[name]
        elif name not in package:
            exported[name] = module.__name__
            package[name] = value


def import_model_modules() -> list[str]:
    """Import every module under this package, export its classes; return their names."""
    names = []
    exported: dict[str, str] = {}
    for found in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        module = importlib.import_module(found.name)
        export_classes(module, exported)
        names.append(found.name)
    return names


def __getattr__(name: str) -> Any:
    if name in _AMBIGUOUS:
        raise ImportError(
            f"{name} is defined in {' and '.join(_AMBIGUOUS[name])}: import it from one of them"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MODEL_MODULES = import_model_modules()
