"""squawk on the SQL of new revisions, in one call, with hazards accepted on the record.

Template-owned. A revision accepts a squawk rule, for itself only, with a
reason that stays in its file (``hazards.py``)::

    accepted_hazards = {"ban-drop-column": "user.nickname unread since 2026.11 (PR #412)"}

An empty reason, an unknown rule, or an accepted squawk rule that no longer
fires fails the lint: a stale acceptance would hide the next hazard. The
gate's own rules (``table-rewrite``, ``lossy-downgrade``) are known here too;
whether they fire is measured on rows by the gate's tests, which fail on a
stale one.

squawk's schema-style rules (``STYLE_RULES``: ``prefer-timestamp-tz`` and the
like) are no hazard to a live database: they are printed as advice, counted
apart, and fail nothing, unless ``migrations/env_hooks.py`` sets
``FAIL_ON_STYLE_ADVICE = True``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

from .applied_revisions import applied_revision_problems, squashes
from .hazards import (
    GATE_RULES,
    ROWS_RULES,
    DeclarationError,
    accepted_hazards,
    evidence_problem,
    stale,
)
from .project import BACKEND, env_hooks, project_config
from .revisions import (
    RenderError,
    Selection,
    describe,
    offline_sql_each,
    select_revisions,
)
from .running_release import ReleaseUnavailable, old_release
from .sql_names import dropped

# squawk-cli installs its binary beside this interpreter, on PATH or not.
SQUAWK_BINARY = Path(sys.executable).with_name("squawk")
SQUAWK = [
    str(SQUAWK_BINARY) if SQUAWK_BINARY.exists() else "squawk",
    *("--config", str(BACKEND / ".squawk.toml"), "--reporter", "json"),
]
# squawk's rules about a schema's style, not its locks: what the template does not
# exclude in .squawk.toml is advice, unless the team chooses to fail on it.
STYLE_RULES = frozenset(
    {
        "prefer-timestamp-tz",
        "prefer-bigint-over-int",
        "prefer-bigint-over-smallint",
        "prefer-big-int",
        "prefer-identity",
        "prefer-text-field",
        "ban-char-field",
    }
)
STYLE_SETTING = "FAIL_ON_STYLE_ADVICE"
# squawk's rules that a drop of what the running release no longer maps makes safe.
EVIDENCE_RULES = frozenset({"ban-drop-column", "ban-drop-table"})
HOW_TO_FIX = (
    "make the change safe (docs/safe-migrations.md), or accept a hazard on the record in "
    'the revision: accepted_hazards = {"<rule>": "<why it is safe>"}'
)


@dataclass
class Linted:
    """One revision: its SQL file, what it accepts, and what squawk found."""

    revision: Script
    sql_file: Path
    sql_lines: list[str]
    accepted: dict[str, str]
    findings: list[dict] = field(default_factory=list)
    evidence: dict[int, str] = field(default_factory=dict)  # finding's index -> why it is safe
    style_fails: bool = False  # the team's FAIL_ON_STYLE_ADVICE

    def fired(self) -> set[str]:
        return {finding["rule_name"] for finding in self.findings}

    def unaccepted(self) -> list[dict]:
        return [
            finding
            for index, finding in enumerate(self.findings)
            if finding["rule_name"] not in self.accepted and index not in self.evidence
        ]

    def is_advice(self, finding: dict) -> bool:
        return finding["rule_name"] in STYLE_RULES and not self.style_fails

    def hazards(self) -> list[dict]:
        """What fails the lint: every unaccepted finding but style advice."""
        return [finding for finding in self.unaccepted() if not self.is_advice(finding)]

    def advice(self) -> list[dict]:
        return [finding for finding in self.unaccepted() if self.is_advice(finding)]

    def statement(self, finding: dict) -> str:
        """The SQL statement a finding points at, to its semicolon."""
        lines = []
        for line in self.sql_lines[finding["line"] :]:
            lines.append(line)
            if line.rstrip().endswith(";"):
                break
        return "\n".join(lines)


def unknown_rules(rules: set[str]) -> set[str]:
    """The rules squawk does not know, asking squawk itself (one call when all are known);
    the gate's own rules are known."""
    rules = rules - set(GATE_RULES)
    unknown: set[str] = set()
    while rules - unknown:
        probe = subprocess.run(
            [*SQUAWK, "--exclude", ",".join(sorted(rules - unknown))],
            input="",
            capture_output=True,
            text=True,
        )
        named = [rule for rule in rules - unknown if f"invalid rule name {rule}" in probe.stderr]
        if probe.returncode != 2 or not named:
            break
        unknown.update(named)
    return unknown


