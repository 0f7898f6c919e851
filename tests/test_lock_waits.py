"""A deploy never queues traffic behind a lock for long: timeouts by the lock a step takes.

`db-deploy` runs as the rendered project's console script against a real server,
while sessions of the test hold the tables the way a report or a forgotten
transaction does. What it did is checked from a separate psycopg connection.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

import psycopg
import pytest
from psycopg import sql

from .support import Project, alembic_ok, output, version_rows, write_revision
from .test_deploy import one_line

BASE = "5h0p00000000"
CHANGE = "5h0p5afe0001"

SHOP = """\
from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str | None = None
    email: str | None = None
    note: str | None = Field(default=None, index=True)


class Order(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = None
    total_cents: int
"""
CREATE_SHOP = """op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customer"),
    )
    op.create_index("ix_customer_note", "customer", ["note"])
    op.create_table(
        "order",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order"),
    )"""
DROP_SHOP = 'op.drop_table("order")\n    op.drop_table("customer")'

ADD_NICKNAME = 'op.add_column("customer", sa.Column("nickname", sa.String(), nullable=True))'

# The revision autogenerate writes for the feature change on existing
# tables (/work/safe-forms.md), written by hand until autogenerate writes it.
SAFE_CHANGE = """with op.get_context().autocommit_block():
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_index WHERE indexrelid = "
            "to_regclass('uq_customer_email') AND NOT indisvalid) THEN "
            "DROP INDEX uq_customer_email; END IF; END $$"
        )
        op.create_index(
            "uq_customer_email",
            "customer",
            ["email"],
            unique=True,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = "
            "'customer'::regclass AND conname = 'uq_customer_email') THEN ALTER TABLE "
            "customer ADD CONSTRAINT uq_customer_email UNIQUE USING INDEX uq_customer_email; "
            "END IF; END $$"
        )
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_index WHERE indexrelid = "
            "to_regclass('ix_order_customer_id') AND NOT indisvalid) THEN "
            "DROP INDEX ix_order_customer_id; END IF; END $$"
        )
        op.create_index(
            "ix_order_customer_id",
            "order",
            ["customer_id"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_customer_note", table_name="customer", postgresql_concurrently=True, if_exists=True
        )
        op.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = "
            "'\\"order\\"'::regclass AND conname = 'fk_order_customer_id_customer') THEN "
            "ALTER TABLE \\"order\\" ADD CONSTRAINT fk_order_customer_id_customer FOREIGN KEY "
            "(customer_id) REFERENCES customer (id) NOT VALID; END IF; END $$"
        )
        op.execute('ALTER TABLE "order" VALIDATE CONSTRAINT fk_order_customer_id_customer')
        op.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = "
            "'\\"order\\"'::regclass AND conname = 'ck_order_total_cents_nonnegative') THEN "
            "ALTER TABLE \\"order\\" ADD CONSTRAINT ck_order_total_cents_nonnegative "
            "CHECK (total_cents >= 0) NOT VALID; END IF; END $$"
        )
        op.execute('ALTER TABLE "order" VALIDATE CONSTRAINT ck_order_total_cents_nonnegative')
        op.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = "
            "'customer'::regclass AND conname = 'ck_customer_name_not_null') AND NOT "
            "(SELECT attnotnull FROM pg_attribute WHERE attrelid = 'customer'::regclass "
            "AND attname = 'name') THEN ALTER TABLE customer ADD CONSTRAINT "
            "ck_customer_name_not_null CHECK (name IS NOT NULL) NOT VALID; END IF; END $$"
        )
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_constraint WHERE conrelid = "
            "'customer'::regclass AND conname = 'ck_customer_name_not_null' AND NOT "
            "convalidated) THEN ALTER TABLE customer VALIDATE CONSTRAINT "
            "ck_customer_name_not_null; END IF; END $$"
        )
        op.execute("ALTER TABLE customer ALTER COLUMN name SET NOT NULL")
        op.execute("ALTER TABLE customer DROP CONSTRAINT IF EXISTS ck_customer_name_not_null")"""
SHOP_AFTER_SAFE_CHANGE = (
    SHOP.replace("    name: str | None = None\n", "    name: str\n")
    .replace(
        "    email: str | None = None\n",
        "    email: str | None = Field(default=None, unique=True)\n",
    )
    .replace(
        "    customer_id: int | None = None\n",
        "    customer_id: int | None = "
        'Field(default=None, foreign_key="customer.id", index=True)\n',
    )
    .replace(
        "    note: str | None = Field(default=None, index=True)\n", "    note: str | None = None\n"
    )
    .replace(
        "class Order(SQLModel, table=True):\n",
        "class Order(SQLModel, table=True):\n    __table_args__ = "
        '(CheckConstraint("total_cents >= 0", name="total_cents_nonnegative"),)\n\n',
    )
)


@pytest.fixture
def shop(project: Project, database_url: str) -> Project:
    """Customers and orders in production (with an indexed ``note``), at BASE."""
    project.write_model("shop", SHOP)
    write_revision(project, BASE, None, CREATE_SHOP, DROP_SHOP)  # type: ignore[arg-type]
    alembic_ok(project, "upgrade", "head")
    return project


class Deploy:
    """A ``db-deploy`` running in the background; its stderr is read as it comes."""

    def __init__(self, project: Project, **env: str) -> None:
        self.process = project.start(str(project.bin / "db-deploy"), **env)
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(self.process.stderr, self.lines))
        self.reader.start()
        self.writer = threading.Thread(target=self._read, args=(self.process.stdout, self.stdout))
        self.writer.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        lines.extend(stream)

    def wait_for(self, *fragments: str, timeout: float = 60) -> str:
        """The first stderr line holding every fragment; fails when the deploy ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if all(fragment in line for fragment in fragments):
                    return line
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        self.process.kill()
        pytest.fail(f"no line with {fragments}; db-deploy said:\n{''.join(self.lines)}")

    def finish(self) -> subprocess.CompletedProcess[str]:
        self.process.wait(timeout=300)
        self.reader.join(timeout=10)
        self.writer.join(timeout=10)
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, "".join(self.stdout), "".join(self.lines)
        )


