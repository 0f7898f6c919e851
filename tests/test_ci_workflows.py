"""The rendered GitHub Actions workflows: valid, pinned, least privilege, zizmor-clean."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .support import Project

BIN = Path(sys.executable).parent
LEAST_PRIVILEGE = {
    "gate": {"contents": "read"},
    "migrate": {"contents": "read", "pull-requests": "write"},  # the schema-diff comment
    "delete": {},
}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


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


@pytest.mark.parametrize("neon_branch_per_pr", [False, True])
def test_workflows_are_valid_and_zizmor_clean(
    render_project: Callable[..., Project], neon_branch_per_pr: bool
) -> None:
    root = render_project(neon_branch_per_pr=neon_branch_per_pr, postgres_version="16").root
    names = [path.name for path in workflows(root)]
    expected = (
        ["migration-gate.yml", "neon-branch.yml"] if neon_branch_per_pr else ["migration-gate.yml"]
    )
    assert names == expected
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
                if uses and not uses.startswith("neondatabase/"):
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


def test_neon_workflow_migrates_over_the_direct_url(render_project: Callable[..., Project]) -> None:
    root = render_project(neon_branch_per_pr=True).root
    neon = yaml.safe_load((root / ".github/workflows/neon-branch.yml").read_text())
    migrate = next(
        s for s in neon["jobs"]["migrate"]["steps"] if s.get("run", "").startswith("uv run alembic")
    )
    assert migrate["env"] == {"DATABASE_URL_UNPOOLED": "${{ steps.branch.outputs.db_url }}"}
    uses = [s.get("uses", "") for job in neon["jobs"].values() for s in job["steps"]]
    assert any(u.startswith("neondatabase/create-branch-action@v6") for u in uses)
    assert any(u.startswith("neondatabase/schema-diff-action@") for u in uses)
    assert any(u.startswith("neondatabase/delete-branch-action@") for u in uses)
    assert "secrets.NEON_API_KEY" in (root / ".github/workflows/neon-branch.yml").read_text()


def test_the_validators_catch_a_broken_workflow(render_project: Callable[..., Project]) -> None:
    """A template injection fails zizmor; a misspelt key fails the schema check."""
    root = render_project().root
    gate = root / ".github/workflows/migration-gate.yml"
    original = gate.read_text()
    gate.write_text(
        original.replace(
            "      - run: uv sync\n", '      - run: echo "${{ github.event.pull_request.title }}"\n'
        )
    )
    injected = zizmor(root)
    assert injected.returncode != 0 and "template-injection" in injected.stdout + injected.stderr
    gate.write_text(original.replace("runs-on:", "runs_on:"))
    assert schema_check(gate).returncode != 0
