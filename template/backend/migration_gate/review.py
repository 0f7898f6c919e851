"""What a change does to the schema, for its reviewer, as Markdown (template-owned).

For each revision added or changed since the base ref (the same choice as
``lint-migrations``): its message and id, the SQL it runs (offline), squawk's
findings, what it did on the gate's rows (the locks it held on tables with
rows, what it rewrote, where squawk and that measurement disagree), and the
hazards it accepts with their reasons; then the ER diagram of the tables
those revisions touch. The measurement is the gate's own climb (``climb.py``),
run again here on a scratch database of the test server: the same revisions
on the same rows give the same locks and rewrites as in the gate's tests.
``uvx nox -s review`` prints it; in CI it also goes to the job summary
(``$GITHUB_STEP_SUMMARY``). It reports and never fails the build: the gate's
tests and ``lint-migrations`` are the gate.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import to_tuple
from sqlalchemy import Table
from sqlmodel import SQLModel

from .climb import HistoryDatabase, StepFailed, climb
from .lint import Linted, lint_revisions
from .project import project_config
from .revisions import Selection, relative_path, select_revisions
from .running_release import RULE, ReleaseUnavailable, breaks, old_release
from .schema_docs import er_diagrams
from .servers import NoServerError, session_server, temporary_database
from .sql_names import IDENTIFIER, full_name
from .trace import Measured

# Where PostgreSQL DDL names the table it changes: CREATE/ALTER/DROP/COMMENT ON
# TABLE name, CREATE INDEX ... ON name, INSERT INTO name, UPDATE name.
TABLE_REFERENCE = re.compile(
    rf"\b(?P<verb>DROP\s+TABLE|TABLE|ON|INTO|UPDATE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?"
    rf"(?P<name>{IDENTIFIER}(?:\s*\.\s*{IDENTIFIER})?)",
    re.IGNORECASE,
)


def touched_tables(sql: str, tables: dict[str, Table]) -> tuple[set[str], set[str]]:
    """The model tables this SQL changes, and the tables it drops."""
    touched, dropped = set(), set()
    for match in TABLE_REFERENCE.finditer(sql):
        name = full_name(match["name"])
        if name in tables:
            touched.add(name)
        elif match["verb"].upper().startswith("DROP"):
            dropped.add(name)
    return touched, dropped


# squawk's rules that say the statement rewrites the table.
REWRITE_RULES = ("changing-column-type", "adding-field-with-default")


@dataclass
class RowsMeasured:
    """What the gate's climb measured, by revision, or why it could not."""

    measured: dict[str, Measured] = field(default_factory=dict)
    failure: str | None = None  # the climb's one line, when a revision failed on the way
    not_measured: str | None = None  # why nothing was measured
    release: str = "not checked"  # the running release's verdict, when there is no break
    breaks: dict[str, list[str]] = field(default_factory=dict)  # revision -> what breaks


def measure_on_rows(selection: Selection, everything: bool) -> RowsMeasured:
    """The gate's climb on a scratch database, with the same revisions on rows, and the
    running release (the base ref's models) on the schema it leaves at head."""
    try:
        with session_server() as server, temporary_database(server) as url:
            history = HistoryDatabase.on(url, everything)
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # env.py logs each step
                    climb(history)
            except StepFailed as failure:
                found = RowsMeasured(dict(history.rows.measured), failure=str(failure))
            else:
                found = RowsMeasured(dict(history.rows.measured))
                check_running_release(found, history, selection)
            if not history.rows.enabled:
                found.not_measured = history.rows.report()[0]
            history.close()
            return found
    except (NoServerError, OSError) as error:
        return RowsMeasured(not_measured=f"not measured: {error}")


def check_running_release(
    found: RowsMeasured, history: HistoryDatabase, selection: Selection
) -> None:
    if selection.ref is None:
        found.release = f"not checked: {selection.base}"
        return
    try:
        release = old_release(selection.ref, history.engine.url.render_as_string(False))
    except ReleaseUnavailable as error:
        found.release = f"not checked: {error}"
        return
    found.release = f"safe for the running release ({selection.ref})"
    for each in breaks(release, history.changes, selection.revisions).breaks:
        key = each.revision.revision if each.revision else ""
        found.breaks.setdefault(key, []).append(each.line(selection.ref))


def release_section(item: Linted, on_rows: RowsMeasured) -> str:
    """Safe for the running release, what breaks it, or that this revision accepts that."""
    found = on_rows.breaks.get(item.revision.revision)
    if not found:
        return f"**Running release:** {escape(on_rows.release)}.\n"
    verdict = "breaks it"
    if reason := item.accepted.get(RULE):
        verdict = f"breaks it, accepted: {escape(reason)}"
    lines = [f"**Running release:** {verdict}", ""]
    lines += [f"- {escape(line.split(': ', 1)[1])}" for line in found]
    return "\n".join(lines) + "\n"