@contextmanager
def holding(url: str, statement: str, isolation: str = "read committed") -> Iterator[int]:
    """A session that ran ``statement`` and sits idle in its transaction; yields its pid."""
    with psycopg.connect(url) as holder:
        holder.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        holder.execute(statement)
        yield holder.info.backend_pid
        holder.rollback()


@contextmanager
def running_report(url: str, table: str) -> Iterator[int]:
    """A long query reading ``table`` (a report), in a thread; cancelled on exit."""
    with psycopg.connect(url, autocommit=True) as report, psycopg.connect(url) as admin:
        pid = report.info.backend_pid

        def run() -> None:
            with suppress(psycopg.errors.QueryCanceled):
                report.execute(f"SELECT count(*), pg_sleep(120) FROM {table}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        while not admin.execute(
            "SELECT 1 FROM pg_locks WHERE pid = %s AND relation = %s::regclass AND granted",
            (pid, table),
        ).fetchone():
            admin.rollback()
            time.sleep(0.02)
        admin.rollback()
        yield pid
        admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
        admin.commit()
        thread.join(timeout=10)


def columns(url: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as connection:
        return dict(
            connection.execute(
                "SELECT column_name, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s",
                (table,),
            ).fetchall()
        )


def add_note_revision(project: Project) -> None:
    """A plain revision whose one statement needs ACCESS EXCLUSIVE on customer."""
    write_revision(project, CHANGE, BASE, ADD_NICKNAME, "pass")
    project.write_model(
        "shop", SHOP.replace("    note: str", "    nickname: str | None = None\n    note: str")
    )


FAST = {"MIGRATION_LOCK_TIMEOUT": "200ms"}


def test_a_step_that_times_out_on_its_lock_is_retried_until_the_holder_goes(
    shop: Project, database_url: str
) -> None:
    add_note_revision(shop)
    with holding(database_url, "SELECT count(*) FROM customer") as pid:
        deploy = Deploy(shop, MIGRATION_LOCK_RETRY_BUDGET="2min", **FAST)
        retry = deploy.wait_for("Lock timeout on table customer", "attempt 2 in")
        assert f"held by pid {pid} (idle in transaction for " in retry, retry
        assert "nickname" not in columns(database_url, "customer"), "nothing ran past the lock"
    result = deploy.finish()
    assert result.returncode == 0, output(result)
    assert "nickname" in columns(database_url, "customer")
    assert version_rows(database_url) == [CHANGE]


@pytest.mark.parametrize("holder", ["idle in transaction", "an active query"])
def test_a_holder_that_never_goes_makes_the_deploy_give_up_within_its_budget(
    shop: Project, database_url: str, holder: str
) -> None:
    add_note_revision(shop)
    if holder == "idle in transaction":
        held = holding(database_url, "SELECT count(*) FROM customer WHERE name <> 'n30n'")
    else:
        held = running_report(database_url, "customer")
    with held as pid:
        result = Deploy(shop, MIGRATION_LOCK_RETRY_BUDGET="2s", **FAST).finish()
    line = one_line(
        result,
        f"revision {CHANGE} could not take its locks: ",
        "lock timeout(s) in MIGRATION_LOCK_RETRY_BUDGET=2s, the last on table customer "
        f"(AccessExclusiveLock), held by pid {pid} ({holder} for ",
        f"production is at {BASE} (0 of 1 new revisions applied)",
    )
    attempts = int(re.search(r"(\d+) lock timeout\(s\)", line).group(1))  # type: ignore[union-attr]
    assert attempts >= 2, line
    assert "pg_sleep" not in output(result) and "SELECT count" not in output(result)
    assert version_rows(database_url) == [BASE]
    assert "nickname" not in columns(database_url, "customer")


def index_validity(url: str, name: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
        ).fetchall()


CONCURRENT_INDEX = """with op.get_context().autocommit_block():
        op.create_index(
            "ix_customer_email", "customer", ["email"], postgresql_concurrently=True,
            if_not_exists=True,
        )"""
VALIDATE_IN_A_DO_BLOCK = """with op.get_context().autocommit_block():
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_constraint WHERE conname = "
            "'ck_order_total_cents_nonnegative' AND NOT convalidated) THEN "
            "ALTER TABLE \\"order\\" VALIDATE CONSTRAINT ck_order_total_cents_nonnegative; "
            "END IF; END $$"
        )"""


@pytest.mark.parametrize("step", ["CREATE INDEX CONCURRENTLY", "VALIDATE CONSTRAINT"])
def test_a_step_that_blocks_no_reads_or_writes_waits_and_names_what_it_waits_for(
    shop: Project, database_url: str, step: str
) -> None:
    """Tiny timeouts; a build waits for an old snapshot, a VALIDATE for a lock holder."""
    project = shop
    if step == "CREATE INDEX CONCURRENTLY":
        write_revision(project, CHANGE, BASE, CONCURRENT_INDEX, "pass")
        project.write_model(
            "shop",
            SHOP.replace(
                "    email: str | None = None",
                "    email: str | None = Field(default=None, index=True)",
            ),
        )
        # a report in REPEATABLE READ keeps its snapshot while it sits idle
        held = holding(database_url, 'SELECT count(*) FROM "order"', "repeatable read")
        table = "table customer (CREATE INDEX CONCURRENTLY, waiting for old snapshots)"
    else:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(
                'ALTER TABLE "order" ADD CONSTRAINT ck_order_total_cents_nonnegative '
                "CHECK (total_cents >= 0) NOT VALID"
            )
        write_revision(project, CHANGE, BASE, VALIDATE_IN_A_DO_BLOCK, "pass")
        project.write_model(
            "shop",
            SHOP.replace(
                "class Order(SQLModel, table=True):\n",
                "class Order(SQLModel, table=True):\n    __table_args__ = "
                '(CheckConstraint("total_cents >= 0", name="total_cents_nonnegative"),)\n\n',
            ),
        )
        held = holding(database_url, 'LOCK TABLE "order" IN SHARE UPDATE EXCLUSIVE MODE')
        table = 'table "order" (ShareUpdateExclusiveLock)'
    with held as pid:
        deploy = Deploy(project, MIGRATION_LOCK_TIMEOUT="10ms", MIGRATION_STATEMENT_TIMEOUT="200ms")
        waiting = deploy.wait_for("Waiting ", table, f"held by pid {pid} (idle in transaction")
        assert deploy.process.poll() is None, "still waiting, not cancelled"
        time.sleep(0.5)  # longer than both timeouts
        assert deploy.process.poll() is None, "still waiting, not cancelled"
    result = deploy.finish()
    assert result.returncode == 0, output(result) + waiting
    assert "Lock timeout" not in result.stderr, "never cancelled, never retried"
    assert version_rows(database_url) == [CHANGE]
    with psycopg.connect(database_url) as connection:
        validated = connection.execute(
            "SELECT bool_and(convalidated) FROM pg_constraint "
            "WHERE conrelid = '\"order\"'::regclass"
        ).fetchone()
    assert validated == (True,)
    if step == "CREATE INDEX CONCURRENTLY":
        assert index_validity(database_url, "ix_customer_email") == [(True,)]


# Every DDL statement fails once with a lock timeout, the first time it runs.
# Its record must outlive the failed statement's rollback, so it is written over
# a dblink connection of its own.
TIME_OUT_EACH_STEP_ONCE = """\
CREATE EXTENSION dblink;
CREATE SCHEMA harness;
CREATE TABLE harness.timed_out_once (statement text PRIMARY KEY)"""
TIME_OUT_ONCE = """\
CREATE FUNCTION time_out_once() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT FROM dblink({dsn}, format(
      'INSERT INTO harness.timed_out_once VALUES (%L) ON CONFLICT DO NOTHING RETURNING 1',
      current_query())) AS inserted(one int)
  ) THEN
    RAISE EXCEPTION 'canceling statement due to lock timeout'
      USING ERRCODE = 'lock_not_available';
  END IF;
END $$"""


def safe_change_on_rows(project: Project, url: str, *inserts: str) -> None:
    """The safe-form revision and the models it leads to, over production rows."""
    write_revision(project, CHANGE, BASE, SAFE_CHANGE, "pass")
    project.write_model("shop", SHOP_AFTER_SAFE_CHANGE)
    with psycopg.connect(url, autocommit=True) as connection:
        for insert in inserts:
            connection.execute(insert)


def test_a_safe_form_revision_retries_to_success_after_a_lock_timeout_at_each_step(
    shop: Project, database_url: str
) -> None:
    project = shop
    safe_change_on_rows(
        project,
        database_url,
        "INSERT INTO customer (name, email) VALUES ('a', 'a@example.com'), ('b', NULL)",
        'INSERT INTO "order" (customer_id, total_cents) VALUES (1, 5)',
    )
    with psycopg.connect(database_url, autocommit=True) as connection:
        for statement in TIME_OUT_EACH_STEP_ONCE.split(";\n"):
            connection.execute(statement)
        connection.execute(sql.SQL(TIME_OUT_ONCE).format(dsn=sql.Literal(database_url)))
        connection.execute(
            "CREATE EVENT TRIGGER time_out_once ON ddl_command_start "
            "EXECUTE FUNCTION time_out_once()"
        )
    result = Deploy(
        project, MIGRATION_LOCK_TIMEOUT="10ms", MIGRATION_LOCK_RETRY_BUDGET="5min"
    ).finish()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DROP EVENT TRIGGER time_out_once")
        steps = connection.execute("SELECT count(*) FROM harness.timed_out_once").fetchone()[0]
    assert result.returncode == 0, output(result)
    retries = re.findall(r"Lock timeout on .*; attempt (\d+) in", result.stderr)
    assert len(retries) == steps == 12, (steps, output(result))
    assert version_rows(database_url) == [CHANGE]
    assert_safe_change_done(database_url)


def assert_safe_change_done(url: str) -> None:
    with psycopg.connect(url) as connection:
        constraints = connection.execute(
            "SELECT conname, convalidated FROM pg_constraint "
            "WHERE conrelid IN ('customer'::regclass, '\"order\"'::regclass) ORDER BY 1"
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
            "WHERE indrelid IN ('customer'::regclass, '\"order\"'::regclass) ORDER BY 1"
        ).fetchall()
    assert constraints == [
        ("ck_order_total_cents_nonnegative", True),
        ("fk_order_customer_id_customer", True),
        ("pk_customer", True),
        ("pk_order", True),
        ("uq_customer_email", True),
    ]
    assert indexes == [
        ("ix_order_customer_id", True),
        ("pk_customer", True),
        ("pk_order", True),
        ("uq_customer_email", True),
    ]
    assert columns(url, "customer")["name"] == "NO"


def doctor(project: Project) -> str:
    result = project.run(str(project.bin / "db-doctor"))
    assert result.returncode == 1, output(result)
    return result.stdout


def test_data_that_fails_a_step_is_fixed_then_the_deploy_is_run_again(
    shop: Project, database_url: str
) -> None:
    """Rows that break each constraint in turn: the deploy stops at that step, db-doctor
    names what is left with its command, and once the rows are fixed a rerun goes on."""
    project = shop
    safe_change_on_rows(
        project,
        database_url,
        "INSERT INTO customer (id, name, email) VALUES "
        "(1, 'a', 'same@example.com'), (2, 'b', 'same@example.com'), (3, NULL, 'c@example.com')",
        'INSERT INTO "order" (customer_id, total_cents) VALUES (1, 5), (99, 5), (2, -1)',
    )

    def deploy_fails(*expected: str) -> None:
        one_line(
            project.run(str(project.bin / "db-deploy")), f"revision {CHANGE} failed: ", *expected
        )
        assert version_rows(database_url) == [BASE]

    def fix(statement: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(statement)

    deploy_fails('could not create unique index "uq_customer_email"')
    assert "problem: index uq_customer_email on customer is invalid" in doctor(project)
    fix("UPDATE customer SET email = 'b@example.com' WHERE id = 2")

    deploy_fails('violates foreign key constraint "fk_order_customer_id_customer"')
    found = doctor(project)
    assert "is invalid" not in found, "the rerun dropped the invalid index and built it again"
    assert 'problem: constraint fk_order_customer_id_customer on "order" is NOT VALID' in found, (
        found
    )
    fix('DELETE FROM "order" WHERE customer_id = 99')

    deploy_fails('check constraint "ck_order_total_cents_nonnegative"')
    assert 'constraint ck_order_total_cents_nonnegative on "order" is NOT VALID' in doctor(project)
    fix('UPDATE "order" SET total_cents = 0 WHERE total_cents < 0')

    deploy_fails('check constraint "ck_customer_name_not_null"')
    found = doctor(project)
    assert (
        "problem: CHECK ck_customer_name_not_null on customer (NOT VALID) is a step towards "
        "a NOT NULL column that did not finish" in found
    ), found
    [command] = re.findall(r"fix: fix the rows where the column is NULL, then `([^`]+)`", found)
    fix("UPDATE customer SET name = 'c' WHERE id = 3")

    rerun = project.run(*shlex.split(command))
    assert rerun.returncode == 0, output(rerun)
    assert version_rows(database_url) == [CHANGE]
    assert_safe_change_done(database_url)
    healthy = project.run(str(project.bin / "db-doctor"))
    assert healthy.returncode == 0, output(healthy)


def test_the_doctor_names_a_not_null_check_left_after_set_not_null(
    shop: Project, database_url: str
) -> None:
    """The last step (drop the CHECK) did not run: the command the doctor prints clears it."""
    project = shop
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "ALTER TABLE customer ADD CONSTRAINT ck_customer_name_not_null CHECK (name IS NOT NULL)"
        )
        connection.execute("ALTER TABLE customer ALTER COLUMN name SET NOT NULL")
    project.write_model("shop", SHOP.replace("    name: str | None = None\n", "    name: str\n"))
    found = doctor(project)
    assert (
        "problem: CHECK ck_customer_name_not_null on customer is left over from making a "
        "column NOT NULL" in found
    ), found
    [command] = re.findall(r"or `(ALTER TABLE [^`]+)`", found)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(command)
    healthy = project.run(str(project.bin / "db-doctor"))
    assert healthy.returncode == 0, output(healthy)
