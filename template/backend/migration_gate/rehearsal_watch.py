"""What a revision does while it runs on a copy of production (template-owned; ``rehearsal.py``).

- ``Watch`` times each statement the migration's connection runs (SQLAlchemy's
  cursor events, in the thread that runs the migration: env.py's lock watcher
  has a connection of the same engine, in a thread of its own), and knows which
  ran in an ``autocommit_block()``. Such a statement that can run in a
  transaction runs in one of its own, as the gate measures it (``trace.py``):
  the locks it holds at its end are read before the commit, exactly, however
  short (an ``ADD CONSTRAINT ... NOT VALID`` holds ACCESS EXCLUSIVE for a few
  milliseconds). For the others (``CONCURRENTLY``) a thread on
  a second connection samples that backend's locks in ``pg_locks`` every
  ``SAMPLE_SECONDS``: a lock counts for the statement that runs (or ran last)
  when it is sampled, held from its first sample to its last, plus one interval. So
  a duration is exact to within one interval, and a lock held for less than one
  interval between two samples may be missed. (A lock taken inside the
  revision's transaction is held to its commit: missed only when that is quick.)
- ``Traffic`` is the running release: ``release_traffic.py`` in a process of
  its own, on the base ref's models, selecting and inserting on the tables the
  revision touches for as long as it runs; it reports the longest a statement
  of it took.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from .project import PACKAGE
from .running_release import ROWS, ReleaseUnavailable, export_package
from .trace import IDLE, OWN_TRANSACTION, STEP, side

SAMPLE_SECONDS = 0.01
TRAFFIC = Path(__file__).with_name("release_traffic.py")
HELD = """
SELECT c.oid::regclass::text, l.mode
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = %s AND l.granted AND l.locktype = 'relation' AND c.relkind IN ('r', 'p')
  AND l.mode <> 'AccessShareLock' AND c.relname <> 'alembic_version'
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""
HELD_HERE = HELD.replace("%s", "pg_backend_pid()")
# Statements of Alembic and env.py themselves, not of the revision.
NOT_A_STEP = re.compile(r"^\s*(SELECT|SHOW)\b|alembic_version", re.IGNORECASE)
LITERAL = re.compile(r"'(?:[^']|'')*'")
GUARDED = re.compile(r"\b(ALTER|CREATE|DROP|UPDATE|DELETE|INSERT)\b.*?(?=;|\bEND\b)", re.IGNORECASE)


def label(statement: str) -> str:
    """A statement as the report names it: one line, string literals elided, a guarded
    ``DO`` block by what it guards."""
    text = LITERAL.sub("'…'", " ".join(statement.split()))
    if text[:3].upper() == "DO ":
        guarded = GUARDED.search(text[3:])
        text = f"DO (guarded) {guarded.group(0).strip()}" if guarded else "DO block"
    return text if len(text) <= 100 else text[:99] + "…"


@dataclass
class Step:
    """One statement of the revision: how long it ran, and the locks first seen during it."""

    statement: str
    autocommit: bool
    started: float
    ended: float | None = None
    locks: dict[tuple[str, str], float] = field(default_factory=dict)  # (table, mode) -> s
    exact: bool = False  # in a transaction of its own: its locks read at its end, not sampled

    @property
    def seconds(self) -> float:
        return (self.ended or self.started) - self.started


