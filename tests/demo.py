"""`uvx nox -s demo`: the migration loop of a freshly rendered project, step by step.

Renders the template with its defaults into a temporary directory, installs it
with uv, starts a throwaway PostgreSQL (or uses TEST_DATABASE_URL), and runs
each command a user runs, printing the command and what it did.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

from .support import (
    USER_MODEL,
    Project,
    load_postgres_module,
    public_tables,
    render,
    snapshot_template,
)

STEPS: list[tuple[str, list[str]]] = [
    (
        "Generate the first revision from the new model",
        ["revision", "--autogenerate", "-m", "Add user table"],
    ),
    ("Apply it", ["upgrade", "head"]),
    ("The models match the database", ["check"]),
    (
        "Nothing changed, so autogenerate writes no file",
        ["revision", "--autogenerate", "-m", "noop"],
    ),
    ("Offline: the SQL, without a connection", ["upgrade", "head", "--sql"]),
    ("Roll everything back", ["downgrade", "base"]),
]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    postgres = load_postgres_module()
    with tempfile.TemporaryDirectory(prefix="template-demo-") as tmp:
        say("copier copy --trust --defaults <this template> demo")
        project = Project(render(snapshot_template(Path(tmp) / "template"), Path(tmp) / "demo"))
        say("uv sync   (in demo/backend)")
        project.install()
        with postgres.session_server() as server, postgres.temporary_database(server) as url:
            project.env["DATABASE_URL"] = url
            say(f"Add {project.package}/models/user.py")
            print(USER_MODEL)
            project.write_model("user", USER_MODEL)
            for title, args in STEPS:
                say(f"{title}\n$ alembic {shlex.join(args)}")
                result = project.alembic(*args)
                print((result.stdout + result.stderr).rstrip())
                print(f"[exit {result.returncode}]  tables now: {sorted(public_tables(url))}")
                if result.returncode:
                    return result.returncode
    say("Done: model -> revision -> upgrade -> check -> downgrade, on a real PostgreSQL.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
