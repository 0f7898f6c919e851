"""6. ``copier copy`` and ``copier update`` wall time, through copier's own CLI.

The template is a snapshot of this repository tagged ``v1``, then one small
release tagged ``v2``. ``copy`` renders ``v2`` into a new folder; ``update``
takes a committed project rendered from ``v1`` to ``v2`` (a fresh copy of it
each run). ``copier --version`` is the floor: the CLI's own start-up.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import GIT_IDENTITY, git, snapshot_template

from .timing import Figure, measure
from .workloads import release_next_template_version

COPIER = [sys.executable, "-m", "copier"]


def copier(*args: str, cwd: Path | None = None) -> None:
    # Bytecode as a user's `uvx copier` has it after its first run.
    env = {**os.environ, **GIT_IDENTITY}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [*COPIER, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"copier {' '.join(args)} exited {result.returncode}:\n{result.stderr}")


def measure_copier(workdir: Path) -> list[Figure]:
    template = snapshot_template(workdir / "template", tag="v1")
    base = workdir / "at-v1"
    copier("copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "v1", str(template), str(base))
    git(base, "init", "--quiet", "--initial-branch=main")
    git(base, "add", "--all")
    git(base, "commit", "--quiet", "--no-verify", "-m", "Start from template v1")
    release_next_template_version(template, "v2")

    numbers = itertools.count()
    target = workdir / "update"

    def fresh_copy_of_base() -> None:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(base, target, symlinks=True)

    def copy() -> None:
        destination = workdir / f"copy-{next(numbers)}"
        copier("copy", "--trust", "--defaults", "--quiet", str(template), str(destination))

    def update() -> None:
        copier("update", "--trust", "--defaults", "--quiet", cwd=target)

    version = measure(lambda: copier("--version"))
    copies = measure(copy)
    updates = measure(update, before=fresh_copy_of_base)
    if "template release v2" not in (target / "backend" / "docs" / "migrations.md").read_text():
        raise RuntimeError("copier update did not bring in template v2")

    floor = Figure("6.1", "copier --version (CLI start-up, floor)", version)
    copied = Figure("6.2", "copier copy --trust --defaults", copies, floor)
    updated = Figure(
        "6.3",
        "copier update --trust --defaults (v1 -> v2)",
        updates,
        copied,
        note="renders both versions and merges",
    )
    return [floor, copied, updated]
