"""8. ``alembic revision --autogenerate`` with nothing to write: a database at head, or none.

Today's way (the baseline) compares the models with ``DATABASE_URL``'s
database, warm and at head (``MIGRATION_AUTOGENERATE_AGAINST=DATABASE_URL``).
The rendered default needs no database: it compares with a clone of the head's
template database on the local server that autogenerate keeps (warm: the
warm-up run starts it and builds the template). Measured at 1 and at 50
revisions, in turn, run by run.

``python -m bench.autogenerate`` runs this piece alone.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.support import Project, load_servers_module, snapshot_template

from . import timing
from .projects import History, alembic, grow_history, new_project
from .timing import Figure, alternate

COUNTS = (1, 50)
GOAL = 1.5


def autogenerate_nothing(project: Project, database_url: str, against: str) -> None:
    """One autogenerate that finds nothing to write (and says so)."""
    output = alembic(
        project,
        "revision",
        "--autogenerate",
        "-m",
        "nothing",
        DATABASE_URL=database_url,
        DATABASE_URL_UNPOOLED="",
        MIGRATION_AUTOGENERATE_AGAINST=against,
    )
    assert "no revision file written" in output.stderr, output.stderr


def measure_autogenerate(history: History, database_url: str) -> list[Figure]:
    """Figures 7.x on ``history``, whose models and revisions are cut to each count."""
    project = history.project
    figures: list[Figure] = []
    for count in COUNTS:
        history.keep(len(history.steps))
        alembic(project, "downgrade", "base", DATABASE_URL=database_url)
        history.keep(count)
        alembic(project, "upgrade", "head", DATABASE_URL=database_url)

        def against_database_url() -> None:
            autogenerate_nothing(project, database_url, "DATABASE_URL")

        def at_head_no_database() -> None:
            autogenerate_nothing(project, "", "")

        samples = alternate(
            {
                "today": (against_database_url, None, None),
                "at_head": (at_head_no_database, None, None),
            }
        )
        base = Figure(
            f"8.{2 * COUNTS.index(count) + 1}",
            f"autogenerate, nothing to write, {count} revision(s): DATABASE_URL at head",
            samples["today"],
            note="today's way: a warm local database at head",
        )
        figures += [
            base,
            Figure(
                f"8.{2 * COUNTS.index(count) + 2}",
                f"autogenerate, nothing to write, {count} revision(s): no database configured",
                samples["at_head"],
                baseline=base,
                goal=GOAL,
                note="a clone of the head's template on autogenerate's own local server",
            ),
        ]
    history.keep(len(history.steps))
    return figures


def main() -> int:
    servers = load_servers_module()
    with tempfile.TemporaryDirectory(prefix="bench-autogenerate-") as tmp:
        workdir = Path(tmp)
        template = snapshot_template(workdir / "template")
        with servers.session_server() as server, servers.temporary_database(server) as url:
            project = new_project(template, workdir / "history" / "project")
            history = grow_history(project, max(COUNTS), workdir / "history", url)
            figures = measure_autogenerate(history, url)
    print(f"Median of {timing.RUNS} runs after {timing.WARMUP} warm-up, same run:")
    for figure in figures:
        ratio = f"  {figure.ratio:.2f} x {figure.baseline.key}" if figure.baseline else ""
        goal = "" if figure.met is None else f"  <= {GOAL} {'met' if figure.met else 'MISSED'}"
        print(f"{figure.key}  {figure.label}: {figure.median:.3f} s{ratio}{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
