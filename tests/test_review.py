"""The reviewer's summary of a pull request's revisions: `uvx nox -s review` and the job summary.

The project has three committed revisions (``project_with_history``); a new
one drops a column and accepts that hazard on the record, as a pull request
would. The summary is read from the file CI names in ``GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

from pathlib import Path

from .support import USER_MODEL, Project, head_revision, output, write_revision

REASON = "user.nickname unread since release 2026.11 (PR #412)"
ACCEPTED = f'accepted_hazards = {{"ban-drop-column": "{REASON}"}}\n'


def drop_nickname(project: Project, rev: str, accepted: str = ACCEPTED) -> Path:
    path = write_revision(
        project,
        rev,
        head_revision(project),
        "op.drop_column('user', 'nickname')",
        "op.add_column('user', sa.Column('nickname', sa.String(), nullable=True))",
    )
    source = path.read_text().replace('"""handwritten"""', '"""Drop user.nickname"""')
    path.write_text(source.replace("depends_on = None\n", f"depends_on = None\n{accepted}"))
    project.write_model("user", USER_MODEL)
    return path


def test_the_summary_shows_sql_findings_accepted_hazards_and_touched_tables(
    project_with_history: Project, tmp_path: Path
) -> None:
    project = project_with_history
    parent = head_revision(project)
    path = drop_nickname(project, "d40bd40bd40b")
    summary_file = tmp_path / "step_summary.md"
    summary_file.write_text("earlier step\n")
    result = project.run(
        "uvx", "nox", "-s", "review",
        MIGRATION_LINT_BASE="HEAD", GITHUB_STEP_SUMMARY=str(summary_file),
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    summary = summary_file.read_text()
    assert summary.startswith("earlier step\n"), "appended, as GitHub expects"

    assert "1 revision(s) added or changed since MIGRATION_LINT_BASE=HEAD" in summary
    assert "### `d40bd40bd40b`: Drop user.nickname" in summary
    assert f"`migrations/versions/{path.name}`, on top of `{parent}`." in summary
    assert "```sql\n" in summary and 'ALTER TABLE "user" DROP COLUMN nickname;' in summary
    assert "UPDATE alembic_version SET version_num='d40bd40bd40b'" in summary
    assert "- accepted `ban-drop-column` (SQL line" in summary
    assert f"- `ban-drop-column`: {REASON}" in summary
    tables = summary.split("## Tables these revisions touch", 1)[1]
    assert '```mermaid\nerDiagram\n  "user" {' in tables
    assert "nickname" not in tables, "the diagram shows the models as they are now"
    assert '"team"' not in tables, "only the tables the revision touches"
    assert summary.removeprefix("earlier step\n").strip() in result.stdout, "same text locally"


def test_an_unaccepted_hazard_and_a_stale_acceptance_show_in_the_summary(
    project_with_history: Project,
) -> None:
    project = project_with_history
    drop_nickname(project, "d40bd40bd40b", accepted='accepted_hazards = {"ban-drop-table": "no"}\n')
    result = project.run("uvx", "nox", "-s", "review", MIGRATION_LINT_BASE="HEAD")
    assert result.returncode == 0, "the summary reports; lint-migrations is the gate"
    assert "- **hazard** `ban-drop-column`" in result.stdout
    assert "accepted_hazards lists ban-drop-table, but squawk no longer finds it" in result.stdout


def test_no_new_revision_gives_one_line_and_no_summary(
    project_with_history: Project, tmp_path: Path
) -> None:
    summary_file = tmp_path / "step_summary.md"
    result = project_with_history.run(
        "uvx", "nox", "-s", "review",
        MIGRATION_LINT_BASE="HEAD", GITHUB_STEP_SUMMARY=str(summary_file),
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    assert "review: 0 revision(s) added or changed since MIGRATION_LINT_BASE=HEAD" in result.stdout
    assert not summary_file.exists()
