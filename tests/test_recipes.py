"""Real-world models round-trip through the rendered project's gate.

The recipe models use every pattern of backend/docs/models.md's "Model
recipes": UUID keys with a server default, timestamptz defaults, an enum,
JSONB, a foreign key with ON DELETE, and a many-to-many link table; that
file's own code blocks run as written.
"""

from __future__ import annotations

import re

import psycopg

from .support import REPO, Project, alembic_ok, assert_gate_passes, output, recipe_blocks

RECIPES = """\
import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, Relationship, SQLModel


class Status(enum.Enum):
    draft = "draft"
    published = "published"


class TeamMemberLink(SQLModel, table=True):
    team_id: uuid.UUID = Field(foreign_key="team.id", primary_key=True, ondelete="CASCADE")
    member_id: uuid.UUID = Field(foreign_key="member.id", primary_key=True, ondelete="CASCADE")


class Team(SQLModel, table=True):
    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        primary_key=True,
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
    )
    name: str
    created_at: datetime = Field(
        sa_type=sa.DateTime(timezone=True), sa_column_kwargs={"server_default": sa.func.now()}
    )
    updated_at: datetime = Field(
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now(), "onupdate": sa.func.now()},
    )
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    seats: int = Field(default=5, sa_column_kwargs={"server_default": sa.text("5")})
    status: Status = Field(default=Status.draft, sa_column_kwargs={"server_default": "draft"})
    settings: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    members: list["Member"] = Relationship(back_populates="teams", link_model=TeamMemberLink)


class Member(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str
    teams: list[Team] = Relationship(back_populates="members", link_model=TeamMemberLink)


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    team_id: uuid.UUID = Field(foreign_key="team.id", ondelete="CASCADE", index=True)
"""


def enum_values(url: str, name: str = "status") -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
            "WHERE t.typname = %s ORDER BY e.enumsortorder",
            (name,),
        ).fetchall()
    return [row[0] for row in rows]


def leftovers(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT relkind::text, relname FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace "
            "AND relname NOT IN ('alembic_version', 'alembic_version_pkc') "
            "UNION ALL SELECT 'type', typname FROM pg_type "
            "WHERE typnamespace = 'public'::regnamespace AND typtype = 'e'"
        ).fetchall()


def test_recipe_models_round_trip_through_the_gate(project: Project, database_url: str) -> None:
    project.write_model("recipes", RECIPES)
    alembic_ok(project, "revision", "--autogenerate", "-m", "recipes")
    [revision] = project.revision_files()
    source = revision.read_text()
    assert "sa.Enum('draft', 'published', name='status').create(op.get_bind())" in source
    assert "sa.Enum('draft', 'published', name='status').drop(op.get_bind())" in source
    assert "postgresql.JSONB" in source and "ondelete='CASCADE'" in source

    alembic_ok(project, "upgrade", "head")
    assert "No new upgrade operations detected" in alembic_ok(project, "check")

    assert_gate_passes(project, database_url)

    alembic_ok(project, "downgrade", "base")
    assert leftovers(database_url) == []


def test_new_enum_member_is_detected_added_and_removed(project: Project, database_url: str) -> None:
    project.write_model("recipes", RECIPES)
    alembic_ok(project, "revision", "--autogenerate", "-m", "recipes")
    alembic_ok(project, "upgrade", "head")

    project.write_model(
        "recipes",
        RECIPES.replace(
            '    published = "published"\n',
            '    published = "published"\n    archived = "archived"\n',
        ),
    )
    drift = project.alembic("check")
    assert drift.returncode != 0 and "archived" in output(drift), output(drift)

    alembic_ok(project, "revision", "--autogenerate", "-m", "archived status")
    alembic_ok(project, "upgrade", "head")
    assert enum_values(database_url) == ["draft", "published", "archived"]
    alembic_ok(project, "check")
    alembic_ok(project, "downgrade", "-1")
    assert enum_values(database_url) == ["draft", "published"]


