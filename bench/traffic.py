"""Traffic in the running release's shape, and a watch on what it waits for.

``Probe`` reads and writes ``customer`` and ``"order"`` from connections of its
own, in a loop, and records how long each request waited. ``LockWatch`` samples
``pg_stat_activity`` and ``pg_locks`` from another connection, so that a long
wait can be laid at the statement (and the lock) that caused it. ``Report``
is a report query that reads both tables, then holds them in its transaction
until ``pg_sleep`` ends.
Everything connects to the bench's own server on localhost.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field

import psycopg

PROBE = "bench-probe"
WATCH = "bench-lock-watch"
REPORT = "bench-report"
WORKERS = 4
PAUSE_S = 0.01  # between one worker's requests: steady traffic, not a flood on 2 cores
MAX_REQUESTS = 400_000
MAX_SECONDS = 900.0
STATEMENT_TIMEOUT = "60s"  # a request stuck longer is recorded as failed, with this wait
SAMPLE_EVERY_S = 0.05
CUSTOMERS_READ = 1_000_000  # ids the probe picks from; the seeded customers are 1..N

# One request each, as the running release's handlers send them (one transaction each).
REQUESTS = (
    ("select customer", "SELECT id, email, name FROM customer WHERE id = %s"),
    ("select order", 'SELECT id, customer_id, total_cents FROM "order" WHERE id = %s'),
    ("insert order", 'INSERT INTO "order" (customer_id, total_cents) VALUES (%s, %s)'),
    ("update customer", "UPDATE customer SET name = %s WHERE id = %s"),
)


def parameters(kind: str, rng: random.Random) -> tuple[object, ...]:
    customer = rng.randint(1, CUSTOMERS_READ)
    if kind == "insert order":
        return (customer, rng.randint(0, 100_000))
    if kind == "update customer":
        return (f"Renamed {rng.randint(1, 10**9)}", customer)
    return (customer,)


@dataclass(frozen=True)
class Request:
    kind: str
    started: float  # time.perf_counter()
    waited: float
    failed: str = ""  # SQLSTATE of an error, "" when it succeeded

    @property
    def ended(self) -> float:
        return self.started + self.waited


@dataclass
class Probe:
    """``WORKERS`` threads, one connection each, cycling through ``REQUESTS``."""

    url: str
    requests: list[Request] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __enter__(self) -> Probe:
        connected = threading.Barrier(WORKERS + 1)
        for number in range(WORKERS):
            thread = threading.Thread(target=self.work, args=(number, connected), daemon=True)
            thread.start()
            self.threads.append(thread)
        connected.wait(timeout=60)
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def work(self, number: int, connected: threading.Barrier) -> None:
        rng = random.Random(number)
        deadline = time.monotonic() + MAX_SECONDS
        try:
            with psycopg.connect(
                self.url,
                autocommit=True,
                application_name=PROBE,
                prepare_threshold=None,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT}",
            ) as connection:
                connected.wait(timeout=60)
                turn = number
                while (
                    not self.stopping.is_set()
                    and len(self.requests) < MAX_REQUESTS
                    and time.monotonic() < deadline
                ):
                    kind, sql = REQUESTS[turn % len(REQUESTS)]
                    turn += 1
                    self.requests.append(self.send(connection, kind, sql, rng))
                    self.stopping.wait(PAUSE_S)
        except (psycopg.Error, threading.BrokenBarrierError) as error:
            self.errors.append(f"probe worker {number}: {type(error).__name__}: {error}")

    @staticmethod
    def send(connection: psycopg.Connection, kind: str, sql: str, rng: random.Random) -> Request:
        started = time.perf_counter()
        try:
            cursor = connection.execute(sql, parameters(kind, rng))
            if cursor.description is not None:
                cursor.fetchall()
        except psycopg.DatabaseError as error:  # a timeout (57014) included
            return Request(kind, started, time.perf_counter() - started, error.sqlstate or "?")
        return Request(kind, started, time.perf_counter() - started)

    def during(self, start: float, end: float) -> list[Request]:
        """The requests that were waiting at some moment between ``start`` and ``end``."""
        return [r for r in list(self.requests) if r.ended >= start and r.started <= end]


def summary(requests: list[Request]) -> dict[str, object]:
    """Longest wait, its request, the 99th percentile and the failures of ``requests``."""
    if not requests:
        return {"requests": 0, "longest_s": 0.0}
    waits = sorted(r.waited for r in requests)
    longest = max(requests, key=lambda r: r.waited)
    failed: dict[str, int] = {}
    for request in requests:
        if request.failed:
            failed[request.failed] = failed.get(request.failed, 0) + 1
    return {
        "requests": len(requests),
        "longest_s": round(longest.waited, 3),
        "longest_request": longest.kind,
        "p99_s": round(waits[int(0.99 * (len(waits) - 1))], 4),
        "median_s": round(waits[len(waits) // 2], 4),
        "failed_by_sqlstate": failed,
    }


SESSIONS = """
SELECT a.pid, coalesce(nullif(a.application_name, ''), a.backend_type), a.state,
       a.wait_event_type,
       extract(epoch FROM clock_timestamp() - a.query_start)::float8, a.query_start,
       left(a.query, 2000), pg_blocking_pids(a.pid),
       ARRAY(SELECT l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END
                    || ' on ' || c.relname
             FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE l.pid = a.pid AND c.relname IN ('customer', 'order')
             ORDER BY 1)
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
"""
# The statement inside a DO block (or a plain one), for a short name of the step.
DDL = re.compile(
    r"\b((?:CREATE|DROP|ALTER|REINDEX|VACUUM|ANALYZE|UPDATE|INSERT|DELETE)\b[^;]*)", re.I
)


def statement_name(query: str) -> str:
    found = DDL.findall(query)
    text = found[-1] if "DO $$" in query and found else (found[0] if found else query)
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def describe(session: tuple | None, pid: int) -> str:
    if session is None:
        return f"pid {pid} (gone)"
    _, app, state, _, _, _, query, _, locks = session
    held = f" holding {', '.join(locks)}" if locks else ""
    return f"{app} ({state}{held}): {statement_name(query or '')}"


@dataclass
class Step:
    """One statement of another session (the deploy's), as the samples saw it."""

    pid: int
    statement: str
    first_seen: float
    active_s: float = 0.0
    waited_on_lock: bool = False
    locks: set[str] = field(default_factory=set)
    waited_for: set[str] = field(default_factory=set)  # the sessions its lock request waited for
    # The longest a probe request had waited when seen queued behind this session while it
    # ran this statement (the lock may come from an earlier statement of its transaction).
    probe_queued_s: float = 0.0

    def as_json(self, since: float) -> dict[str, object]:
        return {
            "statement": self.statement,
            "seen_at_s": round(self.first_seen - since, 2),  # since the deploy began
            "active_s_at_least": round(self.active_s, 2),
            "waited_for_a_lock": self.waited_on_lock,
            "locks_on_the_tables": sorted(self.locks),
            "waited_for": sorted(self.waited_for),
            "probe_request_queued_behind_it_s": round(self.probe_queued_s, 2),
        }


@dataclass
class LockWatch:
    """Samples the database's sessions every ``SAMPLE_EVERY_S`` from a connection of its own."""

    url: str
    steps: dict[tuple[int, object, str], Step] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)

    def __enter__(self) -> LockWatch:
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=60)

    def watch(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, application_name=WATCH) as connection:
                while not self.stopping.is_set():
                    self.sample(connection.execute(SESSIONS).fetchall())
                    self.stopping.wait(SAMPLE_EVERY_S)
        except psycopg.Error as error:
            self.errors.append(f"lock watch: {type(error).__name__}: {error}")

    def sample(self, sessions: list[tuple]) -> None:
        now = time.perf_counter()
        by_pid = {session[0]: session for session in sessions}
        current: dict[int, Step] = {}
        for pid, app, state, wait_type, elapsed, query_start, query, blockers, locks in sessions:
            if app in (PROBE, REPORT, "parallel worker") or state != "active" or not query:
                continue
            key = (pid, query_start, query)
            step = self.steps.get(key)
            if step is None:
                step = self.steps[key] = Step(pid, statement_name(query), now)
            step.active_s = max(step.active_s, elapsed or 0.0)
            step.waited_on_lock |= wait_type == "Lock"
            step.locks.update(locks)
            step.waited_for.update(describe(by_pid.get(blocker), blocker) for blocker in blockers)
            current[pid] = step
        for _, app, state, _, elapsed, _, _, blockers, _ in sessions:
            if app != PROBE or state != "active":
                continue
            for blocker in blockers:
                if blocker in current:
                    step = current[blocker]
                    step.probe_queued_s = max(step.probe_queued_s, elapsed or 0.0)

    def report(self, since: float) -> list[dict[str, object]]:
        """The statements seen, in order; times in seconds since ``since`` (perf_counter)."""
        ordered = sorted(self.steps.values(), key=lambda step: step.first_seen)
        return [step.as_json(since) for step in ordered]


