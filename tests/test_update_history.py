"""`copier update` across this repository's own history, as a team would live it.

A clone of this repository gets tags: each starting point below is a real past
commit of main, and the working tree (committed or not) is committed on top as
the newest version. A project rendered at a starting point is customized the
way a team does in its first weeks, then updated with the command that
docs/migrations.md prints, run as written without a terminal. The update must
leave no conflict, keep every user file byte for byte, pass the project's own
gate, and a second update must change nothing.

When a future version makes a starting point impossible to update cleanly, give
that starting point the CHANGELOG.md heading that tells users what to do: the
test then checks the note exists and reports the start as an expected failure
that names it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .support import (
    REPO,
    Project,
    git,
    output,
    render,
    working_tree_files,
)
from .test_update import (
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
        "e38544d", "v0.0.4", "db/autogenerate.py split out; env_hooks.py still the template's"
    ),
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


def customize_like_a_team(history_repo: Path, tag: str, root: Path, server: Any) -> Project:
    """Render at ``tag``, then customize like a team's first weeks; everything committed."""
    project = team_project_with_two_models(history_repo, root, tag, server)
    assert len(project.revision_files()) == 2
    with (project.backend / "README.md").open("a") as readme:
        readme.write(README_SECTION)
    with (project.backend / "migrations" / "env_hooks.py").open("a") as hooks:
        hooks.write(HOOKS_EXTENSION)
    (project.backend / "tests" / "test_models.py").write_text(USER_TEST)
    added = project.run("uv", "add", "--quiet", ADDED_DEPENDENCY)
    assert added.returncode == 0, output(added)
    commit_all(root, "Our models, revisions, hooks, test, dependency and README section")
    return project


@pytest.fixture(scope="module", params=STARTING_POINTS, ids=[p.commit for p in STARTING_POINTS])
def team_project(
    request: pytest.FixtureRequest,
    history_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: Any,
) -> tuple[StartingPoint, Project]:
    point: StartingPoint = request.param
    root = tmp_path_factory.mktemp(f"team-{point.commit}") / "project"
    return point, customize_like_a_team(history_repo, point.tag, root, postgres_server)


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


def check_clean_update(project: Project, gate_server_url: str) -> None:
    mine = digests(project.root, user_files(project))

    updated = copier_update(project)

    assert updated.returncode == 0, output(updated)
    assert half_merged(project.root) == [], "zero conflicts"
    assert "copier update: merged without conflicts" in updated.stdout, output(updated)
    assert changed(project.root, mine) == [], "user files byte for byte"
    assert (project.backend / "docs/migrations.md").is_file(), "the template's prose arrived"
    pyproject = (project.backend / "pyproject.toml").read_text()
    assert f'"{ADDED_DEPENDENCY}"' in pyproject, "the team's dependency is still there"

    project.install()
    stale = project.run("uvx", "nox", "-s", "tests", TEST_DATABASE_URL=gate_server_url)
    assert "run `uvx nox -s schema-docs`" in output(stale), "the one step an update asks for"
    project.write_schema_docs()
    gate = project.run("uvx", "nox", TEST_DATABASE_URL=gate_server_url)
    assert gate.returncode == 0, f"the gate after the update:\n{output(gate)}"

    commit_all(project.root, "Update the template")
    again = copier_update(project)
    assert again.returncode == 0, output(again)
    assert git(project.root, "status", "--porcelain") == "", "a second update changes nothing"


def test_a_team_project_updates_cleanly_from_each_starting_point(
    team_project: tuple[StartingPoint, Project], tmp_path: Path, postgres_server: Any
) -> None:
    point, customized = team_project
    root = tmp_path / "project"
    git(tmp_path, "clone", "--quiet", str(customized.root), str(root))
    project = Project(root, PACKAGE)
    changelog = (REPO / "CHANGELOG.md").read_text()
    try:
        check_clean_update(project, postgres_server.url(postgres_server.maintenance_db))
    except AssertionError as failure:
        if point.release_note is None:
            raise AssertionError(
                f"{failure}\n\nIf an update from {point.commit} can no longer be clean, explain "
                "it in CHANGELOG.md and name that note in this starting point's release_note."
            ) from failure
        assert point.release_note in changelog, f"CHANGELOG.md has no {point.release_note!r}"
        pytest.xfail(f"updating from {point.commit}: see CHANGELOG.md, {point.release_note}")
    assert point.release_note is None, f"{point.commit} updates cleanly again: drop its note"


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
    for command in (["check"], ["format", "--check"]):
        linted = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "."],
            cwd=project.backend,
            capture_output=True,
            text=True,
        )
        assert linted.returncode == 0, output(linted)
