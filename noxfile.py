"""Sessions of the template repository: `uvx nox` runs the tests.

`uvx nox -s demo` renders a project and walks through the migration loop;
`uvx nox -s lint` checks this repo and a rendered project with ruff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"

# The sessions' own interpreter: it renders projects with Copier, runs the copier
# updates and the tests' own code, and 3.11 does that with less CPU than 3.12 here
# (copier copy: 0.89 s against 0.98 s user with pyenv's builds, 0.68 s with
# Debian's 3.11). The projects the tests render install their own 3.12 or 3.13
# (tests/support.py: PROJECT_PYTHON) either way. So the code of this repository, and
# the gate modules the tests load (servers.py, rows.py), keep to Python 3.11.
PYTHON = "3.11"
PYPROJECT = nox.project.load_toml("pyproject.toml")


def select_pyenv_interpreters() -> None:
    """pyenv's `python3.12` shim answers only while 3.12 is selected: select every 3.11+
    (the sessions' 3.11 and the projects' 3.12 and 3.13) after what is selected already.

    A PYENV_VERSION that is already set is extended, not trusted: a uv installed with
    pyenv's pip runs under its shim, which sets PYENV_VERSION to that one version.
    """
    if shutil.which("pyenv") is None:
        return
    pyenv = ["pyenv", "versions", "--bare", "--skip-aliases"]
    versions = subprocess.run(pyenv, capture_output=True, text=True, check=False).stdout.split()
    current = subprocess.run(
        ["pyenv", "version-name"], capture_output=True, text=True, check=False
    ).stdout.strip()
    selected = os.environ.get("PYENV_VERSION", "").split(":")
    wanted = [*selected, current, *(v for v in versions if re.fullmatch(r"3\.1[1-9]\.\d+", v))]
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys(filter(None, wanted)))


select_pyenv_interpreters()
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def install_group(session: nox.Session, group: str) -> None:
    """Compiled, so that the copier and update-step processes the tests start load fast
    where PYTHONDONTWRITEBYTECODE is set (as in CI): 0.4 s a start instead of 1.2 s."""
    session.install(
        *nox.project.dependency_groups(PYPROJECT, group), env={"UV_COMPILE_BYTECODE": "1"}
    )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Render projects with the real Copier and run their real tools against PostgreSQL.

    One pytest worker per core, each with its own server; a module's tests stay
    on one worker, so they share its rendered projects. `-- -n 0` runs in one.
    """
    install_group(session, "test")
    session.run("pytest", "--numprocesses", "auto", "--dist", "loadscope", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on this repo, then on a freshly rendered project."""
    install_group(session, "test")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("pytest", "tests/test_render.py", "-k", "ruff_clean")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Render a project, start a throwaway server, and run the migration loop step by step."""
    install_group(session, "test")
    session.run("python", "-m", "tests.demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks of what users wait for, as ratios against baselines in the same run."""
    install_group(session, "test")
    session.run("python", "-m", "bench.run", *session.posargs)
