"""`copier update` across this repository's own history, as a team would live it.

A clone of this repository gets tags: each starting point below is a real past
commit of main, and the working tree (committed or not) is committed on top as
the newest version. A project rendered at a starting point is customized the
way a team does in its first weeks, then updated with the command that
docs/migrations.md prints, run as written without a terminal. The update must
leave no conflict, keep every user file byte for byte (uv.lock only re-locked
when the template changed pyproject.toml, and the report says so), name each
new workflow with the switch that turns it on, pass the project's own gate with
no further command, and a second update must change nothing.

Every starting point runs with the default answers; the first release and the
first one with the production workflows also run with psycopg 3, a Neon branch
per pull request and Python 3.13, the answers whose files differ most.

When a future version makes a starting point impossible to update cleanly, give
that starting point the CHANGELOG.md heading that tells users what to do: the
test then checks the note exists and reports the start as an expected failure
that names it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import (
    REPO,
    Project,
    git,
    output,
    render,
    working_tree_files,
)
from .test_ci_workflows import SWITCHES, job_switches
from .test_update import (
    HOOKS_FILTER,
    README_SECTION,
    USER_TEST,
    changed,
    commit_all,
    digests,
    half_merged,
    team_project_with_two_models,
)

PACKAGE = "my_service"
TARGET = "v0.1.0"
BIN = Path(sys.executable).parent
# docs/migrations.md, "Updating the template": the command users run.
UPDATE_COMMAND = ["copier", "update", "--trust", "--defaults"]
ADDED_DEPENDENCY = "pyyaml>=6.0"
LOCK = "backend/uv.lock"
GITIGNORE_LINE = "/exports/  # ours: CSV exports of the billing report\n"
# docs/deploy.md: "add your deploy job to this workflow with `needs: deploy`".
APP_DEPLOY_JOB = """
  deploy-app:
    needs: deploy
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - run: echo "our deploy of the application"
"""
# Older starters define include_object; a team wraps it.
HOOKS_EXTENSION = """

# Ours: tables another service writes in this database; migrations leave them alone.
OTHER_SERVICES_TABLES = {"legacy_audit"}
_include_object_from_template = include_object


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table" and name in OTHER_SERVICES_TABLES:
        return False
    return _include_object_from_template(obj, name, type_, reflected, compare_to)
