"""1. ``alembic check`` on 100 tables: the rendered env.py against a three-line wiring.

Both run in the same venv (bytecode compiled), on the same models and the same
database at head. The baseline is Alembic's own ``generic`` env.py with the
models imported, ``target_metadata = SQLModel.metadata`` and the URL set:
what a team writes by hand. It gets the URL with the project's driver
(``postgresql+psycopg2``): a bare ``postgresql://`` would load psycopg 3,
SQLAlchemy 2.1's default, and compare two drivers instead of two env.py files.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import Project

from . import workloads
from .projects import alembic, copy_backend, import_profile, imports, site_packages
from .timing import Figure, alternate

DRIVER = "postgresql+psycopg2"


def baseline_copy(project: Project, workdir: Path) -> Path:
    backend = copy_backend(project, workdir / "baseline" / "backend")
    stock = site_packages(project) / "alembic" / "templates" / "generic" / "env.py"
    env_py = workloads.baseline_env_py(stock.read_text(), project.package)
    (backend / "migrations" / "env.py").write_text(env_py)
    return backend


def measure_check_overhead(project: Project, workdir: Path) -> tuple[list[Figure], dict]:
    baseline_dir = baseline_copy(project, workdir)
    url = project.env["DATABASE_URL"]
    baseline_url = url.replace("postgresql://", f"{DRIVER}://", 1)

    def rendered() -> None:
        alembic(project, "check")

    def baseline() -> None:
        alembic(project, "check", cwd=baseline_dir, DATABASE_URL=baseline_url)

    samples = alternate({"rendered": (rendered, None, None), "baseline": (baseline, None, None)})
    base = Figure(
        "1.1",
        "alembic check, 100 tables: 3-line wiring (stock env.py)",
        samples["baseline"],
        note="Alembic's generic env.py + models import, SQLModel.metadata, URL",
    )
    ours = Figure(
        "1.2",
        "alembic check, 100 tables: rendered env.py",
        samples["rendered"],
        baseline=base,
        goal=1.10,
        note="adds advisory lock, timeouts, compare_server_default, env_hooks",
    )
    profiles = {
        "rendered": alembic(project, "check", PYTHONPROFILEIMPORTTIME="1").stderr,
        "baseline": alembic(
            project,
            "check",
            cwd=baseline_dir,
            DATABASE_URL=baseline_url,
            PYTHONPROFILEIMPORTTIME="1",
        ).stderr,
    }
    baseline_modules = {name for name, *_ in imports(profiles["baseline"])}
    only_rendered: dict[str, float] = {}  # by top-level package: self time of its modules
    for name, own, _, _ in imports(profiles["rendered"]):
        if name not in baseline_modules:
            package = name.split(".")[0]
            only_rendered[package] = only_rendered.get(package, 0.0) + own
    evidence = {
        "imports_rendered_s": import_profile(profiles["rendered"]),
        "imports_baseline_s": import_profile(profiles["baseline"]),
        "imported_only_by_rendered_s": {
            package: round(own, 3) for package, own in sorted(only_rendered.items())
        },
    }
    return [base, ours], evidence
