"""The rendered GitHub Actions workflows: valid, pinned, least privilege, zizmor-clean."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import Project

BIN = Path(sys.executable).parent
LEAST_PRIVILEGE = {
    "gate": {"contents": "read"},
    "migrate": {"contents": "read", "pull-requests": "write"},  # the schema-diff comment
    "delete": {},
    "deploy": {"contents": "read"},
    "doctor": {"contents": "read"},
    "report": {"issues": "write"},  # the drift issue; this job sees no database secret
    "update": {"contents": "write", "pull-requests": "write"},  # push a branch, open the PR
}
ALWAYS = ["deploy-migrations.yml", "drift-watch.yml", "migration-gate.yml"]
# delete-branch-action's main at the merge of its fix (PR #33): inputs reach
# the shell through env. Its v3.2.1 tag interpolates them into the script.
DELETE_BRANCH_MAIN = "aed9ab1ec86e380312c7b0a9e29942e41349adf6"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# What turns on each workflow that reaches production or writes to GitHub or Neon:
# a repository variable its jobs' `if:` checks. Until it is set, they are skipped.
SWITCHES = {
    "deploy-migrations.yml": "DEPLOY_MIGRATIONS",
    "drift-watch.yml": "DRIFT_WATCH",
    "template-update.yml": "TEMPLATE_UPDATE",
    "neon-branch.yml": "NEON_PROJECT_ID",  # the variable it needs anyway
}
SWITCH = re.compile(r"vars\.(\w+) (?:== 'true'|!= '')")


def zizmor(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "zizmor", "--offline", "--no-progress", "."],
        cwd=root,
        capture_output=True,
        text=True,
    )


def schema_check(*workflows: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows],
        capture_output=True,
        text=True,
    )


def workflows(root: Path) -> list[Path]:
    return sorted((root / ".github/workflows").glob("*.yml"))


def top_level_conjuncts(condition: str) -> list[str]:
    """The operands of an `if:` expression's `&&`, outside parentheses and quotes."""
    parts, start, depth, quoted = [], 0, 0, False
    for index, char in enumerate(condition):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and condition.startswith("&&", index) and index >= start:
            parts.append(condition[start:index])
            start = index + 2
    return [part.strip() for part in [*parts, condition[start:]]]


def job_switches(job: dict[str, Any]) -> set[str]:
    """The repository variables without which the job is skipped: each one is a whole
    `&&` operand of its `if:`, so the condition is false while the variable is unset."""
    conditions = top_level_conjuncts(str(job.get("if", "")))
    return {match[1] for part in conditions if (match := SWITCH.fullmatch(part))}


def header(path: Path) -> str:
    """The workflow's leading comment."""
    return "\n".join(takewhile(lambda line: line.startswith("#"), path.read_text().splitlines()))


@pytest.mark.parametrize("neon_branch_per_pr", [False, True])
def test_workflows_are_valid_and_zizmor_clean(
    render_project: Callable[..., Project], neon_branch_per_pr: bool
) -> None:
    root = render_project(neon_branch_per_pr=neon_branch_per_pr, postgres_version="16").root
    names = [path.name for path in workflows(root)]
    expected = [
        *ALWAYS,
        "template-update.yml",
        *(["neon-branch.yml"] if neon_branch_per_pr else []),
    ]
    assert names == sorted(expected)
    checked = schema_check(*workflows(root))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    audited = zizmor(root)
    assert audited.returncode == 0, audited.stdout + audited.stderr


@pytest.mark.parametrize("neon_branch_per_pr", [False, True])
def test_workflows_use_least_privilege_and_pinned_actions(
    render_project: Callable[..., Project], neon_branch_per_pr: bool
) -> None:
    root = render_project(neon_branch_per_pr=neon_branch_per_pr, postgres_version="16").root
    for path in workflows(root):
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {}, f"{path.name}: no default token permissions"
        for name, job in workflow["jobs"].items():
            assert job["permissions"] == LEAST_PRIVILEGE[name], f"{path.name}: job {name}"
            for step in job["steps"]:
                uses = step.get("uses", "")
                if uses:
                    assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a commit"
                if uses.startswith("actions/checkout"):
                    assert step["with"]["persist-credentials"] is False
    gate = yaml.safe_load((root / ".github/workflows/migration-gate.yml").read_text())
    assert gate["jobs"]["gate"]["services"]["postgres"]["image"] == "postgres:16"
    runs = [step.get("run") for step in gate["jobs"]["gate"]["steps"]]
    assert runs[-2:] == ["uvx nox", "uvx nox -s review"]


def test_pull_requests_get_the_review_as_a_job_summary(
    render_project: Callable[..., Project],
) -> None:
    """A job summary needs no write permission; it is written even when the gate failed."""
    root = render_project().root
    gate = yaml.safe_load((root / ".github/workflows/migration-gate.yml").read_text())
    job = gate["jobs"]["gate"]
    [review] = [step for step in job["steps"] if step.get("run") == "uvx nox -s review"]
    assert review["if"] == "${{ !cancelled() && github.event_name == 'pull_request' }}"
    assert job["permissions"] == {"contents": "read"}, "no pull-requests: write for a comment"
    assert "GITHUB_STEP_SUMMARY" not in str(review), "review appends itself; a redirect doubles it"