class Watch:
    """The migration engine's statements, timed, and its backend's locks, sampled."""

    def __init__(self, engine: Engine, monitor: Any) -> None:
        self.monitor = monitor  # a DBAPI connection in autocommit, used by the sampler only
        self.pid: int | None = None
        self.steps: list[Step] = []
        self._migrating: threading.Thread | None = None  # the thread that runs the revision
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        event.listen(engine, "checkout", self._checked_out)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "handle_error", self._failed)

    def _checked_out(self, dbapi_connection: Any, record: Any, _: Any) -> None:
        """The migration's backend: the connection env.py takes while a revision is watched."""
        if not self._watching():
            return
        if "backend_pid" not in record.info:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            record.info["backend_pid"] = cursor.fetchone()[0]
            cursor.close()
            dbapi_connection.rollback()
        self.pid = record.info["backend_pid"]

    def _watching(self) -> bool:
        return threading.current_thread() is self._migrating and not self._stop.is_set()

    def _before(self, _: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self._watching() or NOT_A_STEP.search(statement):
            return
        dbapi = cursor.connection
        autocommit = bool(getattr(dbapi, "autocommit", False))
        exact = (
            autocommit
            and STEP.match(statement) is not None
            and not OWN_TRANSACTION.search(statement)
            and dbapi.info.transaction_status == IDLE
        )
        if exact:
            side(dbapi, "BEGIN")
        self.steps.append(Step(label(statement), autocommit, time.perf_counter(), exact=exact))

    def _after(self, _: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self._watching() or NOT_A_STEP.search(statement) or not self.steps:
            return
        step = self.steps[-1]
        step.ended = time.perf_counter()
        if step.exact:
            held = side(cursor.connection, HELD_HERE)
            side(cursor.connection, "COMMIT")
            step.locks = {(table, mode): step.seconds for table, mode in held}

    def _failed(self, context: Any) -> None:
        """A statement run in a transaction of its own failed: end that transaction."""
        step = self.steps[-1] if self.steps else None
        if self._watching() and step and step.exact and step.ended is None and context.cursor:
            side(context.cursor.connection, "ROLLBACK")
            step.ended = time.perf_counter()

    def start(self) -> None:
        self.steps, self.pid = [], None
        self._migrating = threading.current_thread()
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def finish(self) -> list[Step]:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None
        return self.steps

    def _sample(self) -> None:
        cursor = self.monitor.cursor()
        seen: dict[tuple[str, str], list[Any]] = {}  # -> [first, last, step]
        while not self._stop.is_set():
            now = time.perf_counter()
            held: set[tuple[str, str]] = set()
            if self.pid is not None:
                cursor.execute(HELD, (self.pid,))
                held = {(table, mode) for table, mode in cursor.fetchall()}
            step = self.steps[-1] if self.steps else None
            for key in held:
                if key in seen and seen[key][2] is not step:  # held on into the next step
                    self._record(key, *seen.pop(key))
                if key in seen:
                    seen[key][1] = now
                else:
                    seen[key] = [now, now, step]
            for key in [key for key in seen if key not in held]:
                self._record(key, *seen.pop(key))
            self._stop.wait(SAMPLE_SECONDS)
        for key, (first, last, step) in seen.items():
            self._record(key, first, last, step)
        cursor.close()

    @staticmethod
    def _record(key: tuple[str, str], first: float, last: float, step: Step | None) -> None:
        if step is not None and not step.exact:
            step.locks[key] = step.locks.get(key, 0.0) + (last - first) + SAMPLE_SECONDS


class Traffic:
    """The running release (the base ref's models) in a process of its own, on the copy."""

    def __init__(self, ref: str, url: str) -> None:
        self._checkout = tempfile.TemporaryDirectory(prefix="release-traffic-")
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        environment["RELEASE_PROBE_URL"] = url
        checkout = export_package(ref, Path(self._checkout.name))
        self.process = subprocess.Popen(
            [sys.executable, str(TRAFFIC), PACKAGE, str(ROWS)],
            cwd=checkout,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        self.ref = ref
        self.tables: list[str] | None = None

    def ready(self) -> list[str]:
        """The tables the running release maps, once its models are loaded."""
        if self.tables is None:
            self.tables = self._answer()["ready"]
        return self.tables

    def _answer(self) -> dict[str, Any]:
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            self._errors.seek(0)
            reason = (self._errors.read().strip().splitlines() or ["it exited"])[-1]
            raise ReleaseUnavailable(f"the models of {self.ref} could not run: {reason}")
        return json.loads(line)

    def _say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def start(self, tables: list[str]) -> None:
        self._say(json.dumps(tables))
        self._answer()  # {"started": true}

    def stop(self) -> dict[str, Any]:
        self._say("stop")
        return self._answer()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._errors.close()
        self._checkout.cleanup()
