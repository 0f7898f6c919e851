"""Rendering: the contract's layout, clean code for every answer set, bad answers rejected."""

from __future__ import annotations

import py_compile
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .support import Project, render, uv_env

MATRIX = {
    "defaults": {},
    "psycopg": {"db_driver": "psycopg", "project_name": "Zeta Billing"},
    "no-github-actions": {"github_actions": False},
}

CONTRACT_FILES = [
    ".copier-answers.yml",
    ".gitignore",
    "backend/pyproject.toml",
    "backend/alembic.ini",
    "backend/.env.example",
    "backend/README.md",
    "backend/noxfile.py",
    "backend/migrations/env.py",
    "backend/migrations/script.py.mako",
    "backend/my_service/models/__init__.py",
]


def test_defaults_render_the_contract_layout(render_project: Callable[..., Project]) -> None:
    root = render_project().root
    missing = [name for name in CONTRACT_FILES if not (root / name).is_file()]
    assert missing == []
    assert (root / "backend/migrations/versions").is_dir()
    assert not list((root / "backend/migrations/versions").glob("*.py")), "ships no revision"
    assert ".env" in (root / ".gitignore").read_text().splitlines()
    answers = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "my_service"
    assert answers["db_driver"] == "psycopg2"


def test_the_gate_has_a_package_of_its_own_that_the_wheel_leaves_out(
    render_project: Callable[..., Project], tmp_path: Path
) -> None:
    """backend/tests/ holds one template-owned entry; the gate's tooling is development
    tooling, beside the app's package and not in its wheel."""
    backend = render_project().backend
    assert sorted(path.name for path in (backend / "tests").iterdir()) == [
        "__init__.py",
        "test_migration_gate.py",
    ]
    assert (backend / "migration_gate" / "__main__.py").is_file()
    built = subprocess.run(
        ["uv", "build", "--wheel", "--quiet", "--out-dir", str(tmp_path)],
        cwd=backend,
        env=uv_env(),
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = tmp_path.glob("*.whl")
    packages = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "my_service" in packages and "migration_gate" not in packages, packages
    assert "tests" not in packages


def test_alembic_ini_holds_no_url(render_project: Callable[..., Project]) -> None:
    ini = (render_project().backend / "alembic.ini").read_text()
    settings = [line for line in ini.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "sqlalchemy.url" in line or "://" in line]
    assert "DATABASE_URL" in ini
    assert "path_separator = os" in ini and "prepend_sys_path" in ini


@pytest.mark.parametrize("answers", MATRIX.values(), ids=MATRIX.keys())
def test_rendered_python_compiles_and_is_ruff_clean(
    render_project: Callable[..., Project], answers: dict[str, object]
) -> None:
    backend = render_project(**answers).backend
    for path in backend.rglob("*.py"):
        py_compile.compile(str(path), doraise=True)
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "."],
            cwd=backend,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("answers", "dependency"),
    [({}, "psycopg2-binary"), ({"db_driver": "psycopg"}, "psycopg[binary]")],
)
def test_driver_choice_reaches_dependencies_and_url(
    render_project: Callable[..., Project], answers: dict[str, object], dependency: str
) -> None:
    backend = render_project(**answers).backend
    pyproject = tomllib.loads((backend / "pyproject.toml").read_text())
    names = [spec.split(">")[0] for spec in pyproject["project"]["dependencies"]]
    assert dependency in names
    assert pyproject["project"]["requires-python"] == ">=3.12"
    driver = answers.get("db_driver", "psycopg2")
    settings = (backend / "my_service/db/settings.py").read_text()
    assert f'DRIVERNAME = "postgresql+{driver}"' in settings


def test_github_actions_answer_switches_the_workflow(
    render_project: Callable[..., Project],
) -> None:
    assert not (render_project(github_actions=False).root / ".github").exists()


def test_package_name_is_derived_from_project_name(template_src: Path, tmp_path: Path) -> None:
    root = render(template_src, tmp_path / "p", project_name="Billing API 2")
    assert (root / "backend/billing_api_2/models/__init__.py").is_file()


@pytest.mark.parametrize(
    ("bad_name", "reason"),
    [
        ("2fast", "valid Python identifier"),
        ("my-service", "valid Python identifier"),
        ("class", "keyword"),
        ("alembic", "shadow"),
    ],
)
def test_bad_package_name_is_rejected_in_one_line(
    template_src: Path, tmp_path: Path, bad_name: str, reason: str
) -> None:
    dst = tmp_path / "rejected"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--trust",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            "-d",
            f"package_name={bad_name}",
            str(template_src),
            str(dst),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    # Copier prints its own traceback above a rejected `-d` answer; the message
    # that ends it is ours and names the question.
    last_line = result.stderr.strip().splitlines()[-1]
    assert "package_name" in last_line and reason in last_line, result.stderr
    assert not (dst / "backend").exists(), "nothing is rendered for a rejected answer"
