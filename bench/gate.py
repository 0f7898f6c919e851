"""4. The rendered project's whole gate (``uvx nox``) at 10 and 50 revisions, against the bare work.

The bare work is what the gate checks: ``alembic upgrade head`` then
``alembic downgrade base`` of the same revisions, through the CLI, on a scratch
database. Gate and bare work take turns, so a slow spell of a shared machine
hits both; at 50 revisions so does the gate on empty tables
(``MIGRATION_GATE_ROWS=0``, the gate before it ran on rows). The gate's own
report says where its climb's time went: making up and writing rows, the
copies and comparisons of rows, the trace of locks and rewrites, and the
migrations with their schema reads. Each nox session is also timed alone (the
per-session split), and a cProfile of the pytest and lint sessions at 50
revisions says where their time goes. The project is not a git checkout, so
lint-migrations lints every revision and the gate runs every one on rows: the
most they ever do. Row 4.15 times the running-release check on its own: with
the history committed as the base, the base's models load in one process and
select and insert on every table at head.
"""

from __future__ import annotations

import pstats
import re
import shutil
import statistics
from pathlib import Path

from tests.support import git

from .projects import History, alembic, run
from .timing import Figure, alternate, measure, profile_summary

COUNTS = (10, 50)
SESSIONS = ("lint", "tests", "lint-migrations")
RUNS = 3
GATE_GOAL = 3.0  # whole gate on rows / bare work, at 50 revisions
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
# The last line of the gate's report (migration_gate/pytest_plugin.py).
GATE_TIMES = re.compile(
    r"time: climb and descent (?P<total>[\d.]+) s, of which rows (?P<rows>[\d.]+) s, "
    r"comparisons (?P<comparisons>[\d.]+) s, trace (?P<trace>[\d.]+) s "
    r"\(migrations and schema reads (?P<migrations>[\d.]+) s\)"
)
SPLIT = {
    "migrations": "migrations and schema reads",
    "rows": "making up and writing rows",
    "comparisons": "copies of rows and their comparisons",
    "trace": "locks and rewrites (trace)",
}


def climb_split(history: History, server_url: str) -> dict[str, list[float]]:
    """The gate's report of its climb's time, over ``RUNS`` runs of its tests."""
    found: dict[str, list[float]] = {part: [] for part in ["total", *SPLIT]}
    for _ in range(RUNS):
        result = run(history.project, "uv", "run", "pytest", "-q", TEST_DATABASE_URL=server_url)
        times = GATE_TIMES.search(result.stdout)
        if times is None:
            raise ValueError(f"the gate printed no time line:\n{result.stdout[-2000:]}")
        for part, seconds in times.groupdict().items():
            found[part].append(float(seconds))
    return found


RELEASE_CHECK = (
    "import sys; from migration_gate.running_release import old_release; "
    "release = old_release('bench-base', sys.argv[1]); "
    "assert all('select' in table for table in release.tables.values())"
)


def running_release_check(history: History, database_url: str) -> list[float]:
    """``old_release`` as the gate's test runs it, with the committed history as the base,
    on the database at head; the project is a git checkout only meanwhile."""
    project = history.project
    alembic(project, "upgrade", "head", DATABASE_URL=database_url)
    git(project.root, "init", "--quiet")
    git(project.root, "add", "--all")
    git(project.root, "commit", "--quiet", "--no-verify", "-m", "the base")
    git(project.root, "tag", "bench-base")
    try:
        python = str(project.bin / "python")
        return measure(
            lambda: run(project, python, "-c", RELEASE_CHECK, database_url), runs=RUNS, warmup=1
        )
    finally:
        shutil.rmtree(project.root / ".git")
        alembic(project, "downgrade", "base", DATABASE_URL=database_url)


def measure_gate(
    history: History, server_url: str, database_url: str, workdir: Path
) -> tuple[list[Figure], dict]:
    """Whole gate and bare work at 10 and 50 revisions, each session alone at both."""
    project = history.project

    def bare_work() -> None:
        alembic(project, "upgrade", "head", DATABASE_URL=database_url)
        alembic(project, "downgrade", "base", DATABASE_URL=database_url)

    def nox(*args: str, **env: str) -> None:
        run(project, "uvx", "nox", *args, TEST_DATABASE_URL=server_url, **env)

    def nox_without_rows() -> None:
        nox(MIGRATION_GATE_ROWS="0")

    bare, whole, sessions = {}, {}, {}
    without_rows: list[float] = []
    for count in COUNTS:
        history.keep(count)
        project.write_schema_docs()  # committed with the revisions, as the gate expects
        steps = {"bare": (bare_work, None, None), "gate": (nox, None, None)}
        if count == COUNTS[-1]:
            steps["no rows"] = (nox_without_rows, None, None)
        found = alternate(steps, runs=RUNS, warmup=1)
        without_rows = found.get("no rows", without_rows)
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
    no_rows = Figure(
        "4.10",
        f"whole gate on empty tables (MIGRATION_GATE_ROWS=0, the gate before rows), {many} "
        "revisions",
        without_rows,
        bare[many],
    )
    release_check = running_release_check(history, database_url)
    climb = climb_split(history, server_url)
    climb_figures = [
        Figure(
            f"4.{11 + index}",
            f"  the gate's climb and descent, {many} revisions on rows: {label}",
            climb[part],
            bare[many],
        )
        for index, (part, label) in enumerate(SPLIT.items())
    ]
    release_figure = Figure(
        "4.15",
        f"  the running-release check, {many} revisions: the base ref's models (one process) "
        "select and insert on every table at head",
        release_check,
        whole[many],
        note="what a pull request with a base ref adds to the gate's tests",
    )
    evidence = {
        f"profile_at_{many}": profiles(history, server_url, workdir),
        f"climb_at_{many}_s": {part: statistics.median(values) for part, values in climb.items()},
    }
    figures = [
        bare[few], whole[few], bare[many], whole[many], growth, *split, lint_per_revision,
        no_rows, *climb_figures, release_figure,
    ]  # fmt: skip
    return figures, evidence
