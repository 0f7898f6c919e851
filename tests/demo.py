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
    load_servers_module,
    public_tables,
    render,
    snapshot_template,
)

NICKNAME = USER_MODEL + "    nickname: str | None = None\n"
# Each step is alembic's arguments, or a new source for models/user.py.
STEPS: list[tuple[str, list[str] | str]] = [
    ("Add a model: models/user.py", USER_MODEL),
    ("Generate the first revision from it", ["revision", "--autogenerate", "-m", "Add user table"]),
    ("Apply it", ["upgrade", "head"]),
    ("The models match the database", ["check"]),
    ("Change the model without a revision", NICKNAME),
    ("alembic check now fails: the models drifted", ["check"]),
    (
        "Generate and apply the second revision",
        ["revision", "--autogenerate", "-m", "Add nickname"],
    ),
    ("Apply it", ["upgrade", "head"]),
    ("The models match again", ["check"]),
    (
        "Nothing changed, so autogenerate writes no file",
        ["revision", "--autogenerate", "-m", "noop"],
    ),
    ("Offline: the SQL, without a connection", ["upgrade", "head", "--sql"]),
    ("Roll everything back", ["downgrade", "base"]),
]
EXPECTED_FAILURES = {"alembic check now fails: the models drifted"}


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    servers = load_servers_module()
    with tempfile.TemporaryDirectory(prefix="template-demo-") as tmp:
        say("copier copy --trust --defaults <this template> demo")
        project = Project(render(snapshot_template(Path(tmp) / "template"), Path(tmp) / "demo"))
        say("uv sync   (in demo/backend)")
        project.install()
        with servers.session_server() as server, servers.temporary_database(server) as url:
            project.env["DATABASE_URL"] = url
            for title, step in STEPS:
                if isinstance(step, str):
                    say(f"{title}\n{step}")
                    project.write_model("user", step)
                    continue
                say(f"{title}\n$ alembic {shlex.join(step)}")
                result = project.alembic(*step)
                print((result.stdout + result.stderr).rstrip())
                print(f"[exit {result.returncode}]  tables now: {sorted(public_tables(url))}")
                if bool(result.returncode) != (title in EXPECTED_FAILURES):
                    return result.returncode or 1
    say("Done: model -> revision -> upgrade -> check -> downgrade, on a real PostgreSQL.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
