"""Synthetic workloads: model modules, the baseline env.py, two template versions.

Every table looks like one a service really has: a primary key, an indexed
name, a unique code, numbers, a flag, a nullable note, a timestamp and a
foreign key to its neighbour, so autogenerate and ``alembic check`` compare
columns, indexes, unique constraints and foreign keys.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import git

MODULE_HEADER = """\
from datetime import datetime
from decimal import Decimal

from sqlmodel import Field, SQLModel
"""

TABLE = """

class {cls}(SQLModel, table=True):
    __tablename__ = "{table}"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=200)
    code: str = Field(unique=True, max_length=32)
    quantity: int = 0
    price: Decimal = Field(default=0, max_digits=12, decimal_places=2)
    active: bool = True
    note: str | None = None
    created_at: datetime
"""

FOREIGN_KEY = """\
    {parent}_id: int | None = Field(default=None, foreign_key="{parent}.id", index=True)
"""


def table_name(number: int) -> str:
    return f"item_{number:03d}"


def table_source(number: int) -> str:
    """One table class; every table but the first refers to the one before it."""
    source = TABLE.format(cls=f"Item{number:03d}", table=table_name(number))
    if number > 1:
        source += FOREIGN_KEY.format(parent=table_name(number - 1))
    return source


def model_module(numbers: range) -> str:
    return MODULE_HEADER + "".join(table_source(number) for number in numbers)


def write_model_set(models_dir: Path, tables: int, per_module: int = 10) -> list[Path]:
    """``tables`` tables in modules of ``per_module``, one module per area as the template says."""
    paths = []
    for first in range(1, tables + 1, per_module):
        numbers = range(first, min(first + per_module, tables + 1))
        path = models_dir / f"area_{first // per_module + 1:02d}.py"
        path.write_text(model_module(numbers))
        paths.append(path)
    return paths


BASELINE_WIRING = """\
import os

from sqlmodel import SQLModel

import {package}.models  # noqa: F401

target_metadata = SQLModel.metadata
config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"])
"""


def baseline_env_py(stock_env_py: str, package: str) -> str:
    """Alembic's own ``generic`` env.py plus the three-line wiring (models, metadata, URL)."""
    marker = "target_metadata = None\n"
    if marker not in stock_env_py:
        raise ValueError("alembic's generic env.py no longer has 'target_metadata = None'")
    return stock_env_py.replace(marker, BASELINE_WIRING.format(package=package))


def release_next_template_version(template: Path, tag: str) -> None:
    """Commit a small template change and tag it, as a template release would."""
    guide = template / "template" / "backend" / "docs" / "migrations.md.jinja"
    guide.write_text(guide.read_text() + f"\n<!-- template release {tag} -->\n")
    git(template, "commit", "--quiet", "--no-verify", "-am", f"release {tag}")
    git(template, "tag", tag)
