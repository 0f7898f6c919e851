"""Who a migration waits for: a watcher on its own connection, and the lock timeout it explains.

Template-owned. While a migration runs, a thread polls ``pg_stat_activity`` for
the migration's backend (a cheap read); when that backend waits for a lock, it
reads ``pg_locks`` and ``pg_blocking_pids()`` to learn what it waits for and
which sessions hold it. A wait that lasts (a concurrent index build waiting
for an old snapshot, say) is logged, and logged again while it lasts; the last
wait seen names the holder when a statement's ``lock_timeout`` runs out.

Sessions are described by their kind and age, never by their query text.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("alembic.env")

# Polls come a fifth of a lock timeout apart (so a timed-out wait is seen), within these;
# the first comes after half a lock timeout, so that a short run opens no connection.
POLL_SECONDS = (0.01, 0.1)
START_AFTER_SECONDS = 0.25
LOG_AFTER_SECONDS = 1.0
LOG_EVERY_SECONDS = 10.0
LOCK_NOT_AVAILABLE = "55P03"

WAITING = text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid")
# What the backend waits for; a concurrent index build waiting for older
# transactions waits on their virtual transaction ids, and names its table in
# pg_stat_progress_create_index.
AWAITED = text(
    "SELECT coalesce(l.relation, p.relid)::regclass::text, l.mode, p.command || ', ' || p.phase "
    "FROM pg_locks l LEFT JOIN pg_stat_progress_create_index p ON p.pid = l.pid "
    "WHERE l.pid = :pid AND NOT l.granted LIMIT 1"
)
HOLDERS = text(
    "SELECT pid, backend_type, state, application_name, usename, "
    "extract(epoch FROM now() - state_change), extract(epoch FROM now() - query_start) "
    "FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid)) ORDER BY pid"
)


def describe_session(
    pid: int,
    backend_type: str | None,
    state: str | None,
    application: str | None,
    role: str | None,
    in_state: float | None,
    in_query: float | None,
) -> str:
    """``pid 42 (idle in transaction for 31 s, application psql)``: its kind, never its query."""
    if backend_type and backend_type != "client backend":
        kind = backend_type
    elif state is None:
        kind = f"a session of role {role} whose state this role cannot see"
    elif state == "active":
        kind = f"an active query for {in_query or 0:.0f} s"
    elif state.startswith("idle in transaction"):
        aborted = " (aborted)" if "aborted" in state else ""
        kind = f"idle in transaction{aborted} for {in_state or 0:.0f} s"
    else:
        kind = state
    return f"pid {pid} ({kind}{f', application {application}' if application else ''})"


@dataclass(frozen=True)
class Wait:
    """A lock the migration waited for, and the sessions in its way."""

    relation: str | None
    mode: str
    building: str | None  # e.g. "CREATE INDEX CONCURRENTLY, waiting for old snapshots"
    holders: tuple[str, ...]

    @property
    def what(self) -> str:
        where = f"table {self.relation}" if self.relation else "a lock"
        return f"{where} ({self.building or self.mode})"

    @property
    def held_by(self) -> str:
        return ", ".join(self.holders) if self.holders else "a session that has since ended"

    def describe(self) -> str:
        return f"{self.what}, held by {self.held_by}"


class LockTimeout(CommandError):
    """A statement's ``lock_timeout`` ran out; ``wait`` is what held it, when the watcher saw."""

    def __init__(self, reason: str, wait: Wait | None) -> None:
        held = f" on {wait.describe()}" if wait else ""
        super().__init__(
            f"rolled back: {reason}{held}; db-deploy retries such a step for up to "
            "MIGRATION_LOCK_RETRY_BUDGET"
        )
        self.wait = wait


def is_lock_timeout(error: DBAPIError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code == LOCK_NOT_AVAILABLE


class LockWatcher:
    """Watch ``pid`` from a connection of ``engine``'s own, in a thread, until the block ends."""

    def __init__(self, engine: Engine, pid: int, lock_timeout: float) -> None:
        self.engine = engine
        self.pid = pid
        fastest, slowest = POLL_SECONDS
        self.poll = min(max(lock_timeout / 5, fastest), slowest)
        self.start_after = min(lock_timeout / 2, START_AFTER_SECONDS) or START_AFTER_SECONDS
        self.last_wait: Wait | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-watcher", daemon=True)

    def __enter__(self) -> LockWatcher:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        if self._stop.wait(self.start_after):
            return
        try:
            with self.engine.connect() as connection:
                # autocommit: each poll sees fresh statistics, and holds no snapshot
                # that a concurrent index build would wait for
                watching = connection.execution_options(isolation_level="AUTOCOMMIT")
                watching.execute(text("SET statement_timeout = '5s'"))
                self._poll(watching)
        except DBAPIError as error:
            log.debug("Lock watcher stopped: %s", type(error.orig).__name__)

    def _poll(self, connection: Connection) -> None:
        started: float | None = None
        logged_at = 0.0
        while not self._stop.wait(self.poll):
            if not connection.execute(WAITING, {"pid": self.pid}).scalar():
                started, logged_at = None, 0.0
                continue
            now = time.monotonic()
            started = started or now
            wait = self._read_wait(connection)
            if wait is None:
                continue
            self.last_wait = wait
            waited = now - started
            if waited >= LOG_AFTER_SECONDS and now - logged_at >= LOG_EVERY_SECONDS:
                logged_at = now
                log.info("Waiting %.0f s for %s", waited, wait.describe())

    def _read_wait(self, connection: Connection) -> Wait | None:
        awaited = connection.execute(AWAITED, {"pid": self.pid}).first()
        if awaited is None:
            return None
        relation, mode, building = awaited
        holders = connection.execute(HOLDERS, {"pid": self.pid}).all()
        described = tuple(describe_session(*row) for row in holders)
        return Wait(relation, mode, building, described)
