"""Fixtures of the template's tests: a snapshot of this repo, rendered projects, one server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import Project, load_postgres_module, render, snapshot_template

postgres = load_postgres_module()
postgres_server = postgres.postgres_server


@pytest.fixture(scope="session")
def template_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's working tree, committed into a throwaway git repo."""
    return snapshot_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def render_project(template_src: Path, tmp_path: Path) -> Callable[..., Project]:
    def _render(**answers: object) -> Project:
        root = render(template_src, tmp_path / "project", **answers)
        package = str(answers.get("package_name", "my_service"))
        return Project(root, package)

    return _render


@pytest.fixture
def database_url(postgres_server: object) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    with postgres.temporary_database(postgres_server) as url:
        yield url


@pytest.fixture
def project(render_project: Callable[..., Project], database_url: str) -> Project:
    """A rendered, installed project whose DATABASE_URL points at a fresh database."""
    rendered = render_project()
    rendered.install()
    rendered.env["DATABASE_URL"] = database_url
    return rendered
