"""The model zoo, round 2: shapes that lean on Postgres itself go through the whole loop.

Extensions (citext, pg_trgm, uuid-ossp and pgcrypto from Debian's contrib on
the session's server; pgvector on a server that has it), unnamed CHECK
constraints under the naming convention, an enum declared with
``create_type=False``, and two declarations Postgres does not honour as
written: a nullable primary key and a unique constraint that repeats the
primary key. Each zoo autogenerates, upgrades, passes ``alembic check``, the
project's gate (squawk included) and ``--sql`` offline, and downgrades to
nothing; a second autogenerate finds nothing to write.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .support import (
    REPO,
    Project,
    alembic_ok,
    assert_gate_passes,
    one_failure_line,
    output,
    portability_problems,
    recipe_blocks,
    render,
)

CONTRIB_ZOO = """\
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Column, Field, SQLModel


class Account(SQLModel, table=True):
    __table_args__ = (
        sa.Index(
            "ix_account_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        sa.CheckConstraint("char_length(name) > 0"),
    )

    id: uuid.UUID = Field(
        sa_column=Column(
            postgresql.UUID(as_uuid=True),
            primary_key=True,
            server_default=sa.text("uuid_generate_v4()"),
        )
    )
    email: str = Field(sa_column=Column(postgresql.CITEXT, nullable=False, unique=True))
    name: str
    api_key: str = Field(
        sa_column=Column(
            sa.Text, nullable=False, server_default=sa.text("encode(gen_random_bytes(16), 'hex')")
        )
    )
    threshold: int = Field(
        sa_column=Column(
            sa.Integer, sa.CheckConstraint("threshold > 0"), nullable=False, server_default="1"
        )
    )


class Brain(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    kind: str | None = Field(
        default=None,
        sa_column=Column(postgresql.ENUM("doc", "api", name="brain_kind", create_type=False)),
    )


class Legacy(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("id"),)

    id: int = Field(sa_column=Column(sa.Integer, primary_key=True, nullable=True))
    code: str


class QuarterlyRevenueReconciliationAdjustmentsForSubsidiaries(SQLModel, table=True):
    __tablename__ = "quarterly_revenue_reconciliation_adjustments_for_subsidiaries"
    __table_args__ = (sa.CheckConstraint("adjustment_cents <> 0"),)

    id: int | None = Field(default=None, primary_key=True)
    adjustment_cents: int
"""
CONTRIB_EXTENSIONS = {"citext", "pg_trgm", "pgcrypto", "uuid-ossp"}
LONG_TABLE = "quarterly_revenue_reconciliation_adjustments_for_subsidiaries"

VECTOR_ZOO = """\
import sqlalchemy as sa
from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, Vector
from sqlmodel import Column, Field, SQLModel


class Document(SQLModel, table=True):
    __table_args__ = (
        sa.Index(
            "ix_document_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        sa.Index(
            "ix_document_embedding_ivfflat",
            "embedding",
            postgresql_using="ivfflat",
            postgresql_with={"lists": 100},
            postgresql_ops={"embedding": "vector_l2_ops"},
        ),
        sa.Index(
            "ix_document_summary_hnsw",
            "summary",
            postgresql_using="hnsw",
            postgresql_ops={"summary": "halfvec_l2_ops"},
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    title: str
    embedding: list[float] = Field(sa_column=Column(Vector(3), nullable=False))
    summary: list[float] | None = Field(default=None, sa_column=Column(HALFVEC(4)))
    keywords: object | None = Field(default=None, sa_column=Column(SPARSEVEC(5)))
"""


@pytest.fixture
def contrib_zoo(project: Project, database_url: str) -> Iterator[Project]:
    """The contrib zoo on a fresh database of the session's server; reset afterwards."""
    yield from zoo_on(project, "contrib", CONTRIB_ZOO, database_url)


@pytest.fixture(scope="module")
def vector_zoo_project(template_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project that declares pgvector, as `uv add pgvector` does."""
    project = Project(render(template_src, tmp_path_factory.mktemp("vector") / "project"))
    project.install()
    added = project.run("uv", "add", "--quiet", "pgvector>=0.4")
    assert added.returncode == 0, output(added)
    return project


@pytest.fixture
def vector_zoo(vector_zoo_project: Project, pgvector_database: str) -> Iterator[Project]:
    """The pgvector zoo on a fresh database of a server that has pgvector; reset afterwards."""
    yield from zoo_on(vector_zoo_project, "vectors", VECTOR_ZOO, pgvector_database)


def zoo_on(project: Project, module: str, source: str, url: str) -> Iterator[Project]:
    project.env["DATABASE_URL"] = url
    project.write_model(module, source)
    yield project
    for revision in project.revision_files():
        revision.unlink()
    (project.backend / project.package / "models" / f"{module}.py").unlink()


def autogenerate(project: Project) -> Path:
    alembic_ok(project, "revision", "--autogenerate", "-m", "zoo")
    [revision] = project.revision_files()
    return revision


def rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the database from a connection of the test's own."""
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(query, params).fetchall()


def extensions(url: str) -> set[str]:
    return {name for (name,) in rows(url, "SELECT extname FROM pg_extension") if name != "plpgsql"}


def public_relations(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname NOT IN ('alembic_version', 'alembic_version_pkc') "
        "UNION ALL SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace "
        "AND typtype = 'e'",
    )


def check_constraints(url: str) -> dict[str, str]:
    found = rows(
        url,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'c' AND connamespace = 'public'::regnamespace",
    )
    return dict(found)


def loop_ends_clean(project: Project, url: str) -> str:
    """``alembic check``, the gate and ``--sql`` pass; a second autogenerate writes nothing.

    Returns the offline SQL.
    """
    assert "No new upgrade operations detected" in alembic_ok(project, "check")
    assert_gate_passes(project, url)
    again = alembic_ok(project, "revision", "--autogenerate", "-m", "nothing changed")
    assert len(project.revision_files()) == 1, f"autogenerate found drift:\n{again}"
    return alembic_ok(project, "upgrade", "head", "--sql")


def test_contrib_extensions_and_declarations_go_through_the_whole_loop(
    contrib_zoo: Project, database_url: str
) -> None:
    revision = autogenerate(contrib_zoo)
    source = revision.read_text()
    assert portability_problems(source) == [], source
    upgrade, downgrade = source.split("def downgrade")
    for extension in CONTRIB_EXTENSIONS:
        create = f'CREATE EXTENSION IF NOT EXISTS "{extension}"'
        assert upgrade.index(create) < upgrade.index("op.create_table"), "before its first use"
        assert f'DROP EXTENSION IF EXISTS "{extension}"' in downgrade

    alembic_ok(contrib_zoo, "upgrade", "head")
    assert extensions(database_url) == CONTRIB_EXTENSIONS
    checks = check_constraints(database_url)
    unnamed = {name for name in checks if not name.startswith(("ck_account_", "ck_quarterly"))}
    assert unnamed == set(), checks
    assert len([name for name in checks if name.startswith("ck_account_")]) == 2, checks
    assert all(len(name.encode()) <= 63 for name in checks), checks
    [index] = rows(
        database_url, "SELECT indexdef FROM pg_indexes WHERE indexname = %s", "ix_account_name_trgm"
    )
    assert "USING gin (name gin_trgm_ops)" in index[0]
    [(account_id, api_key)] = rows(
        database_url,
        "INSERT INTO account (email, name) VALUES ('A@Example.com', 'a') RETURNING id, api_key",
    )
    assert re.fullmatch(r"[0-9a-f]{32}", api_key) and account_id is not None
    [(found,)] = rows(database_url, "SELECT count(*) FROM account WHERE email = 'a@example.COM'")
    assert found == 1, "citext compares without case"
    [(not_null,)] = rows(
        database_url,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'legacy'::regclass "
        "AND attname = 'id'",
    )
    assert not_null, "Postgres makes a primary key NOT NULL whatever the model says"

    offline = loop_ends_clean(contrib_zoo, database_url)
    for extension in CONTRIB_EXTENSIONS:
        assert f'CREATE EXTENSION IF NOT EXISTS "{extension}";' in offline

    alembic_ok(contrib_zoo, "downgrade", "base")
    assert public_relations(database_url) == []
    assert extensions(database_url) == set()


def test_unnamed_checks_get_the_same_name_on_every_import(contrib_zoo: Project) -> None:
    """The name is derived from the table and the expression: no run-to-run drift."""
    show = (
        "from sqlmodel import SQLModel; import my_service.models; "
        "print(sorted(c.name for t in SQLModel.metadata.tables.values() "
        "for c in t.constraints if type(c).__name__ == 'CheckConstraint'))"
    )
    first, second = (contrib_zoo.run(str(contrib_zoo.bin / "python"), "-c", show) for _ in "12")
    assert first.returncode == 0, output(first)
    assert first.stdout == second.stdout and "ck_account_" in first.stdout, output(first)


def test_pgvector_columns_and_indexes_go_through_the_whole_loop(
    vector_zoo: Project, pgvector_database: str
) -> None:
    revision = autogenerate(vector_zoo)
    source = revision.read_text()
    assert portability_problems(source, "pgvector") == [], source
    assert "from pgvector.sqlalchemy import" in source
    upgrade = source.split("def downgrade")[0]
    assert upgrade.index('CREATE EXTENSION IF NOT EXISTS "vector"') < upgrade.index("create_table")

    alembic_ok(vector_zoo, "upgrade", "head")
    assert extensions(pgvector_database) == {"vector"}
    types = dict(
        rows(
            pgvector_database,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'document'::regclass AND attnum > 0",
        )
    )
    assert types["embedding"] == "vector(3)" and types["summary"] == "halfvec(4)"
    assert types["keywords"] == "sparsevec(5)"
    indexes = {
        name: (method, operator_class, options)
        for name, method, operator_class, options in rows(
            pgvector_database,
            "SELECT i.relname, am.amname, opc.opcname, i.reloptions FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam "
            "JOIN pg_opclass opc ON opc.oid = x.indclass[0] "
            "WHERE x.indrelid = 'document'::regclass AND NOT x.indisprimary",
        )
    }
    assert indexes == {
        "ix_document_embedding_hnsw": ("hnsw", "vector_cosine_ops", ["m=16", "ef_construction=64"]),
        "ix_document_embedding_ivfflat": ("ivfflat", "vector_l2_ops", ["lists=100"]),
        "ix_document_summary_hnsw": ("hnsw", "halfvec_l2_ops", None),
    }

    offline = loop_ends_clean(vector_zoo, pgvector_database)
    assert 'CREATE EXTENSION IF NOT EXISTS "vector";' in offline
    assert "embedding VECTOR(3) NOT NULL" in offline

    alembic_ok(vector_zoo, "downgrade", "base")
    assert public_relations(pgvector_database) == []
    assert extensions(pgvector_database) == set()


def test_an_extension_the_server_lacks_fails_the_upgrade_in_one_line(
    vector_zoo: Project, pgvector_database: str, database_url: str
) -> None:
    """Debian's PostgreSQL has no pgvector: the upgrade names it and changes nothing."""
    autogenerate(vector_zoo)
    result = vector_zoo.alembic("upgrade", "head", DATABASE_URL=database_url)
    one_failure_line(result, 'extension "vector" is not available on this server')
    assert public_relations(database_url) == [], "the revision rolled back"
    assert rows(database_url, "SELECT to_regclass('alembic_version')") == [(None,)]


def test_a_revision_whose_extension_package_is_gone_names_it_in_one_line(
    vector_zoo: Project, pgvector_database: str
) -> None:
    autogenerate(vector_zoo)
    python = str(vector_zoo.bin / "python")
    removed = vector_zoo.run("uv", "pip", "uninstall", "--quiet", "--python", python, "pgvector")
    assert removed.returncode == 0, output(removed)
    (vector_zoo.backend / vector_zoo.package / "models" / "vectors.py").write_text("")
    try:
        result = vector_zoo.alembic("upgrade", "head")
        one_failure_line(result, "needs the package pgvector", "uv sync")
        assert public_relations(pgvector_database) == []
    finally:
        (vector_zoo.backend / vector_zoo.package / "models" / "vectors.py").write_text(VECTOR_ZOO)
        synced = vector_zoo.run("uv", "sync", "--quiet")
        assert synced.returncode == 0, output(synced)


def test_an_extension_type_from_an_undeclared_package_stops_autogenerate(
    project: Project, pgvector_database: str
) -> None:
    """Installed by hand, not declared: the revision would not run on the next machine."""
    python = str(project.bin / "python")
    installed = project.run("uv", "pip", "install", "--quiet", "--python", python, "pgvector")
    assert installed.returncode == 0, output(installed)
    project.env["DATABASE_URL"] = pgvector_database
    project.write_model("vectors", VECTOR_ZOO)
    try:
        result = project.alembic("revision", "--autogenerate", "-m", "vectors")
        one_failure_line(result, "document.embedding", "pgvector", "uv add pgvector")
        assert project.revision_files() == []
    finally:
        project.run("uv", "pip", "uninstall", "--quiet", "--python", python, "pgvector")


MODELS_DOC = REPO / "template" / "backend" / "docs" / "models.md"


def test_the_docs_contrib_recipe_runs_as_written(contrib_zoo: Project, database_url: str) -> None:
    [recipe] = recipe_blocks(MODELS_DOC)["contrib"]
    contrib_zoo.write_model("contrib", recipe)
    autogenerate(contrib_zoo)
    alembic_ok(contrib_zoo, "upgrade", "head")
    assert extensions(database_url) == {"citext", "pg_trgm", "pgcrypto"}
    assert "No new upgrade operations detected" in alembic_ok(contrib_zoo, "check")
    alembic_ok(contrib_zoo, "downgrade", "base")
    assert public_relations(database_url) == [] and extensions(database_url) == set()


def test_the_docs_pgvector_recipe_runs_as_written(
    vector_zoo: Project, pgvector_database: str
) -> None:
    [recipe] = recipe_blocks(MODELS_DOC)["pgvector"]
    vector_zoo.write_model("vectors", recipe)
    autogenerate(vector_zoo)
    alembic_ok(vector_zoo, "upgrade", "head")
    assert extensions(pgvector_database) == {"vector"}
    assert "No new upgrade operations detected" in alembic_ok(vector_zoo, "check")
    alembic_ok(vector_zoo, "downgrade", "base")
    assert public_relations(pgvector_database) == [] and extensions(pgvector_database) == set()
