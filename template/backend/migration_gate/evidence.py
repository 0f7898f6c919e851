"""The rehearsal's evidence in the gate: its rows hold what production was found to hold.

Template-owned. A revision that accepts a ``rows-*`` rule (``hazards.py``)
with the line ``uvx nox -s rehearse`` printed for it has shown that no row of
a copy of production violates the constraints of that kind it adds. The gate's
rows are made up to violate them, so for such a revision the gate removes, just
before it runs, the rows that would (``violations.py``: one row of each key
that rows share stays), with the rows that point at them. The revision then
passes without a data step that production does not need.

What each revision adds is learnt as the rehearsal learns it: before the climb,
a scratch database with the schema alone climbs to each such revision, and its
catalogs before and after say. An accepted rule whose constraints the gate's
rows do not violate is stale, and fails; evidence whose upgrade was edited
since is not trusted (``lint-migrations`` says it is stale), so the rows stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alembic import command
from alembic.script import Script
from sqlalchemy import Engine

from .hazards import ROWS_RULES, DeclarationError, accepted_hazards, evidence_problem, stale
from .project import engine_for, project_config
from .revisions import where
from .schema_state import own_connection
from .servers import server_from_url, temporary_database
from .violations import (
    CHILD_COLUMNS,
    PARENT_COLUMNS,
    Constraint,
    added_constraints,
    plain,
    read_catalog,
)

# The tables whose foreign keys point at a table: their rows go with the rows they point at.
REFERENCING = f"""
SELECT k.conrelid::regclass::text, {CHILD_COLUMNS}, {PARENT_COLUMNS}
FROM pg_constraint k
WHERE k.contype = 'f' AND k.confrelid = %s::regclass AND k.conrelid <> k.confrelid
"""


def rehearsed_rules(revision: Script) -> set[str]:
    """The ``rows-*`` rules the revision accepts with evidence of its upgrade as it is."""
    try:
        declared = accepted_hazards(revision)
    except DeclarationError:  # lint-migrations says why
        return set()
    return {
        rule
        for rule, reason in declared.items()
        if rule in ROWS_RULES and evidence_problem(revision, rule, reason) is None
    }


def learn(engine: Engine, revisions: list[Script]) -> dict[str, list[Constraint]]:
    """What each of ``revisions`` (oldest first) adds to the tables that exist before it: a
    scratch database on ``engine``'s server climbs the schema alone to each. From the first
    revision that fails there on, they are left out: the climb on rows fails there too."""
    server = server_from_url(engine.url.render_as_string(hide_password=False))
    added: dict[str, list[Constraint]] = {}
    with temporary_database(server) as url:
        scratch = engine_for(url)
        config = project_config(scratch)
        connection = own_connection(scratch)
        cursor = connection.cursor()
        try:
            for revision in revisions:
                for parent in revision._all_down_revisions:
                    command.upgrade(config, parent)
                before = read_catalog(cursor)
                command.upgrade(config, revision.revision)
                added[revision.revision] = added_constraints(before, read_catalog(cursor))
        except Exception:  # the climb on rows fails there too, and says why
            pass
        finally:
            connection.close()
            scratch.dispose()
    return added


@dataclass
class Satisfied:
    """What the gate removed before one revision, and the accepted rules nothing fired."""

    removed: list[str] = field(default_factory=list)  # one line per constraint
    stale: list[str] = field(default_factory=list)


def satisfy(
    cursor: Any, revision: Script, rules: Iterable[str], constraints: list[Constraint]
) -> Satisfied:
    """Remove the gate's rows that violate the constraints of the accepted kinds."""
    done = Satisfied()
    for rule in sorted(rules):
        fired = False
        for constraint in constraints:
            if constraint.rule != rule or not constraint.enforced:
                continue
            removed = remove(cursor, constraint.table, constraint.surplus)
            if removed is None:
                continue  # its condition uses what the revision adds: the rows stay
            if count := removed.pop(constraint.table, 0):
                fired = True
                pointed = "".join(
                    f", and {n} {plain(table)} row(s) that pointed at them"
                    for table, n in removed.items()
                    if n
                )
                done.removed.append(
                    f"removed {count} {plain(constraint.table)} row(s) that would violate "
                    f"{plain(constraint.what)}{pointed} (accepted {rule})"
                )
        if not fired:
            done.stale.append(
                stale(where(revision), rule, "the gate's rows do not violate what it adds")
            )
    return done


def remove(cursor: Any, table: str, condition: str) -> dict[str, int] | None:
    """Delete ``table``'s rows (``AS child``) that meet ``condition``, and the rows that point
    at them, in one transaction; the rows deleted per table, or None when it cannot run."""
    cursor.execute("BEGIN")
    try:
        removed = cascade(cursor, table, condition, frozenset())
    except Exception:  # the driver's error: its text may hold a row's value
        cursor.execute("ROLLBACK")
        return None
    cursor.execute("COMMIT")
    return removed


def cascade(cursor: Any, table: str, condition: str, seen: frozenset[str]) -> dict[str, int]:
    removed: dict[str, int] = {}
    cursor.execute(REFERENCING, (table,))
    for child, columns, referenced in cursor.fetchall():
        if child in seen:
            continue
        pointing = (
            f"({', '.join(f'child.{column}' for column in columns)}) IN "
            f"(SELECT {', '.join(f'child.{column}' for column in referenced)} "
            f"FROM {table} AS child WHERE {condition})"
        )
        for name, n in cascade(cursor, child, pointing, seen | {table}).items():
            removed[name] = removed.get(name, 0) + n
    cursor.execute(f"DELETE FROM {table} AS child WHERE {condition}")
    removed[table] = removed.get(table, 0) + cursor.rowcount
    return removed