def run_squawk(linted: list[Linted]) -> None:
    """One squawk call over every SQL file; findings go to their revision."""
    by_file = {str(item.sql_file): item for item in linted}
    result = subprocess.run([*SQUAWK, *by_file], capture_output=True, text=True, cwd=BACKEND)
    if result.returncode not in (0, 1):
        reason = (result.stderr.strip().splitlines() or ["no output"])[0]
        raise CommandError(f"squawk failed (exit {result.returncode}): {reason}")
    for finding in json.loads(result.stdout or "[]"):
        by_file[finding["file"]].findings.append(finding)


def report_hazard(item: Linted, finding: dict, label: str = "") -> None:
    line = finding["line"]
    statement = item.sql_lines[line].strip() if line < len(item.sql_lines) else ""
    print(f"{describe(item.revision)}: {label}{finding['rule_name']}: {finding['message']}")
    print(f"    SQL line {line + 1}: {statement}")
    if finding.get("help"):
        print(f"    help: {finding['help']}")


def style_fails() -> bool:
    """The team's ``FAIL_ON_STYLE_ADVICE`` in ``migrations/env_hooks.py`` (default False)."""
    try:
        return getattr(env_hooks(), STYLE_SETTING, False) is True
    except ModuleNotFoundError:
        return False


def prepare(
    script: ScriptDirectory, revisions: list[Script], workdir: Path
) -> tuple[list[Linted], list[str]]:
    """Render each revision's SQL to its own file; collect what stops a revision's lint."""
    accepted: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for revision in revisions:
        if squashes(revision):
            print(f"{describe(revision)}: not linted: a squash baseline runs on new databases only")
            continue
        try:
            accepted[revision.revision] = accepted_hazards(revision)
        except DeclarationError as error:
            problems.append(str(error))
    to_render = [revision for revision in revisions if revision.revision in accepted]
    linted: list[Linted] = []
    strict = style_fails()
    for revision, sql in offline_sql_each(project_config(), script, to_render):
        if isinstance(sql, RenderError):
            problems.append(str(sql))
            continue
        sql_file = workdir / f"{Path(revision.path).stem}.sql"
        sql_file.write_text(sql)
        linted.append(
            Linted(
                revision,
                sql_file,
                sql.splitlines(),
                accepted[revision.revision],
                style_fails=strict,
            )
        )
    return linted, problems


def acceptance_problems(item: Linted, unknown: set[str]) -> list[str]:
    """What is wrong with the revision's ``accepted_hazards``, one line each."""
    problems = []
    for rule in item.accepted:
        if rule in unknown:
            problems.append(
                f"{describe(item.revision)}: accepted_hazards names {rule!r}, which is "
                f"neither a squawk rule nor one of the gate's ({', '.join(GATE_RULES)})"
            )
        elif rule in ROWS_RULES:
            if problem := evidence_problem(item.revision, rule, item.accepted[rule]):
                problems.append(problem)
        elif rule not in item.fired() and rule not in GATE_RULES:
            problems.append(stale(describe(item.revision), rule, "squawk no longer finds it"))
    return problems


