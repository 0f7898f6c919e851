"""7. Live traffic during ``db-deploy``: the revision autogenerate writes, safe against plain.

One rendered project, with ``Customer`` and ``Order`` models, migrated and seeded
(``generate_series``) with a million customers and two million orders in a
template database. Then the issue's feature change to the models: ``email``
unique, ``order.customer_id`` a foreign key with an index, a named CHECK on
``total_cents``, ``name`` NOT NULL and its index dropped. Autogenerate writes
the revision twice, in turn and timed: with the safe forms (the default) and
with ``SAFE_MIGRATIONS = False`` in ``migrations/env_hooks.py`` (Alembic's plain
forms). Each revision then runs with the real ``uv run db-deploy`` on a fresh
copy of the seeded database (``CREATE DATABASE ... TEMPLATE``) while a probe in
the running release's shape reads and writes both tables (``traffic.Probe``);
the figure is the longest wait of a probe request during the deploy. The same
again with a report query, started just before the deploy, that reads both
tables and holds them until 8 s after the deploy takes its migration lock
(``traffic.Report``: on a busy machine the deploy's start-up alone can outlast
8 s). A lock watch names the deploy's statements, the locks they took, what
they waited for and the longest a probe request was seen queued behind each.
A cProfile of one safe autogenerate says what the rewrite itself costs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from tests.support import Project

from . import traffic
from .projects import alembic, new_project, probe, run
from .timing import Figure, alternate

CUSTOMERS = traffic.CUSTOMERS_READ
ORDERS = 2 * CUSTOMERS
DEPLOY_RUNS = 2  # of each variant, taking turns
AUTOGENERATE_RUNS = 7
IDLE_S = 3.0  # the probe alone before each deploy: the no-deploy baseline
AFTER_S = 1.0
REPORT_S = 8.0
WAIT_LIMIT_S = 1.0
WAIT_LIMIT_WITH_REPORT_S = 1.5
AUTOGENERATE_GOAL = 1.05
OFF_SWITCH = "\nSAFE_MIGRATIONS = False\n"

MODELS_BEFORE = """\
from sqlmodel import Field, SQLModel


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str
    name: str | None = Field(default=None, index=True)


class Order(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = None
    total_cents: int
"""
MODELS_AFTER = """\
from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)
    name: str


