"""Which revisions a change adds or edits, and the SQL each one runs (template-owned).

The base of a change is ``MIGRATION_LINT_BASE`` when set, the pull request's
base branch in CI (``GITHUB_BASE_REF``), else ``origin/main`` when it exists.
Without a usable base every revision counts. A revision's SQL is rendered
offline (``alembic upgrade PARENT:REVISION --sql``) in this process: no
database and no process per revision.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import RevisionStep
from alembic.script import Script, ScriptDirectory

BACKEND = Path(__file__).resolve().parents[2]
VERSIONS = "migrations/versions"


class RenderError(Exception):
    """A revision's SQL cannot be rendered offline; the message is one line."""


@dataclass(frozen=True)
class Selection:
    """The revisions to look at, oldest first, one line that says why these, and the base."""

    revisions: list[Script]
    reason: str
    start: str | None  # the commit the change started from: the base's merge base
    base: str  # the base ref as the user named it, or why there is none


def project_config() -> Config:
    return Config(str(BACKEND / "alembic.ini"))


def oldest_first(script: ScriptDirectory) -> list[Script]:
    """Every revision but merge points (they join branches; their parents carry the SQL)."""
    revisions = reversed(list(script.walk_revisions()))
    return [revision for revision in revisions if not revision.is_merge_point]


def relative_path(revision: Script) -> str:
    return os.path.relpath(revision.path, BACKEND)


def describe(revision: Script) -> str:
    return f"{relative_path(revision)} (revision {revision.revision})"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=BACKEND, capture_output=True, text=True, check=False)


def resolves(ref: str) -> bool:
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode == 0


def base_ref() -> tuple[str | None, str]:
    """The base to compare with, or None and the one line that says why there is none."""
    if git("rev-parse", "--is-inside-work-tree").returncode != 0:
        return None, "not a git checkout"
    if chosen := os.environ.get("MIGRATION_LINT_BASE", "").strip():
        if resolves(chosen):
            return chosen, f"MIGRATION_LINT_BASE={chosen}"
        return None, f"MIGRATION_LINT_BASE={chosen} does not name a commit here"
    if pull_request_base := os.environ.get("GITHUB_BASE_REF", "").strip():
        ref = f"origin/{pull_request_base}"
        if resolves(ref):
            return ref, f"the pull request's base {ref}"
        return None, f"the pull request's base {ref} was not fetched (fetch-depth: 0)"
    if resolves("origin/main"):
        return "origin/main", "origin/main"
    return None, "no base ref (set MIGRATION_LINT_BASE, or fetch origin/main)"


def merge_base(base: str) -> str:
    """Where the change started from ``base``: what a pull request's diff compares with."""
    return git("merge-base", base, "HEAD").stdout.strip() or base


def changed_files(start: str) -> set[Path]:
    """Revision files added or edited since the commit ``start``, committed or not."""
    edited = git("diff", "--name-only", "--diff-filter=AMR", "--relative", start, "--", VERSIONS)
    untracked = git("ls-files", "--others", "--exclude-standard", "--", VERSIONS)
    names = edited.stdout.split("\n") + untracked.stdout.split("\n")
    return {(BACKEND / name).resolve() for name in names if name.strip()}


def select_revisions(script: ScriptDirectory, everything: bool) -> Selection:
    revisions = oldest_first(script)
    base, why = base_ref()
    start = merge_base(base) if base else None
    scope = f"all {len(revisions)} revision(s)" + (" (--all)" if everything else "")
    if start is None:
        return Selection(revisions, f"{scope}; applied revisions not compared: {why}", None, why)
    if everything:
        return Selection(revisions, scope, start, why)
    changed = changed_files(start)
    new = [revision for revision in revisions if Path(revision.path).resolve() in changed]
    return Selection(new, f"{len(new)} revision(s) added or changed since {why}", start, why)


def offline_sql(config: Config, script: ScriptDirectory, revision: Script) -> str:
    """What ``alembic upgrade PARENT:REVISION --sql`` writes, timeouts included.

    One ``ScriptDirectory`` serves every revision: ``alembic.command`` would
    load every revision file again for each one.
    """
    start = revision.down_revision or "base"
    buffer = io.StringIO()
    context = EnvironmentContext(
        config,
        script,
        fn=lambda heads, context: [RevisionStep(script.revision_map, revision, True)],
        as_sql=True,
        starting_rev=None if start == "base" else start,
        destination_rev=revision.revision,
        output_buffer=buffer,
    )
    try:
        with context, contextlib.redirect_stderr(io.StringIO()):  # env.py logs each step
            script.run_env()
    except Exception as error:
        reason = str(error).strip().splitlines()
        raise RenderError(
            f"{describe(revision)}: cannot render its SQL offline: "
            f"{reason[0] if reason else type(error).__name__}"
        ) from None
    return buffer.getvalue()
