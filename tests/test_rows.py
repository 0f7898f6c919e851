"""The gate's row generator (``migration_gate/rows.py``), on its own and on a real server.

The module is loaded from the template as the rendered project has it. A zoo
table of every kind of column the generator knows gets its rows on the
session's server, and what Postgres then holds is read back from a separate
connection: a NULL in every nullable column, a duplicate in every column no
unique key covers, text at its maximum length, every enum label, foreign keys
that point at rows that exist, CHECKs that hold.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from .conftest import servers
from .support import load_gate_module

ROWS = 20


rows = load_gate_module("rows")

ZOO = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh', 'curious');
CREATE TABLE team (id serial PRIMARY KEY, name varchar(40) NOT NULL UNIQUE);
CREATE TABLE zoo (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id integer NOT NULL REFERENCES team (id),
    mentor_id integer REFERENCES team (id),
    code varchar(12) NOT NULL UNIQUE,
    title varchar(30) NOT NULL,
    body text,
    initial char(1),
    tiny smallint,
    count integer NOT NULL DEFAULT 0,
    big bigint,
    price numeric(8, 2) NOT NULL,
    ratio double precision,
    loose numeric,
    flag boolean NOT NULL DEFAULT true,
    born date,
    seen timestamptz NOT NULL DEFAULT now(),
    stamp timestamp(3),
    at_time time,
    span interval,
    ref uuid UNIQUE,
    doc jsonb NOT NULL DEFAULT '{}',
    raw json,
    feeling mood,
    moods mood[],
    tags varchar(10)[],
    blob bytea,
    address inet,
    retries integer NOT NULL CHECK (retries >= 0),
    CONSTRAINT zoo_team_title UNIQUE (team_id, title)
);
CREATE TABLE note (body text, written date);
"""
# What looks like a secret: key prefixes, the words, long hex or base64 runs.
SECRET = re.compile(
    r"(?i)password|secret|token|api[_-]?key|private|sk_live|AKIA[0-9A-Z]{8}|eyJ[\w-]{8}"
    r"|\b[0-9a-f]{32,}\b|[A-Za-z0-9+/]{40,}={0,2}"
)


@pytest.fixture(scope="module")
def zoo(postgres_server: Any) -> Iterator[tuple[str, list[Any]]]:
    """The zoo on a database of its own, filled by the generator: its URL and what it wrote."""
    with servers.temporary_database(postgres_server) as url:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(ZOO)
            written = rows.fill(connection.cursor(), ["zoo", "note", "team"], ROWS)
        yield url, written


def column(url: str, table: str, name: str) -> list[Any]:
    with psycopg.connect(url) as connection:
        return [value for (value,) in connection.execute(f"SELECT {name}::text FROM {table}")]


def test_every_table_gets_its_rows_referenced_tables_first(zoo: tuple[str, list[Any]]) -> None:
    _, written = zoo
    assert [(item.table, item.written) for item in written] == [
        ("team", ROWS),
        ("note", ROWS),
        ("zoo", ROWS),
    ]
    assert all(item.shortfall() is None for item in written)


NULLABLE = (
    *("mentor_id", "body", "initial", "tiny", "big", "ratio", "loose", "born", "stamp"),
    *("at_time", "span", "ref", "raw", "feeling", "moods", "tags", "blob", "address"),
)
NOT_UNIQUE = (
    *("team_id", "title", "body", "tiny", "count", "price", "flag", "born", "seen", "doc"),
    *("feeling", "retries"),
)


@pytest.mark.parametrize("name", NULLABLE)
def test_a_nullable_column_holds_a_null(zoo: tuple[str, list[Any]], name: str) -> None:
    assert None in column(zoo[0], "zoo", name)


@pytest.mark.parametrize("name", NOT_UNIQUE)
def test_a_column_no_key_covers_holds_a_duplicate(zoo: tuple[str, list[Any]], name: str) -> None:
    values = [value for value in column(zoo[0], "zoo", name) if value is not None]
    assert max(Counter(values).values()) > 1, values


def test_unique_keys_enum_labels_and_checks_hold(zoo: tuple[str, list[Any]]) -> None:
    url = zoo[0]
    codes = column(url, "zoo", "code")
    assert len(set(codes)) == ROWS and "" in codes and max(len(code) for code in codes) == 12
    assert set(column(url, "zoo", "feeling")) == {None, "happy", "sad", "meh", "curious"}
    assert min(int(value) for value in column(url, "zoo", "retries")) >= 0
    with psycopg.connect(url) as connection:
        orphans = connection.execute(
            "SELECT count(*) FROM zoo WHERE team_id NOT IN (SELECT id FROM team)"
        ).fetchone()
        pairs = connection.execute("SELECT count(DISTINCT (team_id, title)) FROM zoo").fetchone()
    assert orphans == (0,) and pairs == (ROWS,)


def test_the_rows_are_adversarial(zoo: tuple[str, list[Any]]) -> None:
    url = zoo[0]
    titles = column(url, "zoo", "title")
    assert {"", "A-17", "2024-02-30", "null", "  padded  "} <= set(titles)
    assert any(len(title) == 30 for title in titles), "text at its maximum length"
    assert any(not title.isascii() for title in titles), "non-ASCII text"
    assert any(len(body or "") == rows.UNBOUNDED_TEXT for body in column(url, "zoo", "body"))
    assert {"0", "-1", "32767", "-32768"} <= set(column(url, "zoo", "tiny"))
    assert {"999999.99", "-999999.99", "0.01"} <= set(column(url, "zoo", "price"))
    assert {"NaN", "Infinity", "-Infinity"} <= set(column(url, "zoo", "ratio"))
    assert {"infinity", "-infinity", "0001-01-01", "9999-12-31"} <= set(column(url, "zoo", "born"))
    assert {"{}", "[]", "null", '"text"'} <= set(column(url, "zoo", "doc"))
    assert {"00000000-0000-0000-0000-000000000000"} <= set(column(url, "zoo", "ref"))


def test_no_value_looks_like_a_secret(zoo: tuple[str, list[Any]]) -> None:
    with psycopg.connect(zoo[0]) as connection:
        values = [
            value
            for (row,) in connection.execute("SELECT to_jsonb(zoo)::text FROM zoo")
            for value in re.findall(r'"((?:[^"\\]|\\.)*)"', row)
        ]
    assert values
    for value in values:
        assert not SECRET.search(value), value
        if len(value) >= 20:
            assert entropy(value) < 4.5, value


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def test_a_table_without_a_key_and_one_from_sqlalchemy() -> None:
    """``shape_of`` reads the models' Table, as an old release's models declare it."""
    metadata = sa.MetaData()
    mood = sa.Enum("happy", "sad", name="mood")
    table = sa.Table(
        "member",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("feeling", mood),
        sa.Column("joined", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    shape = rows.shape_of(table)
    assert [c.name for c in shape.columns if c.filled_by_server] == ["id"]
    assert shape.unique == (("email",),)
    generated = rows.generate(shape, ROWS)
    assert generated.unfillable is None
    emails = [row[0] for row in generated.values]
    assert len(set(emails)) == ROWS and max(len(e) for e in emails) == 320
    assert {"happy", "sad", None} == {row[1] for row in generated.values}
    assert rows.DEFAULT in {row[2] for row in generated.values}
    assert rows.generate(shape, ROWS).values == generated.values, "the same every time"
    later = rows.generate(shape, 1, first_row=1000).values[0][0]
    assert later not in emails, "a later row does not repeat a unique value"