def satisfy_by_evidence(linted: list[Linted], release_ref: str | None) -> None:
    """A drop of what the running release no longer maps is safe, and needs no acceptance:
    each such finding gets that evidence. One process loads the base ref's models, and only
    when squawk flags such a drop; when it cannot, one line on stderr says why, and the
    findings stay hazards."""
    candidates = [
        (item, index)
        for item in linted
        for index, finding in enumerate(item.findings)
        if finding["rule_name"] in EVIDENCE_RULES and finding["rule_name"] not in item.accepted
    ]
    if not candidates or release_ref is None:
        return
    try:
        release = old_release(release_ref)
    except ReleaseUnavailable as error:
        print(f"lint-migrations: no evidence from the running release: {error}", file=sys.stderr)
        return
    for item, index in candidates:
        objects = dropped(item.statement(item.findings[index]))
        if objects and not any(release.maps(*each) for each in objects):
            names = ", ".join(".".join(filter(None, each)) for each in objects)
            item.evidence[index] = f"the running release ({release_ref}) no longer maps {names}"


def report(item: Linted) -> None:
    """Print the revision's hazards, the findings evidence makes safe, and each accepted
    rule that fired with its reason."""
    for finding in item.hazards():
        report_hazard(item, finding)
    for finding in item.advice():
        report_hazard(item, finding, label="advice (style, not a hazard): ")
    for index, why in item.evidence.items():
        rule = item.findings[index]["rule_name"]
        print(f"{describe(item.revision)}: {rule} satisfied by evidence: {why}")
    for rule, reason in item.accepted.items():
        if rule in item.fired():
            print(f"{describe(item.revision)}: accepted {rule}: {reason}")
        elif rule in GATE_RULES:
            print(f"{describe(item.revision)}: accepted {rule} (the gate measures it): {reason}")


def lint_revisions(
    script: ScriptDirectory, revisions: list[Script], release_ref: str | None = None
) -> tuple[list[Linted], list[str]]:
    """Each revision's SQL and squawk's findings on it (one squawk call), with the evidence
    the running release (``release_ref``) gives, and the problems that stop a revision's
    lint or make its ``accepted_hazards`` wrong."""
    with tempfile.TemporaryDirectory(prefix="lint-migrations-") as tmp:
        linted, problems = prepare(script, revisions, Path(tmp))
        if linted:
            run_squawk(linted)
    satisfy_by_evidence(linted, release_ref)
    unknown = unknown_rules({rule for item in linted for rule in item.accepted})
    for item in linted:
        problems += acceptance_problems(item, unknown)
    return linted, problems


def applied_changes(script: ScriptDirectory, selection: Selection) -> list[str]:
    """Problems with revisions that existed at the base: changed SQL, or deleted."""
    if selection.start is None:
        return []
    return applied_revision_problems(project_config(), script, selection.start)


def lint_migrations(everything: bool = False) -> int:
    try:
        script = ScriptDirectory.from_config(project_config())
        selection = select_revisions(script, everything)
    except CommandError as error:
        print(f"lint-migrations: {error}", file=sys.stderr)
        return 1
    print(f"lint-migrations: {selection.reason}", flush=True)
    linted, problems = lint_revisions(script, selection.revisions, selection.ref)
    problems = applied_changes(script, selection) + problems
    for item in linted:
        report(item)
    for problem in problems:
        print(problem, file=sys.stderr)
    hazards = [finding for item in linted for finding in item.hazards()]
    style = sum(finding["rule_name"] in STYLE_RULES for finding in hazards)
    if len(hazards) > style:
        print(
            f"lint-migrations: {len(hazards) - style} lock hazard(s): {HOW_TO_FIX}", file=sys.stderr
        )
    if style:
        print(
            f"lint-migrations: {style} style finding(s), failing as {STYLE_SETTING} = True in "
            "migrations/env_hooks.py asks: change the column, or accept the rule on the record: "
            'accepted_hazards = {"<rule>": "<why>"}',
            file=sys.stderr,
        )
    if advice := sum(len(item.advice()) for item in linted):
        print(
            f"lint-migrations: {advice} style advice (not hazards; {STYLE_SETTING} = True in "
            "migrations/env_hooks.py fails on them)"
        )
    return 1 if hazards or problems else 0
