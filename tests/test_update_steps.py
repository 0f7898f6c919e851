"""The steps copier.yml runs after every update (update_steps/), each on a project set up
the way an update leaves it: what a step does when it can, and what it leaves to the
user, saying so, when it cannot know better. The whole update, from real past versions,
is in test_update_history.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from .support import REPO, Project, git, output, render
from .test_update import commit_all

STEPS = REPO / "update_steps"
LABELS = ["-L", "before updating", "-L", "last update", "-L", "after updating"]
ADDED = '    "pyyaml>=6.0",\n'


def step_module(name: str) -> ModuleType:
    sys.path.insert(0, str(STEPS))  # the steps import project_state, as when Copier runs them
    try:
        spec = importlib.util.spec_from_file_location(name, STEPS / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(STEPS))


def run_step(root: Path, name: str, **extra_env: str) -> list[str]:
    """The step as copier.yml runs it, from the project root; its report lines."""
    ran = subprocess.run(
        [sys.executable, str(STEPS / f"{name}.py")],
        cwd=root,
        env={**os.environ, **extra_env},
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, output(ran)
    return [line for line in ran.stdout.splitlines() if line.startswith("copier update: ")]


def appended(pyproject: str, line: str) -> str:
    """What `uv add` does to the dependencies the template renders: one line at the end."""
    start = pyproject.index("dependencies = [")
    end = pyproject.index("\n]\n", start) + 1
    return pyproject[:end] + line + pyproject[end:]


def merged(ours: str, base: str, theirs: str, tmp_path: Path) -> str:
    """The file as Copier's 3-way merge leaves it, conflict markers and all."""
    for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["git", "merge-file", "-p", *LABELS, "ours", "base", "theirs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode > 0, "the merge conflicts, as Copier's does"
    return result.stdout


@pytest.fixture(scope="module")
def psycopg_pyprojects(
    template_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """backend/pyproject.toml for psycopg as 9184705 rendered it, and as the template does now."""
    tmp = tmp_path_factory.mktemp("pyprojects")
    old = render(REPO, tmp / "old", vcs_ref="9184705", db_driver="psycopg")
    new = render(template_src, tmp / "new", db_driver="psycopg")
    return tuple((root / "backend/pyproject.toml").read_text() for root in (old, new))


def test_a_template_line_moved_to_the_top_settles_next_to_the_projects_lines(
    psycopg_pyprojects: tuple[str, str], tmp_path: Path
) -> None:
    base, theirs = psycopg_pyprojects
    assert base.index("sqlalchemy[asyncio]") > base.index("psycopg[binary]"), "at the end then"
    conflicted = merged(appended(base, ADDED), base, theirs, tmp_path)
    settle = step_module("settle_moved_dependencies").settle

    text, moved = settle(conflicted, base)

    assert moved == ["sqlalchemy[asyncio]>=2.0"]
    assert text == appended(theirs, ADDED), "the template's lines, then the project's"
    dependencies = tomllib.loads(text)["project"]["dependencies"]
    assert dependencies[0] == "sqlalchemy[asyncio]>=2.0" and dependencies[-1] == "pyyaml>=6.0"
    assert len(dependencies) == len(set(dependencies))


@pytest.mark.parametrize(
    "template_change",
    [
        ('    "sqlalchemy[asyncio]>=2.0",', ""),  # removed, not moved
        ('"sqlalchemy[asyncio]>=2.0",', '"sqlalchemy[asyncio]>=2.1",'),  # changed where it is
    ],
    ids=["removed", "changed"],
)
def test_a_conflict_with_any_other_difference_stays_for_the_user(
    psycopg_pyprojects: tuple[str, str], tmp_path: Path, template_change: tuple[str, str]
) -> None:
    base, _ = psycopg_pyprojects
    old, new = template_change
    theirs = base.replace(old + "  # get_async_engine(): greenlet on every platform\n", new)
    theirs = theirs if new else theirs.replace("\n\n]", "\n]")
    assert theirs != base
    conflicted = merged(appended(base, ADDED), base, theirs, tmp_path)

    assert step_module("settle_moved_dependencies").settle(conflicted, base) is None


WORKFLOWS = ".github/workflows"


def without_switches(workflow: str) -> str:
    """A workflow as v0.0.5 rendered it: its jobs ran without a switch."""
    lines = workflow.splitlines(keepends=True)
    return "".join(line for line in lines if not line.lstrip().startswith("if: vars."))


@pytest.fixture
def updated_project(render_project: Callable[..., Project]) -> Project:
    """A project whose last commit has v0.0.5's workflows (no switch, no drift watch), and
    whose working tree is what the update to today's template wrote."""
    project = render_project()
    root = project.root
    current = {path: path.read_text() for path in (root / WORKFLOWS).glob("*.yml")}
    deploy, drift = root / WORKFLOWS / "deploy-migrations.yml", root / WORKFLOWS / "drift-watch.yml"
    deploy.write_text(without_switches(current[deploy]))
    drift.unlink()
    git(root, "init", "--quiet", "--initial-branch=main")
    commit_all(root, "Start from v0.0.5")
    for path, text in current.items():
        path.write_text(text)
    return project


def test_the_report_names_new_and_newly_switched_workflows_with_their_switch(
    updated_project: Project,
) -> None:
    report = run_step(updated_project.root, "report")

    assert report == [
        "copier update: .github/workflows/deploy-migrations.yml now runs only while the "
        "repository variable DEPLOY_MIGRATIONS is `true`; set it to keep the workflow running "
        "(its header says what to set up first)",
        "copier update: new workflow .github/workflows/drift-watch.yml is off until the "
        "repository variable DRIFT_WATCH is `true`; it reads the secret(s) "
        "DATABASE_URL_READONLY; its header says more",
        "copier update: merged without conflicts; review `git diff`, run `uvx nox` in "
        "backend/, then commit",
    ]


def test_a_workflow_that_does_not_parse_gets_no_line_of_its_own(
    updated_project: Project,
) -> None:
    drift = updated_project.root / WORKFLOWS / "drift-watch.yml"
    drift.write_text("<<<<<<< before updating\n" + drift.read_text())

    report = run_step(updated_project.root, "report")

    assert not any("drift-watch.yml" in line for line in report), report


def mark_unmerged(root: Path, path: str) -> None:
    """Stages 1 to 3 in the index, as Copier records a file it left conflict markers in."""
    blob = git(root, "hash-object", "-w", path)
    stages = "".join(f"100644 {blob} {stage}\t{path}\n" for stage in (1, 2, 3))
    subprocess.run(
        ["git", "update-index", "--index-info"],
        cwd=root,
        input=f"0 {'0' * 40}\t{path}\n{stages}",
        text=True,
        check=True,
    )


@pytest.fixture
def project_with_revisions(updated_project: Project) -> Project:
    """The project has a revision; the update has not changed its code yet."""
    (updated_project.backend / "migrations/versions/0001_add_user.py").write_text("")
    commit_all(updated_project.root, "Our first revision")
    return updated_project


def update_code(project: Project) -> Path:
    """What an update does to the code that writes docs/schema.md; returns that module."""
    [generator] = project.backend.rglob("schema_docs.py")
    generator.write_text(generator.read_text() + "# a fix from the template\n")
    return generator


def test_a_schema_page_the_project_wrote_itself_is_left_alone_and_named(
    project_with_revisions: Project,
) -> None:
    root = project_with_revisions.root
    page = root / "backend/docs/schema.md"
    page.write_text("# Our own notes on the schema\n")
    commit_all(root, "Our schema page")
    update_code(project_with_revisions)

    report = run_step(root, "refresh_generated_files")

    assert report == [
        "copier update: backend/docs/schema.md is not the generated page; "
        "`uvx nox -s schema-docs` replaces it"
    ]
    assert page.read_text() == "# Our own notes on the schema\n"


def test_with_a_conflict_left_the_generated_files_wait_and_the_report_says_for_what(
    project_with_revisions: Project,
) -> None:
    root = project_with_revisions.root
    generator = update_code(project_with_revisions).relative_to(root).as_posix()
    mark_unmerged(root, generator)
    page = (root / "backend/docs/schema.md").read_text()

    report = run_step(root, "refresh_generated_files")

    assert report == [
        "copier update: once the conflicts are resolved, run `uvx nox -s schema-docs` in backend/"
    ]
    assert (root / "backend/docs/schema.md").read_text() == page
    assert run_step(root, "report")[-1].endswith(f"then git add: {generator}")


def test_the_interpreter_of_whatever_runs_copier_is_not_the_projects(
    updated_project: Project, tmp_path: Path
) -> None:
    """A nox session that runs ``copier update`` sets ``UV_PYTHON``, ``VIRTUAL_ENV`` and
    ``UV_PROJECT_ENVIRONMENT`` to its own venv, whose Python the project may not accept.
    Here they name a venv that is not there: uv would fail on it, or create it, if the
    step passed them on."""
    root = updated_project.root
    locked = updated_project.run("uv", "lock", "--quiet")
    assert locked.returncode == 0, output(locked)
    commit_all(root, "Our lock")
    pyproject = root / "backend/pyproject.toml"
    pyproject.write_text(appended(pyproject.read_text(), ADDED))
    caller = tmp_path / "callers-venv"
    callers = {name: str(caller) for name in ("UV_PYTHON", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}

    report = run_step(root, "refresh_generated_files", **callers)

    assert report == [
        "copier update: backend/uv.lock is re-locked for the new backend/pyproject.toml: "
        "commit it with the update"
    ]
    lock = tomllib.loads((root / "backend/uv.lock").read_text())
    assert "pyyaml" in {package["name"] for package in lock["package"]}
    assert not caller.exists(), "nothing was made where the caller's venv is named"
