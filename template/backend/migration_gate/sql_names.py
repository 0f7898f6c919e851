"""Names in the SQL a revision runs, as SQLAlchemy names them (template-owned)."""

from __future__ import annotations

import re

IDENTIFIER = r'(?:"(?:[^"]|"")+"|[\w$]+)'
QUALIFIED = rf"{IDENTIFIER}(?:\s*\.\s*{IDENTIFIER})?"
DROPPED_TABLE = re.compile(
    rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<tables>{QUALIFIED}(?:\s*,\s*{QUALIFIED})*)",
    re.IGNORECASE,
)
ALTERED_TABLE = re.compile(
    rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{QUALIFIED})", re.IGNORECASE
)
DROPPED_COLUMN = re.compile(
    rf"\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?P<column>{IDENTIFIER})", re.IGNORECASE
)


def unquoted(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part.lower()


def full_name(reference: str) -> str:
    """``public."user-event"`` as SQLAlchemy names the table: ``user-event``."""
    names = [unquoted(part) for part in re.findall(IDENTIFIER, reference)]
    if len(names) == 2 and names[0] == "public":
        names = names[1:]
    return ".".join(names)


def dropped(statement: str) -> list[tuple[str, str | None]]:
    """The tables (``(table, None)``) or columns (``(table, column)``) a statement drops."""
    if tables := DROPPED_TABLE.search(statement):
        return [(full_name(name), None) for name in re.findall(QUALIFIED, tables["tables"])]
    altered = ALTERED_TABLE.search(statement)
    if altered is None:
        return []
    rest = statement[altered.end() :]
    return [
        (full_name(altered["table"]), unquoted(match["column"]))
        for match in DROPPED_COLUMN.finditer(rest)
        if match["column"].upper() not in ("CONSTRAINT", "DEFAULT", "NOT", "EXPRESSION")
    ]
