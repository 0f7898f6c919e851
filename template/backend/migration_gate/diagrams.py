"""Mermaid text for tables and for the revision history (template-owned).

``er_diagram`` draws SQLAlchemy tables: columns with their PostgreSQL types,
keys, and relationships with cardinality. ``revision_graph`` draws Alembic's
``ScriptDirectory`` with branches and merge points. Both only read: no database.

Mermaid's ER grammar takes a quoted entity name, so every table name is quoted
(reserved words such as ``style``, dashes, dots, non-ASCII). Attribute names
cannot be quoted; a column whose name Mermaid cannot hold is drawn under a safe
name, and its real name is given in the attribute's comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from alembic.script import Script, ScriptDirectory
from alembic.util import to_tuple
from sqlalchemy import Column, Enum, ForeignKeyConstraint, Table, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import CompileError

DIALECT = postgresql.dialect()
# What Mermaid's ER lexer reads as one attribute word, and the key words it
# reads as key markers wherever they stand.
ATTRIBUTE_WORD = re.compile(r"[A-Za-z_\u00C0-\uFFFF][A-Za-z0-9_\-\[\]().,\u00C0-\uFFFF]*")
KEY_WORDS = {"pk", "fk", "uk"}
SHORT_TYPES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time with time zone": "timetz",
    "time without time zone": "time",
    "double precision": "float8",
    "character varying": "varchar",
}
ENUM_MEMBERS_SHOWN = 5
LABEL_LENGTH = 60


def entity_name(table: Table) -> str:
    """The table's qualified name, quoted for Mermaid (which cannot hold ``"``, ``%``, ``\\``)."""
    return '"' + re.sub(r'["%\\]', "_", table.fullname) + '"'


def attribute_word(text: str) -> str:
    """``text`` as one Mermaid attribute word: unsafe characters become ``_``."""
    word = re.sub(r"[^A-Za-z0-9_\-\[\]().,\u00C0-\uFFFF]", "_", text.replace(", ", ","))
    if not ATTRIBUTE_WORD.fullmatch(word) or word.lower() in KEY_WORDS:
        word = f"_{word}"
    return word


def comment_text(text: str) -> str:
    return text.replace('"', "'")


def column_type(column: Column) -> str:
    try:
        compiled = column.type.compile(dialect=DIALECT)
    except CompileError:
        compiled = type(column.type).__name__
    compiled = compiled.lower()
    return attribute_word(SHORT_TYPES.get(compiled, compiled))


def keys(column: Column) -> str:
    markers = []
    if column.primary_key:
        markers.append("PK")
    if column.foreign_keys:
        markers.append("FK")
    if not column.primary_key and is_unique(column.table, [column]):
        markers.append("UK")
    return ", ".join(markers)


def is_unique(table: Table, columns: list[Column]) -> bool:
    """Whether these columns, exactly, are the primary key or a unique constraint or index."""
    wanted = {column.name for column in columns}
    if len(columns) == 1 and columns[0].unique:
        return True
    candidates = [table.primary_key.columns] if table.primary_key is not None else []
    candidates += [c.columns for c in table.constraints if isinstance(c, UniqueConstraint)]
    candidates += [index.columns for index in table.indexes if index.unique]
    return any({column.name for column in found} == wanted for found in candidates)


def attribute(column: Column) -> str:
    name = attribute_word(column.name)
    notes = []
    if name != column.name:
        notes.append(f"column: {column.name}")
    if isinstance(column.type, Enum) and column.type.enums:
        members = column.type.enums
        shown = ", ".join(members[:ENUM_MEMBERS_SHOWN])
        hidden = len(members) - ENUM_MEMBERS_SHOWN
        more = f", and {hidden} more" if hidden > 0 else ""
        notes.append(f"enum: {shown}{more}")
    if column.nullable and not column.primary_key:
        notes.append("nullable")
    line = f"{column_type(column)} {name}"
    if key_markers := keys(column):
        line += f" {key_markers}"
    if notes:
        line += f' "{comment_text("; ".join(notes))}"'
    return line


def relationship(constraint: ForeignKeyConstraint) -> str:
    """``parent ||--o{ child``: exactly one (or at most one if nullable) to many (or one)."""
    child = constraint.table
    parent = constraint.referred_table
    columns = list(constraint.columns)
    parent_end = "|o" if any(column.nullable for column in columns) else "||"
    child_end = "o|" if is_unique(child, columns) else "o{"
    label = comment_text(", ".join(column.name for column in columns))
    return f'{entity_name(parent)} {parent_end}--{child_end} {entity_name(child)} : "{label}"'


def er_diagram(tables: Iterable[Table]) -> str:
    """Every table in full, and its foreign keys; a referenced table outside ``tables``
    appears by name only."""
    drawn = sorted(tables, key=lambda table: table.fullname)
    lines = ["erDiagram"]
    for table in drawn:
        lines.append(f"  {entity_name(table)} {{")
        lines += [f"    {attribute(column)}" for column in table.columns]
        lines.append("  }")
    relationships = sorted(
        relationship(constraint)
        for table in drawn
        for constraint in table.foreign_key_constraints
        if constraint.referred_table is not None
    )
    lines += [f"  {line}" for line in relationships]
    return "\n".join(lines) + "\n"


# The revision history.


def node_id(revision: str) -> str:
    return "r_" + re.sub(r"[^A-Za-z0-9_]", "_", revision)


def node_label(script: Script) -> str:
    message = (script.doc or "").strip().splitlines()
    text = f"{script.revision}: {message[0] if message else ''}".rstrip(": ")
    if len(text) > LABEL_LENGTH:
        text = text[: LABEL_LENGTH - 1] + "…"
    if script.is_head:
        text += " (head)"
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def node(script: Script) -> str:
    label = node_label(script)
    if script.is_merge_point:
        return f'{node_id(script.revision)}{{{{"{label}"}}}}'
    return f'{node_id(script.revision)}["{label}"]'


def depth_of(scripts: dict[str, Script]) -> dict[str, int]:
    """Longest path from the base: parents draw above their children, in a stable order."""
    depth: dict[str, int] = {}

    def visit(revision: str) -> int:
        if revision not in depth:
            parents = [p for p in to_tuple(scripts[revision].down_revision, ()) if p in scripts]
            depth[revision] = 1 + max((visit(parent) for parent in parents), default=-1)
        return depth[revision]

    for revision in scripts:
        visit(revision)
    return depth


def revision_graph(script_directory: ScriptDirectory) -> str | None:
    """A flowchart of every revision, oldest at the top; None when there is none.

    A merge point is a hexagon, a head says so, and a ``depends_on`` is dotted.
    """
    scripts = {script.revision: script for script in script_directory.walk_revisions()}
    if not scripts:
        return None
    depth = depth_of(scripts)
    ordered = sorted(scripts.values(), key=lambda s: (depth[s.revision], s.revision))
    lines = ["flowchart TB"]
    lines += [f"  {node(script)}" for script in ordered]
    for script in ordered:
        child = node_id(script.revision)
        for parent in to_tuple(script.down_revision, ()):
            lines.append(f"  {node_id(parent)} --> {child}")
        for dependency in to_tuple(script.dependencies, ()):
            if dependency in scripts:
                lines.append(f"  {node_id(dependency)} -.-> {child}")
    return "\n".join(lines) + "\n"
