"""Autogenerate writes the low-lock form of each change to a table that already exists.

The story of the issue: ``Customer`` and ``Order`` are in production; one
ordinary feature change makes ``email`` unique, gives ``order.customer_id`` a
foreign key and an index, adds a named CHECK, makes ``name`` NOT NULL and drops
an index. The revision autogenerate writes for it passes squawk with no
finding and no acceptance, runs through the whole gate on rows (with the data
steps the gate's rows need), and reruns to success after a failure at each of
its steps. The database is read from connections of the tests' own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from .support import (
    Project,
    alembic_ok,
    assert_gate_passes,
    git,
    one_failure_line,
    output,
)
from .test_lint_migrations import lint

BEFORE = """\
from sqlmodel import Field, SQLModel


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=200)
    name: str | None = Field(default=None, max_length=100, index=True)


class Order(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = None
    total_cents: int = 0
"""
FEATURE = """\
from sqlmodel import CheckConstraint, Field, SQLModel


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=200, unique=True)
    name: str = Field(max_length=100)


class Order(SQLModel, table=True):
    __table_args__ = (CheckConstraint("total_cents >= 0", name="total_cents_not_negative"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    total_cents: int = 0
"""
# What the rows of production need before the feature's constraints hold; the gate's
# rows need the same. One statement each, in the revision's transaction.
DATA_STEPS = [
    "UPDATE customer SET name = '' WHERE name IS NULL",
    "UPDATE customer SET email = email || '#' || id WHERE id NOT IN "
    "(SELECT min(id) FROM customer GROUP BY email)",
    'UPDATE "order" SET customer_id = NULL WHERE customer_id NOT IN (SELECT id FROM customer)',
    'UPDATE "order" SET total_cents = 0 WHERE total_cents < 0',
]
VIOLATORS = """
INSERT INTO customer (email, name) VALUES
    ('ada@example.com', 'Ada'), ('dup-4f1c@example.com', NULL), ('dup-4f1c@example.com', 'Bo');
INSERT INTO "order" (customer_id, total_cents) VALUES (1, 100), (99, 5), (2, -7);
"""


def sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def autogenerate(project: Project, message: str) -> Path:
    """``alembic revision --autogenerate -m MESSAGE``; the file it wrote (names sort by minute,
    then by random id, so the newest is the one that was not there)."""
    before = set(project.revision_files())
    alembic_ok(project, "revision", "--autogenerate", "-m", message)
    [written] = set(project.revision_files()) - before
    return written


def start_in_production(project: Project) -> Path:
    """The tables as production has them: their revision, applied and committed."""
    project.write_model("shop", BEFORE)
    first = autogenerate(project, "customers and orders")
    alembic_ok(project, "upgrade", "head")
    git(project.root, "init", "--quiet")
    git(project.root, "add", "--all")
    git(project.root, "commit", "--quiet", "-m", "in production")
    return first


def feature_revision(project: Project) -> Path:
    project.write_model("shop", FEATURE)
    return autogenerate(project, "the feature")


def upgrade_body(source: str) -> str:
    return source.split("def upgrade()", 1)[1].split("def downgrade()", 1)[0]


def test_new_tables_keep_the_plain_form_in_one_transaction(
    project: Project, database_url: str
) -> None:
    source = start_in_production(project).read_text()
    assert "op.create_table('customer'" in source
    assert "ix_customer_name" in source
    assert "autocommit_block" not in source and "concurrently" not in source


def test_the_feature_change_is_written_in_its_low_lock_form(
    project: Project, database_url: str
) -> None:
    start_in_production(project)
    upgrade = upgrade_body(feature_revision(project).read_text())
    assert "with op.get_context().autocommit_block():" in upgrade
    written = " ".join(upgrade.split())
    for step in [
        # NOT NULL: a CHECK added NOT VALID, validated, then SET NOT NULL and the CHECK dropped
        "ADD CONSTRAINT ck_customer_name_not_null CHECK (name IS NOT NULL) NOT VALID;",
        "ALTER TABLE customer VALIDATE CONSTRAINT ck_customer_name_not_null;",
        "ALTER TABLE customer ALTER COLUMN name SET NOT NULL; "
        "ALTER TABLE customer DROP CONSTRAINT IF EXISTS ck_customer_name_not_null;",
        # a dropped index
        "op.drop_index(op.f('ix_customer_name'), table_name='customer', "
        "postgresql_concurrently=True, if_exists=True)",
        # unique: a unique index built concurrently, after an invalid leftover is dropped
        "to_regclass('uq_customer_email') AND NOT indisvalid) THEN DROP INDEX uq_customer_email;",
        "op.create_index('uq_customer_email', 'customer', ['email'], unique=True, "
        "postgresql_concurrently=True, if_not_exists=True)",
        "ADD CONSTRAINT uq_customer_email UNIQUE USING INDEX uq_customer_email;",
        # an index
        "op.create_index(op.f('ix_order_customer_id'), 'order', ['customer_id'], unique=False, "
        "postgresql_concurrently=True, if_not_exists=True)",
        # a foreign key and the CHECK the model declares by name: NOT VALID, then validated
        'ALTER TABLE "order" ADD CONSTRAINT fk_order_customer_id_customer FOREIGN '
        "KEY(customer_id) REFERENCES customer (id) NOT VALID;",
        'ALTER TABLE "order" VALIDATE CONSTRAINT fk_order_customer_id_customer;',
        'ALTER TABLE "order" ADD CONSTRAINT ck_order_total_cents_not_negative CHECK '
        "(total_cents >= 0) NOT VALID;",
        'ALTER TABLE "order" VALIDATE CONSTRAINT ck_order_total_cents_not_negative;',
    ]:
        assert step in written, f"{step}\nnot in:\n{upgrade}"
    for plain in ("create_unique_constraint", "create_foreign_key", "nullable=False"):
        assert plain not in upgrade, upgrade

    linted = lint(project, "--all")
    assert linted.returncode == 0, output(linted)
    assert "hazard" not in linted.stdout and "accepted" not in linted.stdout, linted.stdout


def test_the_feature_revision_passes_the_gate_on_rows_with_its_data_steps(
    project: Project, database_url: str
) -> None:
    start_in_production(project)
    path = feature_revision(project)
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    gate_on_rows = project.run(
        str(project.bin / "pytest"), "-q", "-p", "no:cacheprovider", TEST_DATABASE_URL=server
    )
    failure = one_line_with(output(gate_on_rows), "failed on the gate's rows")
    assert gate_on_rows.returncode != 0 and "ck_customer_name_not_null" in failure, failure

    data_steps = "".join(f"    op.execute({step!r})\n" for step in DATA_STEPS)
    source = path.read_text()
    path.write_text(
        source.replace(
            "    with op.get_context().autocommit_block():",
            data_steps + "    with op.get_context().autocommit_block():",
            1,
        )
    )
    assert_gate_passes(project, database_url)
    alembic_ok(project, "upgrade", "head")
    assert "No new upgrade operations detected" in alembic_ok(project, "check")


def one_line_with(text: str, fragment: str) -> str:
    lines = [line for line in text.splitlines() if fragment in line]
    assert lines, text
    return lines[0]


def test_a_failure_at_each_step_reruns_to_success_once_the_data_is_fixed(
    project: Project, database_url: str
) -> None:
    """Each rerun passes over the steps that finished and fails at the next violation."""
    start_in_production(project)
    sql(database_url, VIOLATORS)
    feature_revision(project)
    fixes = [
        ("ck_customer_name_not_null", "UPDATE customer SET name = 'Dee' WHERE name IS NULL"),
        ("uq_customer_email", "UPDATE customer SET email = 'dee@example.com' WHERE id = 2"),
        ("fk_order_customer_id_customer", 'DELETE FROM "order" WHERE customer_id = 99'),
        ("ck_order_total_cents_not_negative", 'UPDATE "order" SET total_cents = 7 WHERE id = 3'),
    ]
    for constraint, fix in fixes:
        failed = project.alembic("upgrade", "head")
        one_failure_line(failed, constraint)
        assert "dup-4f1c" not in output(failed), "a row value is never printed"
        sql(database_url, fix)
    alembic_ok(project, "upgrade", "head")

    state = sql(
        database_url,
        "SELECT conname, convalidated FROM pg_constraint "
        "WHERE conrelid IN ('customer'::regclass, '\"order\"'::regclass) ORDER BY 1",
    )
    assert state == [
        ("ck_order_total_cents_not_negative", True),
        ("fk_order_customer_id_customer", True),
        ("pk_customer", True),
        ("pk_order", True),
        ("uq_customer_email", True),
    ]
    assert sql(database_url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    not_null = "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'customer'::regclass"
    assert sql(database_url, f"{not_null} AND attname = 'name'") == [(True,)]
    assert "No new upgrade operations detected" in alembic_ok(project, "check")
    # and once more, at head, from a database where every step is done
    alembic_ok(project, "downgrade", "-1")
    alembic_ok(project, "upgrade", "head")


def test_what_no_form_makes_safe_fails_in_one_line_and_writes_no_file(
    project: Project, database_url: str
) -> None:
    start_in_production(project)
    before = project.revision_files()
    for column, fragments in [
        ("nickname: str = Field(max_length=40)", ("customer.nickname", "NOT NULL", "server")),
        (
            'token: str | None = Field(default=None, sa_column_kwargs={"server_default": '
            'sa.text("gen_random_uuid()::text")})',
            ("customer.token", "gen_random_uuid", "rewrites"),
        ),
    ]:
        source = "import sqlalchemy as sa\n" + BEFORE.replace(
            "    name: str | None", f"    {column}\n    name: str | None"
        )
        project.write_model("shop", source)
        failed = project.alembic("revision", "--autogenerate", "-m", "unsafe")
        one_failure_line(failed, *fragments)
        assert project.revision_files() == before


def test_safe_migrations_false_keeps_the_plain_forms(project: Project, database_url: str) -> None:
    start_in_production(project)
    hooks = project.backend / "migrations" / "env_hooks.py"
    hooks.write_text(hooks.read_text() + "\nSAFE_MIGRATIONS = False\n")
    upgrade = upgrade_body(feature_revision(project).read_text())
    assert "autocommit_block" not in upgrade and "concurrently" not in upgrade
    assert "op.create_unique_constraint(op.f('uq_customer_email')" in upgrade
    assert "op.create_check_constraint(op.f('ck_order_total_cents_not_negative')" in upgrade


PARTIAL = """\
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Coupon(SQLModel, table=True):
    __table_args__ = (
        sa.Index("ix_coupon_code_live", "code", unique=True, postgresql_where=sa.text("{where}")),
        sa.CheckConstraint("{check}", name="code_short"),
    )
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40)
    deleted_at: datetime | None = None
"""


def test_a_changed_check_or_index_predicate_reaches_the_revision(
    project: Project, database_url: str
) -> None:
    """Alembic compares neither an index's predicate nor a CHECK's body (the gate's
    model-match check fails on both until they are written: tests/test_model_match.py)."""
    project.write_model("coupon", PARTIAL.format(where="deleted_at IS NULL", check="true"))
    alembic_ok(project, "revision", "--autogenerate", "-m", "coupons")
    alembic_ok(project, "upgrade", "head")
    project.write_model(
        "coupon",
        PARTIAL.format(where="deleted_at IS NULL AND code <> ''", check="length(code) < 20"),
    )
    live = autogenerate(project, "coupons that are live")
    upgrade = " ".join(upgrade_body(live.read_text()).split())
    assert """postgresql_where=sa.text("deleted_at IS NULL AND code <> ''")""" in upgrade
    assert "CHECK (length(code) < 20) NOT VALID" in upgrade
    alembic_ok(project, "upgrade", "head")
    assert "No new upgrade operations detected" in alembic_ok(project, "check")
    [[definition]] = sql(database_url, "SELECT pg_get_indexdef('ix_coupon_code_live'::regclass)")
    assert re.search(r"WHERE .*code.*<> ''", definition), definition


def test_a_new_enum_label_is_added_in_place(project: Project, database_url: str) -> None:
    model = """\
import enum

from sqlmodel import Field, SQLModel


class Status(enum.Enum):
{labels}


class Ticket(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    status: Status = Status.open
"""
    project.write_model("ticket", model.format(labels='    open = "open"\n    done = "done"'))
    alembic_ok(project, "revision", "--autogenerate", "-m", "tickets")
    alembic_ok(project, "upgrade", "head")
    labels = '    open = "open"\n    waiting = "waiting"\n    done = "done"'
    project.write_model("ticket", model.format(labels=labels))
    upgrade = upgrade_body(autogenerate(project, "waiting").read_text())
    assert "ALTER TYPE public.status ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'done'" in upgrade
    assert "sync_enum_values" not in upgrade, "no rewrite of the columns that use the type"
    alembic_ok(project, "upgrade", "head")
    [[labels_found]] = sql(database_url, "SELECT enum_range(NULL::status)::text")
    assert labels_found == "{open,waiting,done}"
    assert "No new upgrade operations detected" in alembic_ok(project, "check")
    offline = alembic_ok(project, "upgrade", "head", "--sql")
    assert "COMMIT;" in offline