def escape(text: str) -> str:
    """Plain text in Markdown that GitHub renders as HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block(text: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"


def findings_section(item: Linted) -> str:
    """squawk's findings: hazards, style advice (counted apart), and what is accepted."""
    if not item.findings:
        return "**squawk:** no findings.\n"
    hazards, advice = len(item.hazards()), len(item.advice())
    lines = [f"**squawk:** {hazards} hazard(s), {advice} style advice", ""]
    for index, finding in enumerate(item.findings):
        rule = finding["rule_name"]
        verdict = (
            "accepted"
            if rule in item.accepted
            else "safe by evidence"
            if index in item.evidence
            else "advice (style, not a hazard)"
            if item.is_advice(finding)
            else "**hazard**"
        )
        where = f"SQL line {finding['line'] + 1}"
        line = f"- {verdict} `{rule}` ({where}): {escape(finding['message'])}"
        if finding.get("help"):
            line += f" Help: {escape(finding['help'])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def accepted_section(item: Linted) -> str:
    if not item.accepted:
        return "**Accepted hazards:** none.\n"
    lines = ["**Accepted hazards:**", ""]
    lines += [f"- `{rule}`: {escape(reason)}" for rule, reason in item.accepted.items()]
    return "\n".join(lines) + "\n"


def measured_section(item: Linted, on_rows: RowsMeasured) -> str:
    revision = item.revision.revision
    if on_rows.failure and f"revision {revision} " in on_rows.failure:
        return f"**On the gate's rows:** {escape(on_rows.failure)}\n"
    measured = on_rows.measured.get(revision)
    if measured is None:
        why = on_rows.not_measured or "not measured: the climb stopped before it"
        return f"**On the gate's rows:** {escape(why)}.\n"
    lines = ["**On the gate's rows:**", ""]
    lines += [f"- {escape(line)}" for line in measured.lines()]
    lines += [f"- {escape(line)}" for line in disagreements(item, measured)]
    return "\n".join(lines) + "\n"


def disagreements(item: Linted, measured: Measured) -> list[str]:
    """Where squawk and the measurement tell different stories: evidence for the reviewer."""
    flagged = [rule for rule in REWRITE_RULES if rule in item.fired()]
    rewrote = measured.rewrote()
    if flagged and not rewrote and measured.locks:
        return [
            f"squawk and the measurement disagree: squawk flags {', '.join(flagged)} (a "
            "rewrite), but this revision rewrote no table with rows: PostgreSQL changed the "
            "catalog only"
        ]
    if rewrote and not flagged:
        return [
            f"squawk and the measurement disagree: this revision rewrote {', '.join(rewrote)}, "
            "which squawk does not flag"
        ]
    return []


def revision_section(item: Linted, on_rows: RowsMeasured) -> str:
    revision = item.revision
    message = (revision.doc or "").strip().splitlines()
    parents = ", ".join(f"`{parent}`" for parent in to_tuple(revision.down_revision, ()))
    return "\n".join(
        [
            f"### `{revision.revision}`: {escape(message[0] if message else '(no message)')}",
            "",
            f"`{relative_path(revision)}`, on top of {parents or 'the empty database'}.",
            "",
            code_block("\n".join(item.sql_lines), "sql"),
            findings_section(item),
            measured_section(item, on_rows),
            release_section(item, on_rows),
            accepted_section(item),
        ]
    )


def tables_section(linted: list[Linted]) -> str:
    tables = SQLModel.metadata.tables
    touched: set[str] = set()
    dropped: set[str] = set()
    for item in linted:
        changed, gone = touched_tables("\n".join(item.sql_lines), dict(tables))
        touched |= changed
        dropped |= gone
    parts = ["## Tables these revisions touch", ""]
    if touched:
        parts.append(er_diagrams(tables[name] for name in touched))
    else:
        parts.append("No table in the models.\n")
    if dropped:
        parts.append("Dropped: " + ", ".join(f"`{name}`" for name in sorted(dropped)) + ".\n")
    return "\n".join(parts)


def review_markdown(everything: bool = False) -> tuple[str, str | None]:
    """Which revisions and why, and their review (None when there are none)."""
    script = ScriptDirectory.from_config(project_config())
    selection = select_revisions(script, everything)
    if not selection.revisions:
        return selection.reason, None
    linted, problems = lint_revisions(script, selection.revisions, selection.ref)
    on_rows = measure_on_rows(selection, everything)
    parts = [f"## Migration review\n\n{escape(selection.reason)}.\n"]
    parts += [revision_section(item, on_rows) for item in linted]
    if problems:
        parts.append("**Problems:**\n\n" + "\n".join(f"- {escape(p)}" for p in problems) + "\n")
    parts.append(tables_section(linted))
    return selection.reason, "\n".join(parts)


def review(everything: bool = False) -> int:
    """Print the review; append it to the job summary when CI gives one."""
    reason, markdown = review_markdown(everything)
    if markdown is None:
        print(f"review: {reason}: nothing to review")
        return 0
    print(markdown)
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(summary).open("a", encoding="utf-8") as job_summary:
            job_summary.write(markdown + "\n")
    return 0
