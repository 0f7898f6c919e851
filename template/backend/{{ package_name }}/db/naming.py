"""How constraints and indexes are named: one stable name each, that a downgrade can drop.

Template-owned: `copier update` keeps this file current. ``models/__init__.py``
sets the convention on the metadata before any model exists: the one
``migrations/env_hooks.py`` chooses in ``NAMING_CONVENTION``, else the
template's, below. It decides the names autogenerate writes into new
revisions; a revision's own operations apply none (``migrations/env.py``), so
what an existing revision or a baseline creates never depends on it.

A CHECK constraint written without a name (``CheckConstraint("threshold > 0")``,
as SQLAlchemy's own docs write it) gets one from its table, the columns its
expression names and a digest of that expression: the same on every import,
so it never drifts, and Postgres' 63-byte limit is kept as SQLAlchemy keeps it
for every conventional name (a truncated name ends in a digest of the whole).
"""

from __future__ import annotations

import hashlib
import importlib
import re
from typing import Any

from sqlalchemy import CheckConstraint, Table
from sqlalchemy.sql.schema import DEFAULT_NAMING_CONVENTION

IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|\b([A-Za-z_][A-Za-z0-9_$]*)\b')
COLUMNS_IN_NAME = 2


def constraint_name(constraint: CheckConstraint, table: Table) -> str:
    """The ``%(constraint_name)s`` token: the constraint's own name, as SQLAlchemy's is,
    else (where SQLAlchemy's raises) one from the table and the expression."""
    if isinstance(constraint.name, str):
        return constraint.name
    expression = " ".join(str(constraint.sqltext).split())
    named = [
        name
        for quoted, bare in IDENTIFIER.findall(expression)
        if (name := quoted.replace('""', '"') or bare) in table.columns
    ]
    columns = list(dict.fromkeys(named))[:COLUMNS_IN_NAME]
    digest = hashlib.sha256(expression.encode()).hexdigest()[:8]
    return "_".join([*columns, digest])


# A token of this name replaces SQLAlchemy's own %(constraint_name)s.
NAMING_CONVENTION: dict[str, Any] = {
    "constraint_name": constraint_name,
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HOOKS_MODULE = "migrations.env_hooks"


def chosen_naming_convention() -> dict[str, Any]:
    """``NAMING_CONVENTION`` of ``migrations/env_hooks.py``, else the template's.

    ``None`` there is SQLAlchemy's own default, as a plain Alembic project has it:
    indexes are named ``ix_<table>_<column>``, and every other constraint is left
    unnamed, so PostgreSQL names it (``user_pkey``, ``item_owner_id_fkey``). Where
    the hooks file is not there (an installed wheel), the template's applies.
    """
    try:
        hooks = importlib.import_module(HOOKS_MODULE)
    except ModuleNotFoundError as error:
        if error.name not in ("migrations", HOOKS_MODULE):
            raise
        return NAMING_CONVENTION
    chosen = getattr(hooks, "NAMING_CONVENTION", NAMING_CONVENTION)
    return dict(DEFAULT_NAMING_CONVENTION) if chosen is None else chosen
