"""Revisions that exist at the base ref never change the SQL their upgrade runs.

Production never runs an applied revision again, so the lint compares each one
edited since the base by the SQL its upgrade renders offline, not by its bytes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import Project, output

BASE = {"MIGRATION_LINT_BASE": "baseline"}  # the tag of the committed history


def lint(project: Project, **env: str) -> subprocess.CompletedProcess[str]:
    command = ("-m", "migration_gate", "lint-migrations")
    return project.run(str(project.bin / "python"), *command, **env)


def team_revision(project: Project) -> Path:
    [path] = [p for p in project.revision_files() if "add_team" in p.name]
    return path


def edit(old: str, new: str) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        source = path.read_text()
        assert old in source, f"{path.name} no longer contains {old!r}; adapt this test"
        path.write_text(source.replace(old, new))

    return apply


HARMLESS = {
    "downgrade-only": edit("op.drop_table('team')", "op.drop_table('team', if_exists=True)"),
    "comment": edit("def upgrade() -> None:", "# Reviewed in PR #7.\ndef upgrade() -> None:"),
    "formatting": edit(
        "sa.Column('title', sa.String(), nullable=False),",
        'sa.Column(\n        "title",\n        sa.String(),\n        nullable=False,\n    ),',
    ),
}


@pytest.mark.parametrize("kind", HARMLESS)
def test_edits_that_keep_the_upgrade_sql_pass(project_with_history: Project, kind: str) -> None:
    HARMLESS[kind](team_revision(project_with_history))
    result = lint(project_with_history, **BASE)
    assert result.returncode == 0, output(result)
    assert "1 revision(s) added or changed since MIGRATION_LINT_BASE=baseline" in output(result)


def test_a_changed_upgrade_fails_naming_the_revision_and_the_way_out(
    project_with_history: Project,
) -> None:
    path = team_revision(project_with_history)
    edit("sa.String(), nullable=False", "sa.String(length=80), nullable=False")(path)
    result = lint(project_with_history, **BASE)
    assert result.returncode == 1, output(result)
    [line] = [line for line in output(result).splitlines() if "changed the SQL" in line]
    assert path.name in line and "make the change in a new revision" in line
    assert "alembic revision" in line and "git checkout" in line


def test_a_deleted_applied_revision_fails(project_with_history: Project) -> None:
    path = team_revision(project_with_history)
    path.unlink()
    result = lint(project_with_history, **BASE)
    assert result.returncode == 1, output(result)
    [line] = [line for line in output(result).splitlines() if "was deleted" in line]
    assert path.name in line and "restore it" in line


def test_an_edited_revision_whose_sql_cannot_render_is_reported_as_such(
    project_with_history: Project,
) -> None:
    edit(
        "    # ### end Alembic commands ###\n\n\ndef downgrade",
        "    op.get_bind().execute(sa.text('SELECT 1')).scalar_one()\n\n\ndef downgrade",
    )(team_revision(project_with_history))
    result = lint(project_with_history, **BASE)
    assert result.returncode == 1, output(result)
    assert "Traceback" not in output(result)
    [line] = [line for line in output(result).splitlines() if "cannot be compared" in line]
    assert "cannot render its SQL offline" in line and "add_team" in line


def test_without_a_base_the_comparison_is_skipped_in_one_line(
    project_with_history: Project,
) -> None:
    edit("sa.String(), nullable=False", "sa.String(length=80), nullable=False")(
        team_revision(project_with_history)
    )
    result = lint(project_with_history)
    assert result.returncode == 0, output(result)
    lines = [line for line in output(result).splitlines() if "not checked" in line]
    assert lines == [
        "lint-migrations: all 3 revision(s); applied revisions and the running release not "
        "checked: no base ref (set MIGRATION_LINT_BASE, or fetch origin/main)"
    ]