MIGRATION_LOCK_TAKEN = (
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted)"
)
MIGRATION_LOCK_PATIENCE_S = 300.0


@dataclass
class Report:
    """A report: reads both tables, then holds them in the same transaction until ``seconds``
    after a session takes an advisory lock (``db-deploy``'s migration lock), so that the
    deploy's first statement meets the report however long the deploy takes to start."""

    url: str
    seconds: float
    reading_done: threading.Event = field(default_factory=threading.Event)
    held: tuple[float, ...] = ()  # reads done, sleep began, committed (perf_counter)
    errors: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def __enter__(self) -> Report:
        self.thread = threading.Thread(target=self.hold, daemon=True)
        self.thread.start()
        if not self.reading_done.wait(timeout=120):
            self.errors.append("the report's reads did not finish in 120 s")
        return self

    def __exit__(self, *_: object) -> None:
        if self.thread is not None:
            self.thread.join(timeout=self.seconds + 60)

    def hold(self) -> None:
        try:
            with psycopg.connect(self.url, application_name=REPORT) as connection:
                connection.execute("SELECT count(*) FROM customer").fetchone()
                connection.execute('SELECT sum(total_cents) FROM "order"').fetchone()
                began = time.perf_counter()
                self.reading_done.set()
                patience = began + MIGRATION_LOCK_PATIENCE_S
                while not connection.execute(MIGRATION_LOCK_TAKEN).fetchone()[0]:  # type: ignore[index]
                    if time.perf_counter() > patience:
                        self.errors.append("no migration lock was taken: the report did not wait")
                        break
                    time.sleep(0.02)
                sleeping = time.perf_counter()
                connection.execute("SELECT pg_sleep(%s)", (self.seconds,)).fetchone()
                connection.commit()
                self.held = (began, sleeping, time.perf_counter())
        except psycopg.Error as error:
            self.errors.append(f"report: {type(error).__name__}: {error}")
            self.reading_done.set()
