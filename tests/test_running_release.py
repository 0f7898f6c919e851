"""The running release keeps working while a pull request migrates.

``project_with_history`` is a git repository whose commit ``baseline`` is
what runs in production: models ``User`` (with ``nickname``) and ``Team``, and
their three revisions. Each test makes a pull request's change in the working
tree and runs the gate's tests with ``MIGRATION_LINT_BASE=baseline``, as CI
runs them with the pull request's base: the base's models, loaded from git in
a process of their own, select and insert on the schema the new revisions make.
"""

from __future__ import annotations

import subprocess

from .support import (
    TEAM_MODEL,
    USER_MODEL,
    Project,
    add_revision,
    git,
    output,
)

BASE = {"MIGRATION_LINT_BASE": "baseline"}
CHECK = "test_the_running_release_keeps_working"
RECIPES = "docs/safe-migrations.md"


def gate(project: Project, **env: str) -> subprocess.CompletedProcess[str]:
    """The gate's tests, after the schema page, as `uvx nox` runs them."""
    project.gate_command("schema-docs")
    return project.run(
        str(project.bin / "pytest"), "-q", "-p", "no:cacheprovider", **{**BASE, **env}
    )


def lint(project: Project, **env: str) -> subprocess.CompletedProcess[str]:
    return project.gate_command("lint-migrations", **{**BASE, **env})


def review(project: Project, **env: str) -> str:
    """The pull request's summary (``uvx nox -s review``), as Markdown."""
    result = project.gate_command("review", **{**BASE, **env})
    assert result.returncode == 0, output(result)
    return result.stdout


def failure_lines(result: subprocess.CompletedProcess[str], rev: str) -> list[str]:
    assert result.returncode != 0, output(result)
    assert f"FAILED tests/test_migration_gate.py::{CHECK}" in result.stdout, output(result)
    return [line for line in result.stdout.splitlines() if line.startswith(f"revision {rev} (")]


USER_WITHOUT_NICKNAME = USER_MODEL
DROP_NICKNAME = "op.drop_column('user', 'nickname')"
RESTORE_NICKNAME = "op.add_column('user', sa.Column('nickname', sa.String(), nullable=True))"
ACCEPT_DROP = 'accepted_hazards = {"ban-drop-column": "nobody reads it, we think"}'


def test_a_column_dropped_with_its_field_in_one_pull_request_breaks_the_running_release(
    project_with_history: Project,
) -> None:
    project = project_with_history
    project.write_model("user", USER_WITHOUT_NICKNAME)
    add_revision(project, "d0d0d0d0d0d0", DROP_NICKNAME, RESTORE_NICKNAME, ACCEPT_DROP)

    [line] = failure_lines(gate(project), "d0d0d0d0d0d0")

    assert "the running release (baseline) selects user.nickname, which this revision drops" in (
        line
    )
    assert "release the model change first, then drop the column in a later pull request" in line
    assert f"({RECIPES}#drop-a-column)" in line
    summary = review(project)
    assert "**Running release:** breaks it" in summary
    assert "selects user.nickname, which this revision drops" in summary


def test_the_same_drop_in_two_pull_requests_passes_with_no_acceptance(
    project_with_history: Project,
) -> None:
    """Release 1 drops the field (and retires the column); release 2, based on it, drops
    the column: squawk's ban-drop-column is satisfied by the evidence, not accepted."""
    project = project_with_history
    hooks = project.backend / "migrations" / "env_hooks.py"
    starter = hooks.read_text()
    hooks.write_text(starter + RETIRED_NICKNAME)
    project.write_model("user", USER_WITHOUT_NICKNAME)
    release_1 = gate(project)
    assert release_1.returncode == 0, output(release_1)
    git(project.root, "add", "--all")
    git(project.root, "commit", "--quiet", "-m", "release 1: the code stops using nickname")
    git(project.root, "tag", "release-1")

    hooks.write_text(starter)
    add_revision(project, "d1d1d1d1d1d1", DROP_NICKNAME, RESTORE_NICKNAME)
    release_2 = gate(project, MIGRATION_LINT_BASE="release-1")
    linted = lint(project, MIGRATION_LINT_BASE="release-1")

    assert release_2.returncode == 0, output(release_2)
    assert linted.returncode == 0, output(linted)
    assert (
        "(revision d1d1d1d1d1d1): ban-drop-column satisfied by evidence: the running release "
        "(release-1) no longer maps user.nickname"
    ) in linted.stdout, output(linted)
    summary = review(project, MIGRATION_LINT_BASE="release-1")
    assert "**Running release:** safe for the running release (release-1)." in summary


RETIRED_NICKNAME = """
from typing import Any

RETIRED = {"user.nickname"}


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "schema":
        return name in {None, "public"}
    return not (type_ == "column" and f"{parent_names['table_name']}.{name}" in RETIRED)
"""


def test_a_rename_in_one_step_breaks_the_running_release(project_with_history: Project) -> None:
    project = project_with_history
    project.write_model("user", USER_MODEL + "    handle: str | None = None\n")
    add_revision(
        project,
        "a1a1a1a1a1a1",
        "op.alter_column('user', 'nickname', new_column_name='handle')",
        "op.alter_column('user', 'handle', new_column_name='nickname')",
        'accepted_hazards = {"renaming-column": "a quick rename"}',
    )

    [line] = failure_lines(gate(project), "a1a1a1a1a1a1")

    assert "selects user.nickname, which this revision renames" in line
    assert f"({RECIPES}#rename-a-column)" in line


