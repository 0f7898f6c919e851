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
    head_revision,
    load_servers_module,
    public_tables,
    render,
    revision_ids,
    snapshot_template,
)

NICKNAME = USER_MODEL + "    nickname: str | None = None\n"
INDEXED_NAME = NICKNAME.replace("    name: str\n", "    name: str = Field(index=True)\n")
INDEX_REVISION = '''"""Index user.name"""

from alembic import op

revision = "a1b2c3d4e5f6"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
    op.drop_index(op.f("ix_user_name"), table_name="user")
'''
BLOCKING_INDEX = """    op.create_index(op.f("ix_user_name"), "user", ["name"])"""
CONCURRENT_INDEX = """    with op.get_context().autocommit_block():  # no transaction
        op.drop_index(  # what a failed run left
            op.f("ix_user_name"), table_name="user", postgresql_concurrently=True, if_exists=True
        )
        op.create_index(
            op.f("ix_user_name"), "user", ["name"], postgresql_concurrently=True, if_not_exists=True
        )"""
LINT = ["lint-migrations", "--all"]
# Each step is what the user does: change models/user.py, write a revision by hand,
# run alembic, or run the gate's lint (what `uvx nox -s lint-migrations -- --all` runs).
STEPS: list[tuple[str, str, list[str] | str]] = [
    ("Add a model: models/user.py", "model", USER_MODEL),
    (
        "Generate the first revision from it",
        "alembic",
        ["revision", "--autogenerate", "-m", "Add user table"],
    ),
    ("Apply it", "alembic", ["upgrade", "head"]),
    ("The models match the database", "alembic", ["check"]),
    ("Change the model without a revision", "model", NICKNAME),
    ("alembic check now fails: the models drifted", "alembic", ["check"]),
    (
        "Generate the second revision",
        "alembic",
        ["revision", "--autogenerate", "-m", "Add nickname"],
    ),
    ("Apply it", "alembic", ["upgrade", "head"]),
    ("The models match again", "alembic", ["check"]),
    (
        "Nothing changed, so autogenerate writes no file",
        "alembic",
        ["revision", "--autogenerate", "-m", "noop"],
    ),
    ("Index user.name in the model", "model", INDEXED_NAME),
    ("A hand-written revision builds it with a plain CREATE INDEX", "revision", BLOCKING_INDEX),
    ("The gate stops it: that index build blocks every write to user", "gate", LINT),
    ("The fix: CREATE INDEX CONCURRENTLY, outside the transaction", "revision", CONCURRENT_INDEX),
    ("The gate passes it", "gate", LINT),
    ("Apply it", "alembic", ["upgrade", "head"]),
    ("The models match the database", "alembic", ["check"]),
    ("Offline: the SQL, without a connection", "alembic", ["upgrade", "head", "--sql"]),
    ("Roll everything back", "alembic", ["downgrade", "base"]),
]
EXPECTED_FAILURES = {
    "alembic check now fails: the models drifted",
    "The gate stops it: that index build blocks every write to user",
}


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def write_index_revision(project: Project, upgrade: str) -> None:
    path = project.backend / "migrations" / "versions" / "a1b2c3d4e5f6_index_user_name.py"
    down = revision_ids(path)[1][0] if path.exists() else head_revision(project)
    path.write_text(INDEX_REVISION.format(down=down, upgrade=upgrade))
    print(upgrade)


def run_step(project: Project, title: str, kind: str, step: list[str] | str) -> int | None:
    """Runs one step and prints what it did; its exit status, or None for an edit."""
    if kind == "model":
        assert isinstance(step, str)
        say(f"{title}\n{step}")
        project.write_model("user", step)
        return None
    if kind == "revision":
        assert isinstance(step, str)
        say(f"{title}: migrations/versions/a1b2c3d4e5f6_index_user_name.py")
        write_index_revision(project, step)
        return None
    assert isinstance(step, list)
    if kind == "gate":
        say(f"{title}\n$ uvx nox -s lint-migrations -- {shlex.join(step[1:])}")
        result = project.gate_command(*step)
    else:
        say(f"{title}\n$ alembic {shlex.join(step)}")
        result = project.alembic(*step)
    print((result.stdout + result.stderr).rstrip())
    return result.returncode


def main() -> int:
    servers = load_servers_module()
    with tempfile.TemporaryDirectory(prefix="template-demo-") as tmp:
        say("copier copy --trust --defaults <this template> demo")
        project = Project(render(snapshot_template(Path(tmp) / "template"), Path(tmp) / "demo"))
        say("uv sync   (in demo/backend)")
        project.install()
        with servers.session_server() as server, servers.temporary_database(server) as url:
            project.env["DATABASE_URL"] = url
            # autogenerate's throwaway database at head, on the demo's own server
            project.env["SHADOW_DATABASE_URL"] = server.url(server.maintenance_db)
            project.env["MIGRATION_AUTOGENERATE_AGAINST"] = ""
            for title, kind, step in STEPS:
                returncode = run_step(project, title, kind, step)
                if returncode is None:
                    continue
                print(f"[exit {returncode}]  tables now: {sorted(public_tables(url))}")
                if bool(returncode) != (title in EXPECTED_FAILURES):
                    return returncode or 1
    say("Done: model -> revision -> upgrade -> check -> the gate -> downgrade, on PostgreSQL.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