class Order(SQLModel, table=True):
    __table_args__ = (CheckConstraint("total_cents >= 0", name="total_cents_non_negative"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    total_cents: int
"""
# Clean data: unique emails, every name set, every customer_id valid, no negative total.
SEED = (
    "INSERT INTO customer (email, name) SELECT 'customer' || g || '@example.com', "
    "'Customer ' || g FROM generate_series(1, %(customers)s) AS g",
    'INSERT INTO "order" (customer_id, total_cents) '
    "SELECT 1 + (g::bigint * 7919) %% %(customers)s, (g * 37) %% 100000 "
    "FROM generate_series(1, %(orders)s) AS g",
)
SCHEMA = """
SELECT (SELECT string_agg(conname || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END,
                          ', ' ORDER BY conname)
        FROM pg_constraint WHERE conrelid IN ('customer'::regclass, '"order"'::regclass)
        AND contype IN ('u', 'f', 'c')),
       (SELECT string_agg(indexrelid::regclass::text
                          || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END, ', ' ORDER BY 1)
        FROM pg_index WHERE indrelid IN ('customer'::regclass, '"order"'::regclass)),
       (SELECT attnotnull FROM pg_attribute
        WHERE attrelid = 'customer'::regclass AND attname = 'name'),
       (SELECT version_num FROM alembic_version)
"""
Log = Callable[[str], None]


def admin(server: Any, sql: str) -> None:
    with psycopg.connect(server.url(server.maintenance_db), autocommit=True) as connection:
        connection.execute(sql)


@contextmanager
def database(servers: ModuleType, server: Any, template: str | None = None) -> Iterator[str]:
    """A new database (a file copy of ``template``, if given); yields its name, then drops it."""
    name = servers.new_database_name("traffic")
    copy = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
    admin(server, f"CREATE DATABASE {name}{copy}")
    try:
        yield name
    finally:
        admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write_models(project: Project, source: str) -> None:
    (project.backend / project.package / "models" / "shop.py").write_text(source)


def autogenerate_both(
    project: Project, url: str
) -> tuple[dict[str, list[float]], dict[str, tuple[str, str]]]:
    """``alembic revision --autogenerate`` with safe and plain forms in turn; the seconds of
    each run, and each variant's revision (file name, text) from its last run."""
    hooks = project.backend / "migrations" / "env_hooks.py"
    own_hooks = hooks.read_text()
    versions = project.backend / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    written: dict[str, tuple[str, str]] = {}

    def autogenerate() -> None:
        alembic(project, "revision", "--autogenerate", "-m", "feature change", DATABASE_URL=url)

    def use(hooks_text: str) -> Callable[[], None]:
        return lambda: hooks.write_text(hooks_text)

    def keep(variant: str) -> Callable[[], None]:
        def collect() -> None:
            [new] = set(versions.glob("*.py")) - before
            written[variant] = (new.name, new.read_text())
            new.unlink()

        return collect

    try:
        samples = alternate(
            {
                "safe": (autogenerate, use(own_hooks), keep("safe")),
                "plain": (autogenerate, use(own_hooks + OFF_SWITCH), keep("plain")),
            },
            runs=AUTOGENERATE_RUNS,
            warmup=1,
        )
    finally:
        hooks.write_text(own_hooks)
    return samples, written


def profile_autogenerate(project: Project, url: str) -> object:
    """One safe autogenerate under cProfile; the revision it writes is removed."""
    versions = project.backend / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    try:
        return probe(project, "autogenerate_profile.py", "profiled", DATABASE_URL=url)
    finally:
        for written in set(versions.glob("*.py")) - before:
            written.unlink()


def install_revision(project: Project, first: Path, revision: tuple[str, str]) -> None:
    """Leave the first revision and ``revision`` in migrations/versions."""
    for path in first.parent.glob("*.py"):
        if path != first:
            path.unlink()
    name, text = revision
    (first.parent / name).write_text(text)


def schema(url: str) -> dict[str, object]:
    with psycopg.connect(url) as connection:
        constraints, indexes, name_not_null, version = connection.execute(SCHEMA).fetchone()
    return {
        "constraints": constraints or "",
        "indexes": indexes,
        "customer.name NOT NULL": name_not_null,
        "revision": version,
    }


def deploy_with_probe(
    project: Project, url: str, *, report: bool
) -> tuple[dict[str, object], list[traffic.Request], list[traffic.Request]]:
    """``uv run db-deploy`` on ``url`` under the probe (and the report query, if asked);
    what happened, the probe's requests before it, and those during it."""
    holder = traffic.Report(url, REPORT_S) if report else None
    with traffic.LockWatch(url) as watch, traffic.Probe(url) as probe:
        time.sleep(IDLE_S)
        idle_end = time.perf_counter()
        with holder or nullcontext():
            started = time.perf_counter()
            result = run(project, "uv", "run", "db-deploy", check=False, DATABASE_URL=url)
            ended = time.perf_counter()
        time.sleep(AFTER_S)
    idle = [r for r in probe.requests if r.ended <= idle_end]
    during = probe.during(started, ended)
    lines = result.stderr.strip().splitlines()
    outcome: dict[str, object] = {
        "load_average_1min": round(os.getloadavg()[0], 1),
        "exit": result.returncode,
        "last_line": lines[-1] if lines else "",
        "deploy_s": round(ended - started, 2),
        "probe_idle": traffic.summary(idle),
        "probe_during_deploy": traffic.summary(during),
        "deploy_log": [line for line in lines if "Detected sequence" not in line][-40:],
        "steps": watch.report(since=started),
        "schema_after": schema(url),
        "errors": probe.errors + watch.errors + (holder.errors if holder else []),
    }
    if holder is not None and holder.held:
        outcome["report_held_s"] = {
            name: round(moment - started, 2)
            for name, moment in zip(
                ("reads done", "pg_sleep began", "committed"), holder.held, strict=True
            )
        }
        touched = [
            step["seen_at_s"] for step in watch.report(started) if step["locks_on_the_tables"]
        ]
        if touched:  # how long the report still held the tables once the deploy reached them
            overlap = holder.held[-1] - started - min(touched)  # type: ignore[type-var]
            outcome["report_overlap_s"] = round(overlap, 2)
    return outcome, idle, during


def longest(requests: list[traffic.Request]) -> float:
    return max((r.waited for r in requests), default=0.0)


def measure_live_traffic(
    servers: ModuleType, server: Any, template: Path, workdir: Path, log: Log
) -> tuple[list[Figure], dict]:
    log("7. live traffic: render, first revision, seed")
    project = new_project(template, workdir / "live-traffic")
    write_models(project, MODELS_BEFORE)
    versions = project.backend / "migrations" / "versions"
    evidence: dict[str, object] = {"customers": CUSTOMERS, "orders": ORDERS}
    with database(servers, server) as seeded:
        seeded_url = server.url(seeded)
        alembic(project, "revision", "--autogenerate", "-m", "customers and orders",
                DATABASE_URL=seeded_url)  # fmt: skip
        [first] = versions.glob("*.py")
        alembic(project, "upgrade", "head", DATABASE_URL=seeded_url)
        began = time.perf_counter()
        with psycopg.connect(seeded_url, autocommit=True) as connection:
            for statement in SEED:
                connection.execute(statement, {"customers": CUSTOMERS, "orders": ORDERS})
            connection.execute('VACUUM ANALYZE customer, "order"')
        evidence["seed_s"] = round(time.perf_counter() - began, 1)

        log("7. live traffic: autogenerate the feature change, safe and plain, in turn")
        write_models(project, MODELS_AFTER)
        autogenerate_s, revisions = autogenerate_both(project, seeded_url)
        evidence["revisions"] = {
            variant: {"autocommit_block": "autocommit_block" in text, "file": name}
            for variant, (name, text) in revisions.items()
        }
        evidence["safe_revision"] = revisions["safe"][1]
        evidence["one_safe_autogenerate_profiled"] = profile_autogenerate(project, seeded_url)

        runs: dict[tuple[str, bool], list[dict[str, Any]]] = {}
        idle: list[float] = []
        variants = [(v, r) for r in (False, True) for v in ("plain", "safe")]
        for number in range(DEPLOY_RUNS):
            for variant, report in variants:
                held = " with an 8 s report query" if report else ""
                log(f"7. live traffic: db-deploy, {variant} revision{held}, run {number + 1}")
                install_revision(project, first, revisions[variant])
                with database(servers, server, template=seeded) as copy:
                    outcome, before, _ = deploy_with_probe(project, server.url(copy), report=report)
                idle.append(longest(before))
                runs.setdefault((variant, report), []).append(outcome)
        install_revision(project, first, revisions["safe"])
    evidence["deploys"] = {
        variant + (" + report" if report else ""): found
        for (variant, report), found in runs.items()
    }
    return figures(idle, runs, autogenerate_s), evidence


def waits(found: list[dict[str, Any]]) -> list[float]:
    return [run_["probe_during_deploy"]["longest_s"] for run_ in found]


def deploy_seconds(runs: dict[tuple[str, bool], list[dict[str, Any]]], variant: str) -> list[float]:
    return [run_["deploy_s"] for run_ in runs[variant, False]]


def failures(found: list[dict[str, Any]]) -> int:
    return sum(1 for run_ in found if run_["exit"] != 0)


def exits(found: list[dict[str, Any]]) -> str:
    return ", ".join(str(run_["exit"]) for run_ in found)


def figures(
    idle: list[float],
    runs: dict[tuple[str, bool], list[dict[str, Any]]],
    autogenerate_s: dict[str, list[float]],
) -> list[Figure]:
    size = f"{CUSTOMERS // 1_000_000}M customers, {ORDERS // 1_000_000}M orders"
    alone = Figure("7.1", f"probe's longest wait, no deploy ({IDLE_S:.0f} s before each)", idle)

    def deploy_figure(key: str, variant: str, report: bool, **more: object) -> Figure:
        found = runs[variant, report]
        what = {"safe": "safe (the default)", "plain": "plain (SAFE_MIGRATIONS=False)"}[variant]
        held = f", a report holding both tables {REPORT_S:.0f} s" if report else ""
        return Figure(
            key,
            f"probe's longest wait during db-deploy, {what} revision{held}, {size} "
            f"(exit {exits(found)})",
            waits(found),
            failures=failures(found),
            **more,  # type: ignore[arg-type]
        )

    plain = deploy_figure("7.2", "plain", False, baseline=alone)
    safe = deploy_figure("7.3", "safe", False, baseline=plain, limit=WAIT_LIMIT_S)
    plain_report = deploy_figure("7.4", "plain", True, baseline=alone)
    safe_report = deploy_figure(
        "7.5", "safe", True, baseline=plain_report, limit=WAIT_LIMIT_WITH_REPORT_S
    )
    plain_time = Figure("7.6", "db-deploy wall time, plain revision", deploy_seconds(runs, "plain"))
    safe_time = Figure(
        "7.7", "db-deploy wall time, safe revision", deploy_seconds(runs, "safe"), plain_time
    )
    plain_autogenerate = Figure(
        "7.8",
        "alembic revision --autogenerate of the change, plain forms (SAFE_MIGRATIONS=False)",
        autogenerate_s["plain"],
    )
    safe_autogenerate = Figure(
        "7.9",
        "alembic revision --autogenerate of the change, safe forms",
        autogenerate_s["safe"],
        plain_autogenerate,
        goal=AUTOGENERATE_GOAL,
    )
    return [
        alone, plain, safe, plain_report, safe_report, plain_time, safe_time,
        plain_autogenerate, safe_autogenerate,
    ]  # fmt: skip
