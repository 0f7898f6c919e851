"""Applied revisions never change what they run (template-owned).

A revision that exists at the base ref may already have run in production,
which never runs it again. So its upgrade must keep rendering the same SQL
offline: a fixed downgrade, a comment or a reformat passes; a changed upgrade,
or a deleted revision, fails. The exception is a squash or an adoption
(``baseline.py``): its baseline lists the revisions it replaces in
``squashes``. Once on the base, a baseline is an applied revision like any other.
"""

from __future__ import annotations

import copy
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from .project import VERSIONS
from .revisions import RenderError, describe, git, offline_sql

NEW_REVISION = 'uv run alembic revision -m "..."'


@dataclass(frozen=True)
class Applied:
    """A revision file as it was at the base commit."""

    path: str
    module: ModuleType

    @property
    def revision(self) -> str:
        return self.module.revision


def edited_since(start: str, workdir: Path) -> list[Applied]:
    """The revision files of ``start`` that were since edited, renamed or deleted."""
    listed = git("diff", "--name-status", "--diff-filter=MRD", "--relative", start, "--", VERSIONS)
    applied = []
    for line in listed.stdout.splitlines():
        old_path = line.split("\t")[1]
        if not old_path.endswith(".py"):
            continue
        source = git("show", f"{start}:./{old_path}").stdout
        copy = workdir / Path(old_path).name
        copy.write_text(source)
        spec = importlib.util.spec_from_file_location(f"applied_{copy.stem}", copy)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception:
            continue  # never a loadable revision, so never applied anywhere
        if hasattr(module, "revision"):
            applied.append(Applied(old_path, module))
    return applied


def squashes(revision: Script) -> tuple[str, ...]:
    """The revisions a squash baseline replaces (empty for any other revision)."""
    return tuple(getattr(revision.module, "squashes", ()))


def replaced_by_a_new_baseline(applied: Applied, revision: Script) -> bool:
    """``revision`` is a baseline that took the place of the applied one in this change (a
    squash or an adoption keeps its id); a baseline that was already there stays compared."""
    return bool(squashes(revision)) and not getattr(applied.module, "squashes", ())


def applied_revision_problems(config: Config, script: ScriptDirectory, start: str) -> list[str]:
    """One line for each revision of ``start`` whose upgrade SQL changed, or that was deleted."""
    current = {revision.revision: revision for revision in script.walk_revisions()}
    squashed = {old for revision in current.values() for old in squashes(revision)}
    problems = []
    with tempfile.TemporaryDirectory(prefix="applied-revisions-") as tmp:
        for applied in edited_since(start, Path(tmp)):
            restore = (
                f"restore it (git checkout {start[:12]} -- {applied.path}) and make the change "
                f"in a new revision ({NEW_REVISION})"
            )
            revision = current.get(applied.revision)
            if revision is None:
                if applied.revision not in squashed:
                    problems.append(
                        f"{applied.path} (revision {applied.revision}) was deleted, but databases "
                        f"that ran it still record it: {restore}"
                    )
            elif not replaced_by_a_new_baseline(applied, revision):
                try:
                    before = offline_sql(config, script, as_applied(applied, revision))
                    after = offline_sql(config, script, revision)
                except RenderError as error:
                    problems.append(
                        f"{error}; it was edited since {start[:12]}, so it cannot be compared"
                    )
                    continue
                if before != after:
                    problems.append(
                        f"{describe(revision)} changed the SQL its upgrade runs, but databases "
                        f"that already ran it never run it again: {restore}"
                    )
    return problems


def as_applied(applied: Applied, revision: Script) -> Script:
    """``revision`` as it was at the base: the same place in the history, the old module."""
    old = copy.copy(revision)
    old.module = applied.module
    return old
