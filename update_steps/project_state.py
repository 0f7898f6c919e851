"""What the steps after `copier update` read from the project's git: the update is
everything that differs from HEAD, since Copier requires a clean tree to start."""

from __future__ import annotations

import os
import subprocess

BACKEND = "backend"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def unmerged_files() -> list[str]:
    listed = git("diff", "--name-only", "--diff-filter=U", "--relative", "-z").stdout
    return sorted(set(filter(None, listed.split("\0"))))


def changed_by_the_update(*paths: str) -> list[str]:
    """Paths under ``paths`` that the update modified, added or left untracked."""
    listed = git("status", "--porcelain", "-z", "--untracked-files=all", "--", *paths).stdout
    return sorted({entry[3:] for entry in listed.split("\0") if len(entry) > 3})


def at_head(path: str) -> str | None:
    """``path`` as the project committed it before the update, or None if it had none."""
    shown = git("show", f"HEAD:./{path}")
    return shown.stdout if shown.returncode == 0 else None


# Name the environment of whatever runs Copier (uvx, a nox session), not the project's:
# a nox session sets all three to its own venv, whose Python the project may not accept.
CALLERS_ENVIRONMENT = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON")


def tool_environment() -> dict[str, str]:
    """The update's environment for uv in the project: its own backend/.venv."""
    return {name: value for name, value in os.environ.items() if name not in CALLERS_ENVIRONMENT}


def say(line: str) -> None:
    print(f"copier update: {line}", flush=True)
