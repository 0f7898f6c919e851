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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import RevisionStep
from alembic.script import Script, ScriptDirectory

from .project import BACKEND, VERSIONS


class RenderError(Exception):
    """A revision's SQL cannot be rendered offline; the message is one line."""


@dataclass(frozen=True)
class Selection:
    """The revisions to look at, oldest first, one line that says why these, and the base."""

    revisions: list[Script]
    reason: str
    start: str | None  # the commit the change started from: the base's merge base
    base: str  # the base ref as the user named it, or why there is none
    ref: str | None = None  # the base ref itself: what the running release runs


def oldest_first(script: ScriptDirectory) -> list[Script]:
    """Every revision but merge points (they join branches; their parents carry the SQL)."""
    revisions = reversed(list(script.walk_revisions()))
    return [revision for revision in revisions if not revision.is_merge_point]


def relative_path(revision: Script) -> str:
    return os.path.relpath(revision.path, BACKEND)


def describe(revision: Script) -> str:
    return f"{relative_path(revision)} (revision {revision.revision})"


def where(revision: Script | None) -> str:
    """The revision as the gate's tests name it; a step before any revision is env.py's."""
    if revision is None:
        return "before the first revision"
    return f"revision {revision.revision} ({relative_path(revision)})"


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
        unchecked = f"applied revisions and the running release not checked: {why}"
        return Selection(revisions, f"{scope}; {unchecked}", None, why)
    if everything:
        return Selection(revisions, scope, start, why, base)
    changed = changed_files(start)
    new = [revision for revision in revisions if Path(revision.path).resolve() in changed]
    return Selection(new, f"{len(new)} revision(s) added or changed since {why}", start, why, base)


class OfflineOutput(io.TextIOBase):
    """Where an offline run writes: env.py's preamble (the timeouts), then each revision's step."""

    def __init__(self) -> None:
        self.preamble = io.StringIO()
        self.steps: dict[str, io.StringIO] = {}
        self._into = self.preamble

    def start(self, revision: Script) -> None:
        self._into = self.steps[revision.revision] = io.StringIO()

    def write(self, text: str) -> int:
        return self._into.write(text)

    def sql(self, revision: Script) -> str:
        return self.preamble.getvalue() + self.steps[revision.revision].getvalue()


def chains(revisions: list[Script]) -> Iterator[list[Script]]:
    """``revisions`` cut where one's parent is not the one before it."""
    chain: list[Script] = []
    for revision in revisions:
        if chain and revision.down_revision != chain[-1].revision:
            yield chain
            chain = []
        chain.append(revision)
    if chain:
        yield chain


def render_chain(
    config: Config, script: ScriptDirectory, chain: list[Script], output: OfflineOutput
) -> None:
    """``alembic upgrade PARENT:LAST --sql`` for a chain, in one env.py run, into ``output``."""

    def steps(heads: object, context: object) -> Iterator[RevisionStep]:
        for revision in chain:
            output.start(revision)
            yield RevisionStep(script.revision_map, revision, True)

    context = EnvironmentContext(
        config,
        script,
        fn=steps,
        as_sql=True,
        starting_rev=chain[0].down_revision,
        destination_rev=chain[-1].revision,
        output_buffer=output,
    )
    with context, contextlib.redirect_stderr(io.StringIO()):  # env.py logs each step
        script.run_env()


def offline_sql_each(
    config: Config, script: ScriptDirectory, revisions: list[Script]
) -> Iterator[tuple[Script, str | RenderError]]:
    """What ``alembic upgrade PARENT:REVISION --sql`` writes for each revision, timeouts included.

    A chain of revisions renders in one env.py run, split at each step. A
    revision that cannot render gives its error, and the rest of its chain
    renders from it on. One ``ScriptDirectory`` serves every revision.
    """
    for chain in chains(revisions):
        while chain:
            output = OfflineOutput()
            try:
                render_chain(config, script, chain, output)
            except Exception as error:
                done = [revision for revision in chain if revision.revision in output.steps]
                failed = chain[max(len(done) - 1, 0)]
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                yield from ((revision, output.sql(revision)) for revision in done[:-1])
                yield (
                    failed,
                    RenderError(f"{describe(failed)}: cannot render its SQL offline: {reason}"),
                )
                chain = chain[chain.index(failed) + 1 :]
                continue
            yield from ((revision, output.sql(revision)) for revision in chain)
            chain = []


def offline_sql(config: Config, script: ScriptDirectory, revision: Script) -> str:
    """What ``alembic upgrade PARENT:REVISION --sql`` writes for one revision."""
    [(_, sql)] = offline_sql_each(config, script, [revision])
    if isinstance(sql, RenderError):
        raise sql
    return sql
