"""4. The rendered project's migration gate (``uv run pytest``) at 10 and at 50 revisions.

The same project is measured with its first 10 revisions, then with all 50,
against the bench's session server (``TEST_DATABASE_URL``). ``--durations=0``
only adds pytest's timing report, which shows how each test's cost grows
with its revision's place in the history.
"""

from __future__ import annotations

import pstats
import re
import statistics
from pathlib import Path

from .projects import History, run
from .timing import Figure, measure, measure_until, profile_summary

COUNTS = (10, 50)
STAIRWAY = re.compile(r"^([\d.]+)s call\s+\S+::test_stairway\[(\w+)\]", re.MULTILINE)
PYTEST = ("uv", "run", "pytest", "--durations=0")


def stairway_growth(history: History, report: str) -> dict[str, object]:
    """Fit each stairway test's duration against its revision's position (1 = oldest)."""
    position = {
        step["revision_file"].split("_")[2]: index
        for index, step in enumerate(history.steps, start=1)
    }
    points = sorted((position[rev], float(seconds)) for seconds, rev in STAIRWAY.findall(report))
    if len(points) < 3:
        return {}
    slope, intercept = statistics.linear_regression(*zip(*points, strict=True))
    return {
        "stairway_tests": len(points),
        "first_s": points[0][1],
        "last_s": points[-1][1],
        "fit_s": f"{intercept:.3f} + {slope:.4f} * position",
        "sum_s": round(sum(seconds for _, seconds in points), 2),
    }


def profile_counts(profile: Path) -> dict[str, object]:
    """How often the gate connects, runs env.py and executes SQL, from a cProfile dump."""
    stats = pstats.Stats(str(profile))
    wanted = {
        "psycopg2.connect": ("psycopg2/__init__.py", "connect"),
        "alembic env.py runs": ("alembic/script/base.py", "run_env"),
        "SQL statements": ("~", "<method 'execute' of 'psycopg2.extensions.cursor' objects>"),
    }
    return {"profiled_total_s": round(stats.total_tt, 2)} | profile_summary(stats, wanted)  # type: ignore[attr-defined]


def measure_gate(
    history: History, server_url: str, workdir: Path, deadline: float
) -> tuple[list[Figure], dict]:
    """The gate's wall time at 10 and at 50 revisions, and where it goes.

    At 10 revisions the warm-up is a profiled run. One run at 50 revisions takes
    a minute or more, so that figure gets as many runs as fit before ``deadline``
    (at least 3), with 4.1's runs as warm-up: the same venv and the same server.
    """
    project = history.project
    few, many = COUNTS
    reports = {}

    def gate() -> None:
        result = run(project, *PYTEST, TEST_DATABASE_URL=server_url)
        reports[history.kept] = result.stdout

    history.keep(few)
    profile = workdir / "gate.prof"
    run(
        project,
        *("uv", "run", "python", "-m", "cProfile", "-o", str(profile), "-m", "pytest", "-q"),
        TEST_DATABASE_URL=server_url,
    )
    samples = {few: measure(gate, warmup=0)}
    history.keep(many)
    samples[many] = measure_until(gate, deadline)

    at_few = Figure("4.1", f"migration gate, {few} revisions (uv run pytest)", samples[few])
    at_many = Figure(
        "4.2",
        f"migration gate, {many} revisions",
        samples[many],
        at_few,
        note=f"no warm-up of its own; linear with no fixed cost would be {many / few:.1f}",
    )
    first = Figure(
        "4.3",
        f"  per revision, first {few} (gate / {few})",
        [at_few.median / few],
        derived=True,
        note="includes the gate's fixed cost",
    )
    later = Figure(
        "4.4",
        f"  per revision, revisions {few + 1}-{many}",
        [(at_many.median - at_few.median) / (many - few)],
        first,
        derived=True,
        note="ratio > 1: each revision costs more than the ones before it",
    )
    evidence = {
        f"stairway_at_{many}": stairway_growth(history, reports[many]),
        f"profile_at_{few}": profile_counts(profile),
    }
    return [at_few, at_many, first, later], evidence
