"""4. The rendered project's whole gate (``uvx nox``) at 10 and 50 revisions, against the bare work.

The bare work is what the gate checks: ``alembic upgrade head`` then
``alembic downgrade base`` of the same revisions, through the CLI, on a scratch
database. Gate and bare work take turns, so a slow spell of a shared machine
hits both. Each nox session is also timed alone (the per-session split), and a
cProfile of the pytest and lint sessions at 50 revisions says where their time
goes. The project is not a git checkout, so lint-migrations lints every
revision: the most it ever does.
"""

from __future__ import annotations

import pstats
import statistics
from pathlib import Path

from .projects import History, alembic, run
from .timing import Figure, alternate, measure, profile_summary

COUNTS = (10, 50)
SESSIONS = ("lint", "tests", "lint-migrations")
RUNS = 3
GATE_GOAL = 6.0  # whole gate / bare work, at 50 revisions
GROWTH_GOAL = 1.5  # whole gate at 50 / at 10 revisions


def profile_counts(profile: Path) -> dict[str, object]:
    """How often a session runs env.py, loads a revision file, connects and executes SQL."""
    stats = pstats.Stats(str(profile))
    wanted = {
        "alembic env.py runs": ("alembic/script/base.py", "run_env"),
        "python files loaded (env.py, revisions)": ("alembic/util/pyfiles.py", "load_python_file"),
        "psycopg2.connect": ("psycopg2/__init__.py", "connect"),
        "SQL statements": ("~", "<method 'execute' of 'psycopg2.extensions.cursor' objects>"),
        "schema reads (gate: after each upgrade and downgrade)": ("schema_state.py", "lines"),
        "processes run (git, squawk)": ("subprocess.py", "run"),
    }
    return {"profiled_total_s": round(stats.total_tt, 2)} | profile_summary(stats, wanted)  # type: ignore[attr-defined]


def profiles(history: History, server_url: str, workdir: Path) -> dict[str, object]:
    project = history.project
    found = {}
    for name, module in (("tests", ("pytest", "-q")), ("lint-migrations", LINT_MODULE)):
        profile = workdir / f"{name}.prof"
        run(
            project,
            *("uv", "run", "python", "-m", "cProfile", "-o", str(profile), "-m", *module),
            TEST_DATABASE_URL=server_url,
        )
        found[name] = profile_counts(profile)
    return found


LINT_MODULE = ("migration_gate", "lint-migrations")


def measure_gate(
    history: History, server_url: str, database_url: str, workdir: Path
) -> tuple[list[Figure], dict]:
    """Whole gate and bare work at 10 and 50 revisions, each session alone at both."""
    project = history.project

    def bare_work() -> None:
        alembic(project, "upgrade", "head", DATABASE_URL=database_url)
        alembic(project, "downgrade", "base", DATABASE_URL=database_url)

    def nox(*args: str) -> None:
        run(project, "uvx", "nox", *args, TEST_DATABASE_URL=server_url)

    bare, whole, sessions = {}, {}, {}
    for count in COUNTS:
        history.keep(count)
        project.write_schema_docs()  # committed with the revisions, as the gate expects
        found = alternate(
            {"bare": (bare_work, None, None), "gate": (nox, None, None)}, runs=RUNS, warmup=1
        )
        bare[count] = Figure(
            f"4.{len(bare) * 2 + 1}",
            f"bare work, {count} revisions: alembic upgrade head + downgrade base",
            found["bare"],
        )
        whole[count] = Figure(
            f"4.{len(whole) * 2 + 2}",
            f"whole gate (uvx nox), {count} revisions",
            found["gate"],
            bare[count],
            goal=GATE_GOAL if count == COUNTS[-1] else None,
        )
        for session in SESSIONS:
            sessions[count, session] = measure(lambda s=session: nox("-s", s), runs=RUNS, warmup=0)
    few, many = COUNTS
    growth = Figure(
        "4.5",
        f"whole gate, {many} vs {few} revisions",
        whole[many].samples,
        whole[few],
        goal=GROWTH_GOAL,
        note=f"linear with no fixed cost would be {many / few:.1f}",
    )
    split = [
        Figure(
            f"4.{6 + index}",
            f"  session {session}, {many} revisions "
            f"(at {few}: {statistics.median(sessions[few, session]):.2f} s)",
            sessions[many, session],
            bare[many],
        )
        for index, session in enumerate(SESSIONS)
    ]
    lint_per_revision = Figure(
        "4.9",
        f"  lint-migrations per revision, revisions {few + 1}-{many}",
        [
            (
                statistics.median(sessions[many, "lint-migrations"])
                - statistics.median(sessions[few, "lint-migrations"])
            )
            / (many - few)
        ],
        derived=True,
    )
    evidence = {f"profile_at_{many}": profiles(history, server_url, workdir)}
    figures = [bare[few], whole[few], bare[many], whole[many], growth, *split, lint_per_revision]
    return figures, evidence