"""


@dataclass(frozen=True)
class StartingPoint:
    commit: str  # a commit of this repository's main
    tag: str  # the version it gets in the test's clone
    what: str  # what a project rendered there has that later versions changed
    release_note: str | None = None  # CHANGELOG.md's heading, once it cannot update cleanly


# CHANGELOG.md has a section for each, headed with its tag and commit.
STARTING_POINTS = [
    StartingPoint(
        "2fc3988",
        "v0.0.1",
        "the first commit: its env_hooks.py has a line today's ruff rejects",
        release_note="Projects rendered at the first commit (2fc3988) that edited env_hooks.py",
    ),
    StartingPoint("749f136", "v0.0.2", "the oldest ruff-clean render; README in the template"),
    StartingPoint(
        "5f6c501", "v0.0.3", "ownership in copier.yml: models and revisions kept out of renders"
    ),
    StartingPoint(
        "7ddd710",
        "v0.0.4",
        "the first release: no deploy, drift or update workflow yet, no docs/, no schema page; "
        "psycopg projects end their dependencies with psycopg's line",
    ),
    StartingPoint(
        "9184705",
        "v0.0.5",
        "deploy, drift-watch and template-update workflows that ran on arrival; docs/schema.md; "
        "psycopg projects end their dependencies with sqlalchemy[asyncio]",
    ),
]
POINTS = {point.commit: point for point in STARTING_POINTS}
PSYCOPG_NEON_313 = {"db_driver": "psycopg", "neon_branch_per_pr": True, "python_version": "3.13"}


@dataclass(frozen=True)
class Replay:
    """A project rendered at ``point`` with ``answers``, customized, then updated."""

    point: StartingPoint
    answers: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        answers = "-".join(f"{name}={value}" for name, value in self.answers.items())
        return f"{self.point.commit}-{answers or 'defaults'}"


REPLAYS = [
    *(Replay(point) for point in STARTING_POINTS),
    Replay(POINTS["7ddd710"], PSYCOPG_NEON_313),
    Replay(POINTS["9184705"], PSYCOPG_NEON_313),
]


def build_history_repo(source: Path, repo: Path) -> Path:
    """A clone of ``source``: starting points tagged, its working tree on top as TARGET."""
    git(source, "clone", "--quiet", str(source), str(repo))
    for tag in git(repo, "tag", "--list").split():
        git(repo, "tag", "--delete", tag)
    for point in STARTING_POINTS:
        found = subprocess.run(
            ["git", "cat-file", "-e", f"{point.commit}^{{commit}}"], cwd=repo, check=False
        )
        assert found.returncode == 0, (
            f"commit {point.commit} is missing: these tests need this repository's full "
            "history (in CI: actions/checkout with fetch-depth: 0)"
        )
        git(repo, "tag", point.tag, point.commit)
    git(repo, "rm", "-r", "--quiet", ".")
    for name in working_tree_files(source):
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((source / name).read_bytes())
        target.chmod((source / name).stat().st_mode)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", "the working tree")
    git(repo, "tag", TARGET)
    return repo


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_history_repo(REPO, tmp_path_factory.mktemp("history") / "template")


def user_files(project: Project) -> list[str]:
    """What the team wrote: an update must leave these byte for byte alone."""
    return [
        *(str(path.relative_to(project.root)) for path in project.revision_files()),
        f"backend/{PACKAGE}/models/user.py",
        f"backend/{PACKAGE}/models/team.py",
        "backend/migrations/env_hooks.py",
        "backend/tests/test_models.py",
        "backend/README.md",
        "backend/uv.lock",
    ]


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def customize_like_a_team(
    history_repo: Path, tag: str, root: Path, server: Any, **answers: object
) -> Project:
    """Render at ``tag``, then customize like a team's first weeks; everything committed."""
    project = team_project_with_two_models(history_repo, root, tag, server, **answers)
    assert len(project.revision_files()) == 2
    append(project.backend / "README.md", README_SECTION)
    hooks = project.backend / "migrations" / "env_hooks.py"
    older_starter = "def include_object" in hooks.read_text()
    append(hooks, HOOKS_EXTENSION if older_starter else HOOKS_FILTER)
    (project.backend / "tests" / "test_models.py").write_text(USER_TEST)
    # Older versions set compile-bytecode in [tool.uv]: the sync of `uv add` would compile
    # the whole venv, which these projects' first imports do as they need it (Project.install).
    added = project.run("uv", "add", "--quiet", "--no-compile-bytecode", ADDED_DEPENDENCY)
    assert added.returncode == 0, output(added)
    append(root / ".gitignore", GITIGNORE_LINE)
    deploy = root / ".github/workflows/deploy-migrations.yml"
    if deploy.is_file():
        append(deploy, APP_DEPLOY_JOB)
    commit_all(root, "Our models, revisions, hooks, test, dependency, ignores and deploy job")
    return project


@pytest.fixture(scope="module", params=REPLAYS, ids=[replay.id for replay in REPLAYS])
def team_project(
    request: pytest.FixtureRequest,
    history_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: Any,
) -> tuple[Replay, Project]:
    replay: Replay = request.param
    root = tmp_path_factory.mktemp(f"team-{replay.id}") / "project"
    project = customize_like_a_team(
        history_repo, replay.point.tag, root, postgres_server, **replay.answers
    )
    return replay, project


def copier_update(project: Project) -> subprocess.CompletedProcess[str]:
    """The documented update command, from the project root, with no terminal attached."""
    return subprocess.run(
        [str(BIN / UPDATE_COMMAND[0]), *UPDATE_COMMAND[1:]],
        cwd=project.root,
        env=project.environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def report_lines(updated: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in updated.stdout.splitlines() if line.startswith("copier update: ")]


def workflows_at(root: Path) -> dict[str, dict[str, Any]]:
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted((root / ".github/workflows").glob("*.yml"))
    }


def switched(workflow: dict[str, Any]) -> set[str]:
    return {name for job in workflow["jobs"].values() for name in job_switches(job)}