CODE_REQUIRED = (
    "op.add_column('team', sa.Column('code', sa.String(), nullable=False, server_default='t'))\n"
    "    op.alter_column('team', 'code', server_default=None)"
)


def test_a_required_column_with_no_default_breaks_the_running_releases_inserts(
    project_with_history: Project,
) -> None:
    """The old rows get a value, then the default goes: the old code inserts without it."""
    project = project_with_history
    project.write_model("team", TEAM_MODEL + "    code: str\n")
    add_revision(project, "c0c0c0c0c0c0", CODE_REQUIRED, "op.drop_column('team', 'code')")

    [line] = failure_lines(gate(project), "c0c0c0c0c0c0")

    assert "inserts into team without code, which this revision makes NOT NULL with no default" in (
        line
    )
    assert f"({RECIPES}#add-a-not-null-column)" in line


def test_a_type_change_in_one_step_breaks_the_running_releases_inserts(
    project_with_history: Project,
) -> None:
    """The old code still writes text where the new schema wants a number."""
    project = project_with_history
    project.write_model("team", TEAM_MODEL.replace("title: str", "title: int"))
    add_revision(
        project,
        "7e7e7e7e7e7e",
        "op.alter_column('team', 'title', type_=sa.Integer(), postgresql_using='length(title)')",
        "op.alter_column('team', 'title', type_=sa.String())",
        'accepted_hazards = {"changing-column-type": "a small table", '
        '"table-rewrite": "a small table"}',
    )

    [line] = failure_lines(gate(project), "7e7e7e7e7e7e")

    assert "inserts into team, which the new schema refuses (column " in line
    assert "is of type integer but expression is of type character varying)" in line
    assert f"({RECIPES}#change-a-columns-type)" in line


def test_an_accepted_break_passes_and_an_acceptance_needs_its_reason(
    project_with_history: Project,
) -> None:
    project = project_with_history
    project.write_model("team", TEAM_MODEL + "    code: str\n")
    path = add_revision(
        project,
        "c1c1c1c1c1c1",
        CODE_REQUIRED,
        "op.drop_column('team', 'code')",
        'accepted_hazards = {"breaks-running-release": "deployed in the Sunday window"}',
    )
    accepted = gate(project)
    assert accepted.returncode == 0, output(accepted)

    path.write_text(path.read_text().replace("deployed in the Sunday window", " "))
    unexplained = gate(project)
    assert unexplained.returncode != 0, output(unexplained)
    assert "accepted_hazards['breaks-running-release'] needs a reason" in unexplained.stdout
    assert "Traceback" not in unexplained.stdout


def test_an_acceptance_that_no_longer_applies_fails(project_with_history: Project) -> None:
    project = project_with_history
    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    add_revision(
        project,
        "0a0a0a0a0a0a",
        "op.add_column('team', sa.Column('motto', sa.String(), nullable=True))",
        "op.drop_column('team', 'motto')",
        'accepted_hazards = {"breaks-running-release": "deployed in the Sunday window"}',
    )
    [line] = failure_lines(gate(project), "0a0a0a0a0a0a")
    assert "accepted_hazards lists breaks-running-release, but the running release" in line


def test_with_no_base_ref_the_check_is_skipped_in_one_line(project_with_history: Project) -> None:
    project = project_with_history
    project.write_model("user", USER_WITHOUT_NICKNAME)
    add_revision(project, "d2d2d2d2d2d2", DROP_NICKNAME, RESTORE_NICKNAME, ACCEPT_DROP)
    result = gate(project, MIGRATION_LINT_BASE="")
    assert result.returncode == 0, output(result)
    skipped = [line for line in result.stdout.splitlines() if "running release is not" in line]
    assert len(skipped) == 1 and "no base ref" in skipped[0], output(result)


def test_a_base_whose_models_no_longer_import_is_named_and_skipped(
    project_with_history: Project,
) -> None:
    """The base imports a package the project has since removed: one line, and no failure."""
    project = project_with_history
    model = project.write_model("user", USER_MODEL + "    nickname: str | None = None\n")
    source = model.read_text()
    model.write_text("import retired_dependency  # noqa: F401\n" + source)
    git(project.root, "commit", "--quiet", "-am", "a base that imports a removed dependency")
    git(project.root, "tag", "broken-base")
    model.write_text(source)
    project.write_model("team", TEAM_MODEL + "    motto: str | None = None\n")
    add_revision(
        project,
        "0b0b0b0b0b0b",
        "op.add_column('team', sa.Column('motto', sa.String(), nullable=True))",
        "op.drop_column('team', 'motto')",
    )
    result = gate(project, MIGRATION_LINT_BASE="broken-base")
    assert result.returncode == 0, output(result)
    [skipped] = [line for line in result.stdout.splitlines() if "running release is not" in line]
    assert "do not import here: ModuleNotFoundError" in skipped, skipped
    assert "retired_dependency" in skipped, skipped
