"""2. CLI start-up: ``alembic current`` as the documented ``uv sync --compile-bytecode``
installs it, and what ``uv run`` adds.

The baseline is the same venv with its bytecode compiled on purpose
(``python -m compileall``, the project's own modules included). Without
compiled bytecode Python compiles every module it imports (alembic,
SQLAlchemy, SQLModel, pydantic, the driver) on each start-up while
``PYTHONDONTWRITEBYTECODE=1`` is set (containers and CI images often set it,
and so does this machine), and on the first start-up otherwise. Row 2.4 shows
that cost: the venv with all bytecode removed. Every variant runs on the
100-table project against its database at head.

Rows 2.5 and 2.6 time ``uv run alembic current`` without and with
``compile-bytecode = true`` in ``[tool.uv]``, the setting this template used to
ship: with it, uv compiles the whole venv again before every ``uv run``
(astral-sh/uv#12202) and says so.

Rows 2.7 and 2.8 time Alembic's command line with and without the last garbage
collection at exit that ``db/quick_exit.py`` skips: the same ``alembic current``
through ``python -c``, once with env.py's ``atexit`` handler taken out again.
"""

from __future__ import annotations

from collections.abc import Callable
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


ALEMBIC_MAIN = "import atexit, gc; from alembic.config import main; main(argv=['current'])"


def current_through_main(project: Project, *, collect_at_exit: bool) -> None:
    """``alembic current`` through Alembic's ``main``; with ``collect_at_exit``, the exit
    collects the whole heap again, as before ``db/quick_exit.py``."""
    code = ALEMBIC_MAIN + ("; atexit.unregister(gc.freeze)" if collect_at_exit else "")
    run(project, str(project.bin / "python"), "-c", code)


def bytecode_files(project: Project) -> set[Path]:
    return set(project.backend.rglob("*.pyc"))


def compile_all(project: Project) -> None:
    """``python -m compileall`` over the venv and the project's own modules."""
    backend = project.backend
    targets = [site_packages(project), backend / project.package, backend / "migrations"]
    python = str(project.bin / "python")
    run(project, python, "-m", "compileall", "-q", "-j", "0", *map(str, targets))


COMPILE_SETTING = "\n[tool.uv]\ncompile-bytecode = true\n"


def uv_run_current(project: Project) -> str:
    """``uv run alembic current``; returns what it printed."""
    result = run(project, "uv", "run", "alembic", "current")
    return result.stdout + result.stderr


def with_compile_setting(project: Project) -> tuple[Callable[[], None], Callable[[], None]]:
    """Put the old ``[tool.uv] compile-bytecode = true`` in, and take it out again."""
    pyproject = project.backend / "pyproject.toml"
    plain = pyproject.read_text()

    def add() -> None:
        pyproject.write_text(plain + COMPILE_SETTING)

    def remove() -> None:
        pyproject.write_text(plain)

    return add, remove


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
            "uv_run": (lambda: uv_run_current(project), compiled, None),
            "uv_run_setting": (lambda: uv_run_current(project), *with_compile_setting(project)),
            "no_writes": (lambda: current(project, bytecode_writes=False), as_installed, None),
            "first_run": (lambda: current(project), as_installed, None),
            "uncompiled": (lambda: current(project, bytecode_writes=False), no_bytecode, None),
            "quick_exit": (
                lambda: current_through_main(project, collect_at_exit=False),
                compiled,
                None,
            ),
            "collected_exit": (
                lambda: current_through_main(project, collect_at_exit=True),
                compiled,
                None,
            ),
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
    uv_run = Figure(
        "2.5",
        "uv run alembic current (the README's form), venv compiled",
        samples["uv_run"],
        base,
        note="uv checks the lock and the sync before every command",
    )
    figures = [
        base,
        Figure(
            "2.2",
            "alembic current: as `uv sync --compile-bytecode` installs it, no bytecode writes",
            samples["no_writes"],
            base,
            goal=GOAL,
        ),
        Figure(
            "2.3",
            "alembic current: as `uv sync --compile-bytecode` installs it, first run",
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
        uv_run,
        Figure(
            "2.6",
            "the same with `compile-bytecode = true` in [tool.uv] (the setting dropped)",
            samples["uv_run_setting"],
            uv_run,
            note="uv compiles the whole venv again before every uv run, and prints it",
        ),
    ]
    quick_exit = Figure(
        "2.7",
        "alembic current through alembic.config.main, venv compiled (the exit skips the last "
        "garbage collection)",
        samples["quick_exit"],
    )
    figures += [
        quick_exit,
        Figure(
            "2.8",
            "the same with the last garbage collection at exit (the handler taken out)",
            samples["collected_exit"],
            quick_exit,
            note="what every alembic, db-deploy, db-doctor and gate process paid at exit before",
        ),
    ]
    add, remove = with_compile_setting(project)
    add()
    printed_with_setting = "Bytecode compiled" in uv_run_current(project)
    remove()
    evidence = {
        "uv_run_prints_bytecode_compiled": "Bytecode compiled" in uv_run_current(project),
        "uv_run_prints_bytecode_compiled_with_the_old_setting": printed_with_setting,
        "bytecode_files_after_documented_uv_sync": len(installed),
        "uv_sync_compile_bytecode_from_scratch": compiling_at_install,
        "imports_without_bytecode_s": import_profile(importtime_uncompiled),
        "imports_as_installed_no_writes_s": import_profile(importtime_installed),
        "imports_compiled_s": import_profile(importtime_compiled),
    }
    return figures, evidence
