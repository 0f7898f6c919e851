"""``python -m bench.rehearsal``: the rehearsal against a bare ``db-deploy`` of the same
revisions, on the same copy of a production of 1,000,000 users (goal: <= 1.5x).

The project, its production and its new revisions are those of
tests/test_rehearse.py (user and team, then two new revisions: constraints of
each kind in their low-lock forms, and a rewrite of ``user``), with the
violators cleaned up so that both runs migrate to head. Each run gets a fresh
copy (``CREATE DATABASE ... TEMPLATE``, untimed); the two commands take turns.
``db-deploy`` then runs ``alembic check``, which fails (these revisions have no
models): its time is in the figure, and the copy is at head all the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import psycopg

from tests.support import (
    TEAM_MODEL,
    USER_MODEL,
    Project,
    git,
    head_revision,
    load_servers_module,
    snapshot_template,
    write_revision,
)
from tests.test_rehearse import (
    ADD_TEAM_ID,
    BASE_REVISION,
    CLEAN,
    CONSTRAINTS,
    CONSTRAINTS_REVISION,
    DROP_TEAM_ID,
    WIDEN,
    seed,
)

from . import timing
from .projects import alembic, new_project, run
from .timing import Figure

USERS = 1_000_000
GOAL = 1.5


def build(template: Path, root: Path, production: str, users: int) -> Project:
    project = new_project(template, root)
    project.env["DATABASE_URL"] = production
    project.write_model("user", USER_MODEL + "    nickname: str | None = None\n")
    project.write_model("team", TEAM_MODEL)
    alembic(project, "revision", "--autogenerate", "-m", "user and team")
    write_revision(project, BASE_REVISION, head_revision(project), ADD_TEAM_ID, DROP_TEAM_ID)
    alembic(project, "upgrade", "head")
    with psycopg.connect(production, autocommit=True) as connection:
        connection.execute(seed(users))
        connection.execute(CLEAN)
        connection.execute("VACUUM ANALYZE")
    git(project.root, "init", "--quiet")
    git(project.root, "add", "--all")
    git(project.root, "commit", "--quiet", "-m", "base")
    versions = project.backend / "migrations" / "versions"
    (versions / f"{CONSTRAINTS}_constraints.py").write_text(CONSTRAINTS_REVISION)
    write_revision(
        project, WIDEN, CONSTRAINTS,
        "op.alter_column('user', 'id', type_=sa.BigInteger())",
        "op.alter_column('user', 'id', type_=sa.Integer())",
    )  # fmt: skip
    return project


def at_head(url: str) -> None:
    with psycopg.connect(url) as connection:
        [(version,)] = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert version == WIDEN, version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rehearsal", description=__doc__)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    servers = load_servers_module()
    with (
        tempfile.TemporaryDirectory(prefix="rehearsal-bench-") as tmp,
        servers.session_server() as server,
    ):
        workdir = Path(tmp)
        template = snapshot_template(workdir / "template")
        with servers.temporary_database(server) as production:
            project = build(template, workdir / "project", production, args.users)
            project.env["TEST_DATABASE_URL"] = server.url(server.maintenance_db)
            project.env["MIGRATION_LINT_BASE"] = "HEAD"
            copies: list[object] = []

            def fresh_copy() -> None:
                janitor = server.janitor(
                    servers.new_database_name("copy"), template_dbname=production.rsplit("/", 1)[1]
                )
                janitor.init()
                copies.append(janitor)

            def drop_copy() -> None:
                janitor = copies.pop()
                at_head(server.url(janitor.dbname))
                janitor.drop()

            def url() -> str:
                return server.url(copies[-1].dbname)

            def deploy() -> None:
                run(project, "uv", "run", "--no-sync", "db-deploy", check=False,
                    DATABASE_URL_UNPOOLED=url())  # fmt: skip

            def rehearse() -> None:
                run(project, str(project.bin / "python"), "-m", "migration_gate", "rehearse",
                    REHEARSE_DATABASE_URL=url())  # fmt: skip

            samples = timing.alternate(
                {
                    "deploy": (deploy, fresh_copy, drop_copy),
                    "rehearse": (rehearse, fresh_copy, drop_copy),
                },
                runs=args.runs,
                warmup=1,
            )
            fresh_copy()
            try:
                report = run(project, str(project.bin / "python"), "-m", "migration_gate",
                             "rehearse", REHEARSE_DATABASE_URL=url()).stdout  # fmt: skip
            finally:
                drop_copy()
    bare = Figure("r.1", f"db-deploy of 2 revisions, {args.users:,} users", samples["deploy"])
    rehearsal = Figure(
        "r.2", "rehearse of the same revisions", samples["rehearse"], baseline=bare, goal=GOAL
    )
    for figure in (bare, rehearsal):
        print(json.dumps(figure.as_json()))
    print(f"ratio {rehearsal.ratio:.2f} (goal <= {GOAL})\n\n{report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