def test_renaming_an_enum_member_keeps_existing_rows(project: Project, database_url: str) -> None:
    """The documented manual recipe: name the rename in the generated sync_enum_values."""
    project.write_model("recipes", RECIPES)
    alembic_ok(project, "revision", "--autogenerate", "-m", "recipes")
    alembic_ok(project, "upgrade", "head")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("INSERT INTO team (name, status) VALUES ('core', 'published')")

    project.write_model("recipes", RECIPES.replace('published = "published"', 'live = "live"'))
    alembic_ok(project, "revision", "--autogenerate", "-m", "rename published to live")
    revision = next(p for p in project.revision_files() if "rename" in p.name)
    upgrade, downgrade = revision.read_text().split("def downgrade")
    revision.write_text(
        upgrade.replace("enum_values_to_rename=[]", "enum_values_to_rename=[('published', 'live')]")
        + "def downgrade"
        + downgrade.replace(
            "enum_values_to_rename=[]", "enum_values_to_rename=[('live', 'published')]"
        )
    )
    alembic_ok(project, "upgrade", "head")
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT status::text FROM team").fetchall() == [("live",)]
    assert enum_values(database_url) == ["draft", "live"]
    alembic_ok(project, "check")
    alembic_ok(project, "downgrade", "-1")
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT status::text FROM team").fetchall() == [("published",)]


def test_extension_tables_and_unmanaged_schemas_stay_out_of_autogenerate(
    project: Project, database_url: str
) -> None:
    project.write_model("recipes", RECIPES)
    alembic_ok(project, "revision", "--autogenerate", "-m", "recipes")
    alembic_ok(project, "upgrade", "head")
    with psycopg.connect(database_url, autocommit=True) as connection:
        # as PostGIS does with spatial_ref_sys: an extension's own table in public
        connection.execute("CREATE EXTENSION IF NOT EXISTS hstore")
        connection.execute("CREATE TABLE public.extension_catalog (id int PRIMARY KEY)")
        connection.execute("ALTER EXTENSION hstore ADD TABLE public.extension_catalog")
        # as Neon Auth does: its tables in a schema of its own
        connection.execute("CREATE SCHEMA neon_auth")
        connection.execute("CREATE TABLE neon_auth.users_sync (id text PRIMARY KEY)")
    alembic_ok(project, "check")
    alembic_ok(project, "revision", "--autogenerate", "-m", "nothing to see")
    assert len(project.revision_files()) == 1

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE public.stray (id int PRIMARY KEY)")
    stray = project.alembic("check")
    assert stray.returncode != 0 and "stray" in output(stray), (
        "the filters hide only what they should"
    )


def test_docs_model_recipes_run_as_written(project: Project, database_url: str) -> None:
    """docs/models.md's code blocks, in order, are one model module that round-trips."""
    docs = REPO / "template" / "backend" / "docs" / "models.md"
    found = re.findall(r"^```python\n(.*?)^```$", docs.read_text(), flags=re.DOTALL | re.MULTILINE)
    marked = [block for blocks in recipe_blocks(docs).values() for block in blocks]
    blocks = [block for block in found if block not in marked]  # the extensions' run elsewhere
    assert len(blocks) == 2, "docs/models.md has two unmarked Python blocks"
    project.write_model("recipes", "\n\n".join(blocks))
    alembic_ok(project, "revision", "--autogenerate", "-m", "recipes")
    alembic_ok(project, "upgrade", "head")
    assert "No new upgrade operations detected" in alembic_ok(project, "check")
    with psycopg.connect(database_url) as connection:
        names = {row[0] for row in connection.execute("SELECT conname FROM pg_constraint")}
    assert {"ck_task_retries", "uq_task_category_id_title", "fk_task_parent_id_task"} <= names
    alembic_ok(project, "downgrade", "base")
    assert leftovers(database_url) == []