def steps_the_report_must_name(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """Each workflow the update adds or newly gates: the fragment its report line starts with,
    and the switch (if any) that line must name."""
    expected = {}
    for name, workflow in after.items():
        switch = SWITCHES.get(name, "")
        if name not in before:
            expected[f"new workflow .github/workflows/{name} "] = switch
        elif switch and switch not in switched(before[name]):
            expected[f".github/workflows/{name} now runs only while "] = switch
        assert not switch or switch in switched(workflow), f"{name}: gated on {switch}"
    return expected


def locked_version(lock: str, package: str) -> str:
    [version] = [p["version"] for p in tomllib.loads(lock)["package"] if p["name"] == package]
    return str(version)


def check_clean_update(project: Project, gate_server_url: str) -> list[str]:
    """Update as users do, and check what they would; returns the report's lines."""
    mine = digests(project.root, user_files(project))
    lock_before = (project.root / LOCK).read_text()
    workflows_before = workflows_at(project.root)

    updated = copier_update(project)

    assert updated.returncode == 0, output(updated)
    assert half_merged(project.root) == [], "zero conflicts"
    report = report_lines(updated)
    assert report[-1].startswith("copier update: merged without conflicts"), output(updated)
    relocked = [line for line in report if line.startswith(f"copier update: {LOCK} is re-locked")]
    assert changed(project.root, mine) == ([LOCK] if relocked else []), "user files byte for byte"
    lock_after = (project.root / LOCK).read_text()
    assert locked_version(lock_after, "pyyaml") == locked_version(lock_before, "pyyaml")
    for start, switch in steps_the_report_must_name(
        workflows_before, workflows_at(project.root)
    ).items():
        lines = [line for line in report if line.startswith(f"copier update: {start}")]
        assert len(lines) == 1 and switch in lines[0], f"one line {start!r}, {switch}: {report}"
    assert any("CHANGELOG.md" in line for line in report), report
    assert (project.backend / "docs/migrations.md").is_file(), "the template's prose arrived"
    pyproject = (project.backend / "pyproject.toml").read_text()
    assert f'"{ADDED_DEPENDENCY}"' in pyproject, "the team's dependency is still there"
    assert (project.root / ".gitignore").read_text().endswith(GITIGNORE_LINE)
    deploy = project.root / ".github/workflows/deploy-migrations.yml"
    if "deploy-migrations.yml" in workflows_before:
        assert deploy.read_text().endswith(APP_DEPLOY_JOB), "the team's deploy job is kept"

    gate = project.run("uvx", "nox", TEST_DATABASE_URL=gate_server_url)
    assert gate.returncode == 0, f"the gate right after the update:\n{output(gate)}"

    commit_all(project.root, "Update the template")
    again = copier_update(project)
    assert again.returncode == 0, output(again)
    assert git(project.root, "status", "--porcelain") == "", "a second update changes nothing"
    return report


def test_a_team_project_updates_cleanly_from_each_starting_point(
    team_project: tuple[Replay, Project], tmp_path: Path, postgres_server: Any
) -> None:
    replay, customized = team_project
    point = replay.point
    root = tmp_path / "project"
    git(tmp_path, "clone", "--quiet", str(customized.root), str(root))
    project = Project(root, PACKAGE, python=customized.python)
    changelog = (REPO / "CHANGELOG.md").read_text()
    try:
        report = check_clean_update(project, postgres_server.url(postgres_server.maintenance_db))
    except AssertionError as failure:
        if point.release_note is None:
            raise AssertionError(
                f"{failure}\n\nIf an update from {point.commit} can no longer be clean, explain "
                "it in CHANGELOG.md and name that note in this starting point's release_note."
            ) from failure
        assert point.release_note in changelog, f"CHANGELOG.md has no {point.release_note!r}"
        pytest.xfail(f"updating from {point.commit}: see CHANGELOG.md, {point.release_note}")
    assert point.release_note is None, f"{point.commit} updates cleanly again: drop its note"
    print(f"\nthe report, updating {replay.id}:", *report, sep="\n")


@pytest.mark.parametrize("point", STARTING_POINTS, ids=[p.commit for p in STARTING_POINTS])
def test_an_untouched_hooks_module_gets_the_new_starter_and_passes_ruff(
    history_repo: Path, tmp_path: Path, point: StartingPoint
) -> None:
    root = render(history_repo, tmp_path / "project", vcs_ref=point.tag)
    git(root, "init", "--quiet", "--initial-branch=main")
    commit_all(root, "Start from template")
    project = Project(root, PACKAGE)

    updated = copier_update(project)

    assert updated.returncode == 0, output(updated)
    hooks = root / "backend/migrations/env_hooks.py"
    starter = history_repo / "template/backend/migrations/env_hooks.py"
    assert hooks.read_bytes() == starter.read_bytes(), "the never-edited starter is current"
    assert not list((root / OLD_GATE).rglob("*.py")), "nothing is left where the gate was"
    assert (root / "backend/migration_gate/checks.py").is_file()
    for command in (["check"], ["format", "--check"]):
        linted = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "."],
            cwd=project.backend,
            capture_output=True,
            text=True,
        )
        assert linted.returncode == 0, output(linted)


