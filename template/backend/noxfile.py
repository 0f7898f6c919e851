"""The migration gate as one command: `uvx nox` from backend/ (template-owned).

Sessions run in the project's own environment (`uv run`), so the gate tests
exactly what `uv sync` installs. `uvx nox -s tests` runs one of them.
"""

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "tests", "lint-migrations"]


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff on the code; revisions are reviewed, not restyled."""
    session.run("uv", "run", "ruff", "check", ".")
    session.run("uv", "run", "ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The migration gate and your own tests, against a real PostgreSQL.

    The gate upgrades every revision, checks that each downgrade undoes it,
    and fails when the models need a revision (what `alembic check` proves).
    """
    session.run("uv", "run", "pytest", *session.posargs)


@nox.session(name="lint-migrations", venv_backend="none")
def lint_migrations(session: nox.Session) -> None:
    """squawk on the SQL of the revisions added or changed since the base ref.

    The base is MIGRATION_LINT_BASE, the pull request's base branch in CI, or
    origin/main. `uvx nox -s lint-migrations -- --all` lints every revision.
    """
    session.run("uv", "run", "python", "-m", "migration_gate", "lint-migrations", *session.posargs)


@nox.session(name="schema-docs", venv_backend="none")
def schema_docs(session: nox.Session) -> None:
    """Rewrite docs/schema.md: the models' ER diagram and the revision graph, in Mermaid.

    The gate's tests fail while the page is out of date; commit what this writes.
    """
    session.run("uv", "run", "python", "-m", "migration_gate", "schema-docs")


@nox.session(venv_backend="none")
def review(session: nox.Session) -> None:
    """What the new revisions do: their SQL, squawk's findings, accepted hazards, a diagram.

    The same revisions as lint-migrations; `-- --all` reviews every revision. In
    CI this is the pull request's job summary.
    """
    session.run("uv", "run", "python", "-m", "migration_gate", "review", *session.posargs)


@nox.session(venv_backend="none")
def squash(session: nox.Session) -> None:
    """Replace the revisions up to REV with one baseline: `uvx nox -s squash -- REV`.

    Databases at REV or later need nothing; check every environment first
    (`uv run alembic current`): one below REV cannot follow the new history.
    """
    session.run("uv", "run", "python", "-m", "migration_gate", "squash", *session.posargs)
