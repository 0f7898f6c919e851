"""What a change does to the schema, for its reviewer, as Markdown (template-owned).

For each revision added or changed since the base ref (the same choice as
``lint-migrations``): its message and id, the SQL it runs (offline), squawk's
findings, and the hazards it accepts with their reasons; then the ER diagram
of the tables those revisions touch. ``uvx nox -s review`` prints it; in CI it
also goes to the job summary (``$GITHUB_STEP_SUMMARY``). It reports and never
fails the build: ``lint-migrations`` is the gate.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import to_tuple
from sqlalchemy import Table
from sqlmodel import SQLModel

from .lint import Linted, lint_revisions
from .project import project_config
from .revisions import relative_path, select_revisions
from .schema_docs import er_diagrams

IDENTIFIER = r'(?:"(?:[^"]|"")+"|[\w$]+)'
# Where PostgreSQL DDL names the table it changes: CREATE/ALTER/DROP/COMMENT ON
# TABLE name, CREATE INDEX ... ON name, INSERT INTO name, UPDATE name.
TABLE_REFERENCE = re.compile(
    rf"\b(?P<verb>DROP\s+TABLE|TABLE|ON|INTO|UPDATE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?"
    rf"(?P<name>{IDENTIFIER}(?:\s*\.\s*{IDENTIFIER})?)",
    re.IGNORECASE,
)


def full_name(reference: str) -> str:
    """``public."user-event"`` as SQLAlchemy names the table: ``user-event``."""
    parts = re.findall(IDENTIFIER, reference)
    names = [p[1:-1].replace('""', '"') if p.startswith('"') else p.lower() for p in parts]
    if len(names) == 2 and names[0] == "public":
        names = names[1:]
    return ".".join(names)


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


def escape(text: str) -> str:
    """Plain text in Markdown that GitHub renders as HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block(text: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"


def findings_section(item: Linted) -> str:
    if not item.findings:
        return "**squawk:** no findings.\n"
    lines = ["**squawk:**", ""]
    for finding in item.findings:
        rule = finding["rule_name"]
        verdict = "accepted" if rule in item.accepted else "**hazard**"
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


def revision_section(item: Linted) -> str:
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
    linted, problems = lint_revisions(script, selection.revisions)
    parts = [f"## Migration review\n\n{escape(selection.reason)}.\n"]
    parts += [revision_section(item) for item in linted]
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