OLD_GATE = "backend/tests/migration_gate"
LINT_HELP = "make the change safe (docs/safe-migrations.md)"
TEAM_LINT_HELP = "ask #db-review first, then make the change safe (docs/safe-migrations.md)"


def test_edits_of_the_gate_move_with_it_or_are_named(history_repo: Path, tmp_path: Path) -> None:
    """A project rendered before the gate moved to backend/migration_gate/ and edited there:
    an edit of a file that moved whole is merged into its new path; one of a file that
    was split is named in the report, with the command that shows it."""
    root = render(history_repo, tmp_path / "project", vcs_ref="v0.0.5")
    git(root, "init", "--quiet", "--initial-branch=main")
    lint = root / OLD_GATE / "lint.py"
    lint.write_text(lint.read_text().replace(LINT_HELP, TEAM_LINT_HELP))
    gate_tests = root / OLD_GATE / "test_migrations.py"
    gate_tests.write_text(gate_tests.read_text() + "\n# Ours: run these first in CI.\n")
    commit_all(root, "Start from template; our reviewers' channel in the lint's help")

    updated = copier_update(Project(root, PACKAGE))

    assert updated.returncode == 0, output(updated)
    assert TEAM_LINT_HELP in (root / "backend/migration_gate/lint.py").read_text()
    assert not list((root / OLD_GATE).rglob("*.py")), "nothing is left where the gate was"
    report = report_lines(updated)
    assert f"copier update: your edits of {OLD_GATE}/lint.py moved with it into " in "\n".join(
        report
    ), report
    [split] = [line for line in report if "test_migrations.py" in line]
    assert f"`git show HEAD:./{OLD_GATE}/test_migrations.py` shows them" in split, report
    assert half_merged(root) == [], "an edit carried over is no conflict"


# CHANGELOG.md: a section for each version, naming what updating to it brings.

SECTIONS = ("### Your project gets", "### Do by hand", "### Your starters")


def changelog_sections() -> dict[str, str]:
    """Each ``## `` section of CHANGELOG.md by its heading."""
    text = (REPO / "CHANGELOG.md").read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def shipped_names(files: list[str]) -> set[str]:
    """The workflows and docs a version renders, by the name a project sees."""
    folders = ("workflows/", "template/backend/docs/")
    return {
        re.sub(r"\{%.*?%\}", "", name.rsplit("/", 1)[1]).removesuffix(".jinja")
        for name in files
        if name.startswith("template/") and any(folder in name for folder in folders)
    }


def files_at(commit: str) -> list[str]:
    return git(REPO, "ls-tree", "-r", "--name-only", commit, "template").splitlines()


def test_the_changelog_names_what_each_version_brings() -> None:
    sections = changelog_sections()
    headings = [f"{point.tag} (commit {point.commit})" for point in STARTING_POINTS]
    unreleased = f"{TARGET} (unreleased)"
    versions = [heading for heading in sections if heading.startswith("v")]
    assert versions == [unreleased, *reversed(headings)], "newest first, each with its commit"
    shipped = [shipped_names(files_at(point.commit)) for point in STARTING_POINTS]
    shipped.append(shipped_names(working_tree_files(REPO)))
    for heading, (before, now) in zip([*headings[1:], unreleased], pairwise(shipped), strict=True):
        section = sections[heading]
        for subsection in SECTIONS:
            assert subsection in section, f"{heading} has no {subsection!r}"
        for name in sorted(now - before):
            assert f"`{name}`" in section, f"{heading} does not name {name}, new in it"
    for switch in SWITCHES.values():
        assert f"`{switch}`" in sections[unreleased], f"{unreleased}: the switch {switch}"


def test_the_changelogs_command_finds_a_projects_version() -> None:
    """The command of "Which sections are yours", run as written in this repository."""
    section = changelog_sections()["Which sections are yours"]
    [command] = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    expected = {point.commit: point.tag for point in STARTING_POINTS}
    expected["e38544d"] = "v0.0.4"  # between two versions: the older one
    for commit, tag in expected.items():
        found = subprocess.run(
            ["bash", "-c", command.replace("YOUR_COMMIT", commit)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert found.stdout.strip() == tag, f"{commit}: {output(found)}"
