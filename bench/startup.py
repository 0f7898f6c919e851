"""2. CLI start-up: ``alembic current`` as the documented ``uv sync`` installs it.

The baseline is the same venv with its bytecode compiled on purpose
(``python -m compileall``, the project's own modules included). Without
compiled bytecode Python compiles every module it imports (alembic,
SQLAlchemy, SQLModel, pydantic, the driver) on each start-up while
``PYTHONDONTWRITEBYTECODE=1`` is set (containers and CI images often set it,
and so does this machine), and on the first start-up otherwise. Row 2.4 shows
that cost: the venv with all bytecode removed. Every variant runs on the
100-table project against its database at head.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import Project

from .projects import (
    alembic,
    compile_bytecode,
    import_profile,
    purge_bytecode,
    run,
    site_packages,
)
from .timing import Figure, alternate

GOAL = 1.10  # the documented install should start as fast as a compiled one


def current(project: Project, *, bytecode_writes: bool = True) -> None:
    alembic(project, "current", bytecode_writes=bytecode_writes)


def bytecode_files(project: Project) -> set[Path]:
    return set(project.backend.rglob("*.pyc"))


def compile_all(project: Project) -> None:
    """``python -m compileall`` over the venv and the project's own modules."""
    backend = project.backend
    targets = [site_packages(project), backend / project.package, backend / "migrations"]
    python = str(project.bin / "python")
    run(project, python, "-m", "compileall", "-q", "-j", "0", *map(str, targets))


def measure_startup(project: Project) -> tuple[list[Figure], dict]:
    """Call with the venv as ``uv sync`` left it.

    All variants take turns, run by run; before each, the venv is put in the
    state the variant is about: as ``uv sync`` left it (bytecode written since
    is removed), compiled on purpose, or with no bytecode at all.
    """
    installed = bytecode_files(project)

    def as_installed() -> None:
        for path in bytecode_files(project) - installed:
            path.unlink()

    def no_bytecode() -> None:
        purge_bytecode(project)

    def compiled() -> None:
        compile_all(project)

    samples = alternate(
        {
            "compiled": (lambda: current(project), compiled, None),
            "uv_run": (lambda: run(project, "uv", "run", "alembic", "current"), compiled, None),
            "no_writes": (lambda: current(project, bytecode_writes=False), as_installed, None),
            "first_run": (lambda: current(project), as_installed, None),
            "uncompiled": (lambda: current(project, bytecode_writes=False), no_bytecode, None),
        }
    )
    importtime_uncompiled = alembic(
        project, "current", bytecode_writes=False, PYTHONPROFILEIMPORTTIME="1"
    ).stderr
    compiling_at_install = compile_bytecode(project)  # from none: what an install pays once
    importtime_installed = alembic(
        project, "current", bytecode_writes=False, PYTHONPROFILEIMPORTTIME="1"
    ).stderr
    compiled()
    importtime_compiled = alembic(project, "current", PYTHONPROFILEIMPORTTIME="1").stderr

    base = Figure(
        "2.1",
        "alembic current: venv compiled on purpose (python -m compileall)",
        samples["compiled"],
    )
    figures = [
        base,
        Figure(
            "2.2",
            "alembic current: as the documented `uv sync` installs it, PYTHONDONTWRITEBYTECODE=1",
            samples["no_writes"],
            base,
            goal=GOAL,
        ),
        Figure(
            "2.3",
            "alembic current: as the documented `uv sync` installs it, first run",
            samples["first_run"],
            base,
            goal=GOAL,
            note="Python may write bytecode: what a fresh venv (each CI job) pays once",
        ),
        Figure(
            "2.4",
            "alembic current: no bytecode in the venv, PYTHONDONTWRITEBYTECODE=1",
            samples["uncompiled"],
            base,
            note="a `uv sync` without compile-bytecode: every start-up compiles",
        ),
        Figure(
            "2.5",
            "uv run alembic current (the README's form), venv compiled",
            samples["uv_run"],
            base,
            note="uv checks the lock, the sync and the bytecode before every command",
        ),
    ]
    evidence = {
        "bytecode_files_after_documented_uv_sync": len(installed),
        "uv_sync_compile_bytecode_from_scratch": compiling_at_install,
        "imports_without_bytecode_s": import_profile(importtime_uncompiled),
        "imports_as_installed_no_writes_s": import_profile(importtime_installed),
        "imports_compiled_s": import_profile(importtime_compiled),
    }
    return figures, evidence
