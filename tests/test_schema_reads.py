"""The gate's schema reads (``migration_gate/schema_state.py``) keep up with every kind of change.

A reader renders again only the relations whose catalog rows changed since its
last read, and those that depend on them. Each step below changes the schema
the way a revision can, several of them only through something another
relation depends on: a renamed column that a foreign key names, a renamed
sequence that a default calls, a renamed type, domain or function, a renamed
schema. After each step, the reader that kept its lines must read exactly
what a new reader reads from scratch. The module is loaded from the template,
as the rendered project has it, and runs on the session's server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from .support import load_gate_module

schema_state = load_gate_module("schema_state")

# Each step runs as it is written, in autocommit: a step with several statements commits
# each, as a revision in an autocommit block does.
STEPS = {
    "tables, a type, a foreign key, a default": """
        CREATE TYPE mood AS ENUM ('happy', 'sad');
        CREATE TABLE team (id serial PRIMARY KEY, name varchar(40) NOT NULL UNIQUE);
        CREATE TABLE member (
            id serial PRIMARY KEY, team_id integer REFERENCES team (id),
            feeling mood, name text DEFAULT 'new');
    """,
    "the column a foreign key names is renamed": "ALTER TABLE team RENAME COLUMN id TO team_id",
    "the table a foreign key names is renamed": "ALTER TABLE team RENAME TO squad",
    "the sequence a default calls is renamed": "ALTER SEQUENCE member_id_seq RENAME TO member_seq",
    "the type of a column is renamed": "ALTER TYPE mood RENAME TO feeling_kind",
    "an enum gets a label": "ALTER TYPE feeling_kind ADD VALUE 'curious'",
    "an index is created": "CREATE INDEX ix_member_name ON member (name)",
    "an index is dropped, and nothing else": "DROP INDEX ix_member_name",
    "a CHECK is added NOT VALID": (
        "ALTER TABLE member ADD CONSTRAINT ck_member_name CHECK (name <> '') NOT VALID"
    ),
    "the CHECK is validated": "ALTER TABLE member VALIDATE CONSTRAINT ck_member_name",
    "a foreign key is dropped, and nothing else": (
        "ALTER TABLE member DROP CONSTRAINT member_team_id_fkey"
    ),
    "a trigger is created": """
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
        CREATE TRIGGER member_touch BEFORE UPDATE ON member FOR EACH ROW EXECUTE FUNCTION touch();
    """,
    "a trigger is dropped, and nothing else": "DROP TRIGGER member_touch ON member",
    "a default is dropped": "ALTER TABLE member ALTER COLUMN name DROP DEFAULT",
    "a column changes type": "ALTER TABLE member ALTER COLUMN name TYPE varchar(20)",
    "a column changes collation": (
        'ALTER TABLE member ALTER COLUMN name TYPE varchar(20) COLLATE "C"'
    ),
    "a column of a table's row type": "CREATE TABLE holder (id integer PRIMARY KEY, item squad)",
    "the table whose row type a column has is renamed": "ALTER TABLE squad RENAME TO crew",
    "a column of a domain": """
        CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
        ALTER TABLE holder ADD COLUMN amount positive;
    """,
    "the domain of a column is renamed": "ALTER DOMAIN positive RENAME TO strictly_positive",
    "a default that calls a function": """
        CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$SELECT 'c'$$;
        ALTER TABLE holder ADD COLUMN code text DEFAULT next_code();
    """,
    "the function a default calls is renamed": "ALTER FUNCTION next_code() RENAME TO code_after",
    "a view": "CREATE VIEW crew_names AS SELECT team_id, name FROM crew",
    "a column the view reads is renamed": "ALTER TABLE crew RENAME COLUMN name TO title",
    "identity and generated columns": """
        ALTER TABLE holder ADD COLUMN serial_no bigint GENERATED ALWAYS AS IDENTITY;
        ALTER TABLE holder ADD COLUMN twice integer GENERATED ALWAYS AS (id * 2) STORED;
    """,
    "a schema and a table in it": """
        CREATE SCHEMA app;
        CREATE TABLE app.log (id serial PRIMARY KEY, crew_id integer REFERENCES crew (team_id));
    """,
    "the schema is renamed": "ALTER SCHEMA app RENAME TO audit",
    "a table moves to another schema": "ALTER TABLE member SET SCHEMA audit",
    "an extension, and a column of its type": """
        CREATE EXTENSION citext;
        ALTER TABLE audit.log ADD COLUMN note citext;
    """,
    "a concurrent unique index fails and stays INVALID": """
        ALTER TABLE crew ADD COLUMN nickname text;
        INSERT INTO crew (title, nickname) VALUES ('one', 'same'), ('two', 'same');
        CREATE UNIQUE INDEX CONCURRENTLY uq_crew_nickname ON crew (nickname);
    """,
    "the invalid index is dropped": "DROP INDEX CONCURRENTLY uq_crew_nickname",
    "a table and the one that referenced it are dropped": "DROP TABLE crew CASCADE",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


def run_step(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in filter(str.strip, sql.split(";\n")):
            try:
                connection.execute(statement)  # type: ignore[call-overload]
            except psycopg.errors.UniqueViolation:
                assert "CONCURRENTLY" in statement  # the failed build this step is about


def read_from_scratch(engine: Any) -> frozenset[str]:
    reader = schema_state.SchemaReader(engine)
    try:
        return reader.lines()
    finally:
        reader.close()


def test_a_reader_that_keeps_its_lines_reads_what_a_new_reader_reads(
    engine: Any, database_url: str
) -> None:
    reader = schema_state.SchemaReader(engine)
    before = reader.lines()
    assert before == read_from_scratch(engine) == frozenset()
    try:
        for step, sql in STEPS.items():
            run_step(database_url, sql)
            kept, fresh = reader.lines(), read_from_scratch(engine)
            assert fresh != before, f"{step}: the step changed nothing the reader reads"
            assert kept == fresh, (
                f"{step}: stale {sorted(kept - fresh)}, missing {sorted(fresh - kept)}"
            )
            before = fresh
    finally:
        reader.close()


def test_the_invalid_index_is_read_as_invalid(engine: Any, database_url: str) -> None:
    reader = schema_state.SchemaReader(engine)
    try:
        reader.lines()
        run_step(database_url, "CREATE TABLE crew (team_id serial PRIMARY KEY, title text)")
        run_step(database_url, STEPS["a concurrent unique index fails and stays INVALID"])
        lines = reader.lines()
    finally:
        reader.close()
    assert (
        "index public.uq_crew_nickname on public.crew: CREATE UNIQUE INDEX uq_crew_nickname ON "
        "public.crew USING btree (nickname) (INVALID)"
    ) in lines