def steps_of(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def test_neon_branch_is_pinned_expires_and_is_rehearsed_on_after_a_reset(
    render_project: Callable[..., Project],
) -> None:
    path = render_project(neon_branch_per_pr=True).root / ".github/workflows/neon-branch.yml"
    neon = yaml.safe_load(path.read_text())
    steps = steps_of(neon, "migrate")
    runs = [s.get("run", "") for s in steps]
    mask, reset, rehearse = (
        next(i for i, run in enumerate(runs) if marker in run)
        for marker in ("::add-mask::$BRANCH_PASSWORD", "branches reset", "nox -s rehearse")
    )
    assert mask < reset < rehearse, "masked before any step may print it; reset before rehearsal"
    assert "::add-mask::$BRANCH_URL" in runs[mask]
    assert "--parent" in runs[reset] and "${{" not in runs[reset], "inputs reach it through env"
    assert runs[rehearse] == 'uvx nox -s rehearse -- "$BRANCH_URL"'
    assert steps[rehearse]["env"]["BRANCH_URL"] == "${{ steps.branch.outputs.db_url }}"
    assert "TEST_DATABASE_URL" in steps[rehearse]["env"], "its scratch server: the service"
    assert not any("db-deploy" in run for run in runs), "the rehearsal replaces the bare deploy"
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0, "the rehearsal selects what the PR adds"
    uses = {
        s["uses"].split("@")[0]: s
        for job in neon["jobs"]
        for s in steps_of(neon, job)
        if "uses" in s
    }
    assert uses["neondatabase/delete-branch-action"]["uses"].endswith(DELETE_BRANCH_MAIN)
    create = uses["neondatabase/create-branch-action"]["with"]
    assert create["expires_at"] == "${{ steps.expiry.outputs.expires_at }}"
    assert "neondatabase/schema-diff-action" in uses
    assert "secrets.NEON_API_KEY" in path.read_text()


def test_deploy_migrates_production_once_at_a_time(render_project: Callable[..., Project]) -> None:
    deploy = yaml.safe_load(
        (render_project().root / ".github/workflows/deploy-migrations.yml").read_text()
    )
    assert deploy[True] == {"push": {"branches": ["main"]}}  # YAML 1.1 reads "on" as True
    assert deploy["concurrency"]["cancel-in-progress"] is False
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert job["if"] == "vars.DEPLOY_MIGRATIONS == 'true'", "no production run until switched on"
    migrate = steps_of(deploy, "deploy")[-1]
    assert migrate["run"] == "uv run --no-sync db-deploy"
    assert migrate["env"] == {
        "DATABASE_URL_UNPOOLED": "${{ secrets.DATABASE_URL_UNPOOLED }}",
        "DATABASE_URL": "${{ secrets.DATABASE_URL }}",
    }


def test_drift_watch_runs_daily_read_only_and_reports_in_one_issue(
    render_project: Callable[..., Project],
) -> None:
    path = render_project().root / ".github/workflows/drift-watch.yml"
    watch = yaml.safe_load(path.read_text())
    assert set(watch[True]) == {"schedule", "workflow_dispatch"}
    doctor = next(s for s in steps_of(watch, "doctor") if s.get("id") == "doctor")
    assert doctor["env"] == {"DATABASE_URL": "${{ secrets.DATABASE_URL_READONLY }}"}
    assert "uv run --no-sync db-doctor" in doctor["run"]
    report = watch["jobs"]["report"]
    assert report["needs"] == "doctor" and report["if"] == "failure() && vars.DRIFT_WATCH == 'true'"
    issue = report["steps"][0]
    assert "secrets." not in yaml.safe_dump(report), "the job that writes issues sees no database"
    assert issue["env"]["REPORT"] == "${{ needs.doctor.outputs.report }}"
    assert "gh issue edit" in issue["run"] and "gh issue create" in issue["run"]
    assert path.read_text().count("secrets.") == 1


def test_every_run_step_is_valid_bash(render_project: Callable[..., Project]) -> None:
    for path in workflows(render_project(neon_branch_per_pr=True).root):
        workflow = yaml.safe_load(path.read_text())
        for job in workflow["jobs"]:
            for step in steps_of(workflow, job):
                if "run" in step:
                    parsed = subprocess.run(
                        ["bash", "-n"], input=step["run"], capture_output=True, text=True
                    )
                    assert parsed.returncode == 0, f"{path.name}, {job}: {parsed.stderr}"


@pytest.mark.parametrize("name", [*ALWAYS, "neon-branch.yml"])
def test_the_validators_catch_a_broken_workflow(
    render_project: Callable[..., Project], name: str
) -> None:
    """A template injection fails zizmor; a misspelt key fails the schema check."""
    root = render_project(neon_branch_per_pr=True).root
    workflow = root / ".github/workflows" / name
    original = workflow.read_text()
    assert original.count("        run: uv sync") + original.count("      - run: uv sync") == 1
    workflow.write_text(
        re.sub(
            r"run: uv sync.*\n",
            'run: echo "${{ github.event.head_commit.message }}"\n',
            original,
            count=1,
        )
    )
    injected = zizmor(root)
    assert injected.returncode != 0 and "template-injection" in injected.stdout + injected.stderr
    workflow.write_text(original)
    assert schema_check(workflow).returncode == 0
    workflow.write_text(original.replace("runs-on:", "runs_on:", 1))
    assert schema_check(workflow).returncode != 0


def test_the_validators_catch_a_broken_template_update_workflow(
    render_project: Callable[..., Project],
) -> None:
    """The same two validators, on the workflow that holds write permissions."""
    root = render_project().root
    workflow = root / ".github/workflows/template-update.yml"
    original = workflow.read_text()
    assert schema_check(workflow).returncode == 0
    workflow.write_text(
        original.replace(
            "          uvx copier check-update --quiet || status=$?\n",
            "          echo ${{ github.event.head_commit.message }}\n"
            "          uvx copier check-update --quiet || status=$?\n",
        )
    )
    injected = zizmor(root)
    assert injected.returncode != 0 and "template-injection" in injected.stdout + injected.stderr
    workflow.write_text(original.replace("timeout-minutes:", "timeout_minutes:"))
    assert schema_check(workflow).returncode != 0


def test_template_update_workflow_opens_its_pull_request_only_with_an_update(
    render_project: Callable[..., Project],
) -> None:
    root = render_project(python_version="3.13").root
    workflow = yaml.safe_load((root / ".github/workflows/template-update.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    steps = workflow["jobs"]["update"]["steps"]
    [pull_request] = [s for s in steps if s.get("uses", "").startswith("peter-evans/")]
    assert pull_request["if"] == "steps.check.outputs.available == 'true'"
    assert pull_request["with"]["branch"] == "template-update"
    update = next(s for s in steps if s.get("id") == "update")
    assert update["if"] == pull_request["if"]
    assert "uvx copier update --trust --defaults" in update["run"]
    setup_uv = next(s for s in steps if s.get("uses", "").startswith("astral-sh/setup-uv"))
    assert setup_uv["with"]["python-version"] == "3.13"


def test_workflows_that_reach_production_or_write_do_nothing_until_switched_on(
    render_project: Callable[..., Project],
) -> None:
    """Every job of these workflows is skipped (grey, not red) until its repository variable
    is set: a new project, or one that gets them through an update, arms none of them.
    Each workflow's header and the project's docs name the switch."""
    project = render_project(neon_branch_per_pr=True)
    docs = {
        "deploy-migrations.yml": project.backend / "docs/deploy.md",
        "drift-watch.yml": project.backend / "docs/deploy.md",
        "neon-branch.yml": project.backend / "docs/deploy.md",
        "template-update.yml": project.backend / "docs/migrations.md",
    }
    for path in workflows(project.root):
        jobs = yaml.safe_load(path.read_text())["jobs"]
        if path.name not in SWITCHES:
            assert path.name == "migration-gate.yml", "read-only, on every pull request"
            assert all(not job_switches(job) for job in jobs.values())
            continue
        switch = SWITCHES[path.name]
        for name, job in jobs.items():
            assert job_switches(job) == {switch}, f"{path.name}, job {name}: {job.get('if')}"
        assert switch in header(path), f"{path.name}: its header says how to turn it on"
        assert f"`{switch}`" in docs[path.name].read_text(), f"{docs[path.name].name}: {switch}"
    deploy_doc = (project.backend / "docs/deploy.md").read_text()
    turning_on = deploy_doc[deploy_doc.index("### Turning the deploy on") :]
    turning_on = turning_on[: turning_on.index("\n### ")]
    for rule in ("Required reviewers", "Deployment branches", "Environment secrets"):
        assert rule in turning_on, f"the protection rule {rule!r} comes before the switch"
    assert turning_on.index("Required reviewers") < turning_on.index("`DEPLOY_MIGRATIONS`")


def test_a_switch_that_is_not_a_whole_operand_does_not_count() -> None:
    """job_switches is what the test above relies on: it must not see a switch that can
    be bypassed, or one that is missing."""
    assert job_switches({"if": "vars.DEPLOY_MIGRATIONS == 'true'"}) == {"DEPLOY_MIGRATIONS"}
    assert job_switches({"if": "failure() && vars.DRIFT_WATCH == 'true'"}) == {"DRIFT_WATCH"}
    assert job_switches({}) == set()
    assert job_switches({"if": "vars.DEPLOY_MIGRATIONS == 'true' || github.ref == 'x'"}) == set()
    assert job_switches({"if": "!(vars.DEPLOY_MIGRATIONS == 'true')"}) == set()
    assert job_switches({"if": "vars.DEPLOY_MIGRATIONS == 'false'"}) == set()
