"""2. CLI start-up: ``alembic current`` as the documented ``uv sync`` installs it.

The baseline is the same venv with its bytecode compiled on purpose
(``uv sync --compile-bytecode``). Without compiled bytecode Python compiles
every module it imports (alembic, SQLAlchemy, SQLModel, pydantic, the driver)
on each start-up while ``PYTHONDONTWRITEBYTECODE=1`` is set (containers and CI
images often set it, and so does this machine), and on the first start-up
otherwise. Row 2.4 shows that cost: the venv with all bytecode removed.
Every variant runs on the 100-table project against its database at head.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import Project

from .projects import alembic, compile_bytecode, import_profile, purge_bytecode, run
from .timing import Figure, alternate, measure

GOAL = 1.10  # the documented install should start as fast as a compiled one


def current(project: Project, **options: object) -> None:
    alembic(project, "current", **options)


def bytecode_files(project: Project) -> set[Path]:
    return set(project.backend.rglob("*.pyc"))


def measure_startup(project: Project) -> tuple[list[Figure], dict]:
    """Call with the venv as ``uv sync`` left it; leaves it compiled."""
    installed = bytecode_files(project)

    def as_installed() -> None:
        """Remove the bytecode that runs since ``uv sync`` wrote."""
        for path in bytecode_files(project) - installed:
            path.unlink()

    documented = alternate(
        {
            "no_writes": (lambda: current(project, bytecode_writes=False), None, None),
            "first_run": (lambda: current(project), as_installed, None),
        }
    )
    purge_bytecode(project)
    uncompiled = measure(lambda: current(project, bytecode_writes=False))
    importtime_uncompiled = alembic(
        project, "current", bytecode_writes=False, PYTHONPROFILEIMPORTTIME="1"
    ).stderr
    uv_summary = compile_bytecode(project)
    compiled = alternate(
        {
            "compiled": (lambda: current(project), None, None),
            "uv_run": (lambda: run(project, "uv", "run", "alembic", "current"), None, None),
        }
    )
    importtime_compiled = alembic(project, "current", PYTHONPROFILEIMPORTTIME="1").stderr

    base = Figure(
        "2.1",
        "alembic current: venv compiled on purpose (uv sync --compile-bytecode)",
        compiled["compiled"],
    )
    figures = [
        base,
        Figure(
            "2.2",
            "alembic current: as the documented `uv sync` installs it, PYTHONDONTWRITEBYTECODE=1",
            documented["no_writes"],
            base,
            goal=GOAL,
        ),
        Figure(
            "2.3",
            "alembic current: as the documented `uv sync` installs it, first run",
            documented["first_run"],
            base,
            goal=GOAL,
            note="Python may write bytecode: what a fresh venv (each CI job) pays once",
        ),
        Figure(
            "2.4",
            "alembic current: no bytecode in the venv, PYTHONDONTWRITEBYTECODE=1",
            uncompiled,
            base,
            note="a `uv sync` without compile-bytecode: every start-up compiles",
        ),
        Figure(
            "2.5",
            "uv run alembic current (the README's form), venv compiled",
            compiled["uv_run"],
            base,
            note="uv checks the lock, the sync and the bytecode before every command",
        ),
    ]
    evidence = {
        "bytecode_files_after_documented_uv_sync": len(installed),
        "uv_sync_compile_bytecode_says": uv_summary,
        "imports_without_bytecode_s": import_profile(importtime_uncompiled),
        "imports_compiled_s": import_profile(importtime_compiled),
    }
    return figures, evidence
