"""Timeouts by the lock a statement takes, set on the migration connection as each one runs.

Template-owned. A statement that may take a lock which blocks reads or writes
(an ``ALTER TABLE``, a plain ``CREATE INDEX``, a backfill's ``UPDATE``) runs with
the short ``lock_timeout``: while it waits for its lock, every request to that
table queues behind it, so it gives up soon and ``db-deploy`` tries again later.

A statement that blocks no reads or writes runs with no ``lock_timeout`` and no
``statement_timeout``: a concurrent index build (or drop, or reindex) and a
``VALIDATE CONSTRAINT``, alone or in a ``DO`` block that does nothing else.
Such a build waits for every older transaction in the database to end, which
takes as long as they take; cancelling it would only leave an invalid index.

Nothing is asked of a revision's author: the statement's own text decides.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, event

CONCURRENT_INDEX = re.compile(
    r"^\s*(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\b[^;]*?)\s+CONCURRENTLY\b",
    re.IGNORECASE,
)
ALTER_TABLE = re.compile(r"\bALTER\s+TABLE\b([^;]*)", re.IGNORECASE)
VALIDATE_ONLY = re.compile(
    r"\s*(ONLY\s+)?(IF\s+EXISTS\s+)?\S+\s+VALIDATE\s+CONSTRAINT\s+\S+\s*", re.IGNORECASE
)
NO_TIMEOUTS = {"lock_timeout": "0", "statement_timeout": "0"}


def blocks_no_reads_or_writes(statement: str) -> bool:
    """A concurrent index statement, or one whose every ``ALTER TABLE`` only validates."""
    if CONCURRENT_INDEX.match(statement):
        return True
    actions = ALTER_TABLE.findall(statement)
    return bool(actions) and all(VALIDATE_ONLY.fullmatch(action) for action in actions)


def set_timeouts_by_lock(connection: Connection, timeouts: dict[str, str]) -> None:
    """Before each statement, give the session the timeouts its kind of lock calls for.

    ``timeouts`` are those for a statement that may block reads or writes. A
    ``SET`` runs only when the kind changes, so a revision's own
    ``SET LOCAL lock_timeout`` still holds for the statements after it.
    """
    applied: dict[str, dict[str, str] | None] = {"timeouts": timeouts}

    @event.listens_for(connection, "before_cursor_execute")
    def before_cursor_execute(conn: Connection, cursor: Any, statement: str, *args: object) -> None:
        wanted = NO_TIMEOUTS if blocks_no_reads_or_writes(statement) else timeouts
        if applied["timeouts"] is wanted:
            return
        setter = cursor.connection.cursor()
        try:
            setter.execute(
                "SELECT set_config('lock_timeout', %(lock_timeout)s, false), "
                "set_config('statement_timeout', %(statement_timeout)s, false)",
                wanted,
            )
        finally:
            setter.close()
        applied["timeouts"] = wanted

    @event.listens_for(connection, "rollback")
    def after_rollback(conn: Connection) -> None:
        applied["timeouts"] = None  # a SET inside the rolled-back transaction is undone
