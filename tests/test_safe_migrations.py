"""Every recipe of docs/safe-migrations.md, run as written, on tables with rows.

The code blocks come out of the doc itself (each follows a
``<!-- recipe: NAME/PART -->`` marker), so the doc cannot drift from what is
proven here. One rendered project holds the table of every recipe, with rows.
The tests below are one story and run in order: the unsafe forms fail the lint
naming their rule; then release 1 of every recipe, and then release 2, each
passes the lint (with exactly the documented acceptances), migrates, passes
``alembic check`` and the project's gate, as a pull request would; between
the two, the previous release's writes still work. The data is checked from a
separate connection.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import servers
from .support import (
    REPO,
    Project,
    alembic_ok,
    git,
    head_revision,
    output,
    recipe_blocks,
    render,
    revision_ids,
)
from .test_gate import run_gate
from .test_lint_migrations import lint

DOC = REPO / "template" / "backend" / "docs" / "safe-migrations.md"
# In the doc's order; each recipe's models live in a module of their own.
RECIPES = [
    "drop-column",
    "drop-table",
    "rename-column",
    "rename-table",
    "add-not-null",
    "change-type",
    "cast",
    "add-index",
    "unique",
    "foreign-key",
]
# The squawk rule that each recipe's unsafe form breaks.
UNSAFE_RULES = {
    "drop-column": "ban-drop-column",
    "drop-table": "ban-drop-table",
    "rename-column": "renaming-column",
    "rename-table": "renaming-table",
    "add-not-null": "adding-required-field",
    "change-type": "changing-column-type",
    "cast": "changing-column-type",
    "add-index": "require-concurrent-index-creation",
    "unique": "disallowed-unique-constraint",
    "foreign-key": "adding-foreign-key-constraint",
}
# What the doc says model snippets assume.
MODEL_IMPORTS = "import sqlalchemy as sa\nfrom sqlmodel import Field, SQLModel\n\n\n"
ROWS = """
INSERT INTO "user" (email, name, nickname)
    VALUES ('ada@example.com', 'Ada', 'ada'), ('bob@example.com', 'Bob', NULL);
INSERT INTO invite (email) VALUES ('carol@example.com');
INSERT INTO team (title) VALUES ('Platform'), ('Billing');
INSERT INTO post (body) VALUES ('first post');
INSERT INTO project (name) VALUES ('Neon Migration'), ('Q3 Roadmap');
INSERT INTO invoice (number, total_cents) VALUES ('INV-0001', 1250);
INSERT INTO parcel (weight) VALUES ('120'), (' 75 '), ('about 2 kg');
INSERT INTO event (kind) VALUES ('signup'), ('login');
INSERT INTO customer (email) VALUES ('dan@example.com'), ('eve@example.com');
INSERT INTO task (project_id, title) VALUES (1, 'plan'), (2, 'ship');
"""
STORAGE = (
    "SELECT relname, relfilenode FROM pg_class WHERE relname IN ('invoice', 'ix_invoice_number')"
)


BLOCKS = recipe_blocks(DOC)


def accepted_rules(block: str) -> set[str]:
    """The rules a revision snippet accepts in its ``accepted_hazards``."""
    for node in ast.parse(block).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(target, "id", None) == "accepted_hazards" for target in targets):
                return set(ast.literal_eval(node.value))
    return set()


@dataclass
class Scenario:
    """The project every recipe runs in, its database, and what the tests carry forward."""

    project: Project
    url: str
    server_url: str
    env_hooks: str
    storage_before: dict[str, int] = field(default_factory=dict)

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Run one statement on a connection of its own; return its rows, if any."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []

    def value(self, statement: str, *params: object) -> Any:
        [[value]] = self.sql(statement, *params)
        return value


def write_models(project: Project, release: int) -> None:
    """Each recipe's model module as of ``release`` (0 is "before")."""
    for recipe in RECIPES:
        parts = ["before"] + [f"release-{n}/model" for n in range(1, release + 1)]
        [*_, latest] = [
            BLOCKS[f"{recipe}/{part}"][0] for part in parts if f"{recipe}/{part}" in BLOCKS
        ]
        project.write_model(recipe.replace("-", "_"), MODEL_IMPORTS + latest)


def write_revision(project: Project, rev: str, down: str | None, title: str, block: str) -> None:
    """A revision file as `alembic revision -m` starts it, with the snippet as its body."""
    path = project.backend / "migrations" / "versions" / f"{rev}.py"
    path.write_text(
        f'"""{title}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n"
        f"\n\n{block}"
    )


def write_release(scenario: Scenario, release: int) -> dict[str, set[str]]:
    """Models, env_hooks.py and revisions of ``release``; returns each revision's accepted rules."""
    project = scenario.project
    write_models(project, release)
    hooks = project.backend / "migrations" / "env_hooks.py"
    if release == 1:
        [retired] = BLOCKS["retired/env-hooks"]
        hooks.write_text(scenario.env_hooks + "\n" + retired)
    else:
        hooks.write_text(scenario.env_hooks)
    accepted: dict[str, set[str]] = {}
    down = head_revision(project)
    for recipe in RECIPES:
        for step, block in enumerate(BLOCKS.get(f"{recipe}/release-{release}/revision", []), 1):
            rev = f"r{release}_{recipe.replace('-', '_')}_{step}"
            write_revision(project, rev, down, f"{recipe}, release {release}, step {step}", block)
            accepted[rev] = accepted_rules(block)
            down = rev
    return accepted


def ship(scenario: Scenario, release: int) -> str:
    """What a release's pull request and deploy go through; commits the release.

    Its base is the release before it (the commit ``HEAD``): the running release, which the
    gate runs on the new schema. Returns the lint's output.
    """
    project = scenario.project
    accepted = write_release(scenario, release)
    accepted |= autogenerate_the_rest(project, release)
    linted = lint(project, MIGRATION_LINT_BASE="HEAD")
    assert linted.returncode == 0, output(linted)
    assert f"{len(accepted)} revision(s) added or changed" in linted.stdout, linted.stdout
    for rev, rules in accepted.items():
        for rule in rules:
            assert f"(revision {rev}): accepted {rule}" in linted.stdout, linted.stdout
    alembic_ok(project, "upgrade", "head")
    assert "No new upgrade operations detected" in alembic_ok(project, "check")
    gate = run_gate(project, TEST_DATABASE_URL=scenario.server_url, MIGRATION_LINT_BASE="HEAD")
    assert gate.returncode == 0, output(gate)
    assert "running release is not checked" not in gate.stdout, "the release before runs on it"
    git(project.root, "add", "--all")
    git(project.root, "commit", "--quiet", "-m", f"release {release}")
    return linted.stdout


def autogenerate_the_rest(project: Project, release: int) -> dict[str, set[str]]:
    """The revision autogenerate writes for the model changes no snippet covers (an index,
    a unique constraint, a foreign key, a NOT NULL), after the release's own revisions."""
    alembic_ok(project, "upgrade", "head")
    before = set(project.revision_files())
    alembic_ok(project, "revision", "--autogenerate", "-m", f"release {release}, autogenerated")
    return {revision_ids(path)[0]: set() for path in set(project.revision_files()) - before}


@pytest.fixture(scope="module")
def scenario(
    template_src: Path, tmp_path_factory: pytest.TempPathFactory, postgres_server: Any
) -> Iterator[Scenario]:
    """Every recipe's table as it is before the recipe, committed and migrated, with rows."""
    project = Project(render(template_src, tmp_path_factory.mktemp("safe") / "project"))
    project.install()
    env_hooks = (project.backend / "migrations" / "env_hooks.py").read_text()
    server_url = postgres_server.url(postgres_server.maintenance_db)
    with servers.temporary_database(postgres_server) as url:
        project.env["DATABASE_URL"] = url
        write_models(project, release=0)
        alembic_ok(project, "revision", "--autogenerate", "-m", "Tables before the recipes")
        alembic_ok(project, "upgrade", "head")
        git(project.root, "init", "--quiet")
        git(project.root, "add", "--all")
        git(project.root, "commit", "--quiet", "-m", "before the recipes")
        scenario = Scenario(project, url, server_url, env_hooks)
        scenario.sql(ROWS)
        scenario.storage_before = dict(scenario.sql(STORAGE))
        yield scenario


def test_every_recipe_is_in_the_doc_with_its_unsafe_form_and_rule() -> None:
    for recipe in RECIPES:
        assert f"{recipe}/before" in BLOCKS and f"{recipe}/unsafe" in BLOCKS, recipe
        assert f"{recipe}/release-1/revision" in BLOCKS or f"{recipe}/release-1/model" in BLOCKS
        assert f"`{UNSAFE_RULES[recipe]}`" in DOC.read_text(), "the doc names the rule"


def test_the_rendered_project_ships_the_doc_that_the_lint_points_to(scenario: Scenario) -> None:
    rendered = scenario.project.backend / "docs" / "safe-migrations.md"
    assert rendered.read_text() == DOC.read_text()
    lint_module = scenario.project.backend / "migration_gate" / "lint.py"
    assert "docs/safe-migrations.md" in lint_module.read_text()


def test_unsafe_forms_fail_the_lint_naming_their_rule(scenario: Scenario) -> None:
    project = scenario.project
    down = head_revision(project)
    for recipe in RECIPES:
        rev = f"unsafe_{recipe.replace('-', '_')}"
        write_revision(project, rev, down, f"{recipe}, unsafe", BLOCKS[f"{recipe}/unsafe"][0])
        down = rev
    try:
        result = lint(project, MIGRATION_LINT_BASE="HEAD")
    finally:
        for path in project.revision_files():
            if path.name.startswith("unsafe_"):
                path.unlink()
    assert result.returncode == 1, output(result)
    assert "Traceback" not in output(result)
    fired = set(re.findall(r"\(revision unsafe_(\w+)\): ([a-z-]+): ", result.stdout))
    for recipe, rule in UNSAFE_RULES.items():
        assert (recipe.replace("-", "_"), rule) in fired, output(result)


def test_release_1_passes_the_gate_on_tables_with_rows(scenario: Scenario) -> None:
    ship(scenario, release=1)


def test_the_previous_release_and_release_1_both_work_after_release_1(scenario: Scenario) -> None:
    sql, value = scenario.sql, scenario.value
    # drop-column, drop-table: release 0 still writes what release 2 drops.
    sql("""INSERT INTO "user" (email, name, nickname) VALUES ('old@example.com', 'Old', 'o')""")
    sql("""INSERT INTO "user" (email, name) VALUES ('new@example.com', 'New')""")
    sql("INSERT INTO invite (email) VALUES ('late@example.com')")
    # rename-column: each release writes its own name; the trigger fills the other.
    assert value("INSERT INTO team (title) VALUES ('Growth') RETURNING name") == "Growth"
    assert value("INSERT INTO team (name) VALUES ('Search') RETURNING title") == "Search"
    assert value("UPDATE team SET title = 'Platform Team' WHERE id = 1 RETURNING name") == (
        "Platform Team"
    )
    # rename-table: release 0 reads and writes through the view.
    sql("INSERT INTO post (body) VALUES ('through the view')")
    sql("INSERT INTO article (body) VALUES ('into article')")
    assert [body for (body,) in sql("SELECT body FROM post ORDER BY id")] == [
        "first post",
        "through the view",
        "into article",
    ]
    # add-not-null: release 0 leaves both new columns out; release 1 writes the slug.
    assert value("INSERT INTO project (name) VALUES ('Old Code') RETURNING archived") is False
    sql("INSERT INTO project (name, archived, slug) VALUES ('New Code', true, 'new-code')")
    # change-type: the wider number fits.
    sql("INSERT INTO invoice (number, total_cents) VALUES ('INV-2026-000000000002', 10)")
    # cast: release 0 writes weight, release 1 weight_grams; the trigger casts with care.
    assert value("INSERT INTO parcel (weight) VALUES ('300') RETURNING weight_grams") == 300
    assert value("INSERT INTO parcel (weight) VALUES ('heavy') RETURNING weight_grams") is None
    assert value("INSERT INTO parcel (weight_grams) VALUES (5) RETURNING weight") == "5"


def test_release_2_passes_the_gate(scenario: Scenario) -> None:
    """Its drops need no acceptance: the running release (release 1) maps none of them."""
    linted = ship(scenario, release=2)
    for dropped in ("user.nickname", "invite", "team.title", "parcel.weight"):
        assert f"satisfied by evidence: the running release (HEAD) no longer maps {dropped}" in (
            linted
        ), linted


def columns(scenario: Scenario, table: str) -> dict[str, bool]:
    """Column name to whether it is NOT NULL."""
    rows = scenario.sql(
        "SELECT attname, attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        table,
    )
    return dict(rows)


def test_dropped_column_and_table_are_gone_and_the_rows_stay(scenario: Scenario) -> None:
    assert columns(scenario, '"user"') == {"id": True, "email": True, "name": True}
    emails = [email for (email,) in scenario.sql('SELECT email FROM "user" ORDER BY id')]
    assert emails == ["ada@example.com", "bob@example.com", "old@example.com", "new@example.com"]
    assert scenario.value("SELECT to_regclass('invite')") is None


def test_renamed_column_holds_every_value_and_is_not_null(scenario: Scenario) -> None:
    assert columns(scenario, "team") == {"id": True, "name": True}
    names = [name for (name,) in scenario.sql("SELECT name FROM team ORDER BY id")]
    assert names == ["Platform Team", "Billing", "Growth", "Search"]
    assert scenario.value("SELECT to_regproc('team_sync_name')") is None
    assert (
        scenario.value(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'team'::regclass AND contype = 'c'"
        )
        == 0
    )


def test_renamed_table_holds_the_rows_written_through_the_view(scenario: Scenario) -> None:
    assert scenario.value("SELECT to_regclass('post')") is None
    bodies = [body for (body,) in scenario.sql("SELECT body FROM article ORDER BY id")]
    assert bodies == ["first post", "through the view", "into article"]


def test_new_not_null_columns_are_filled_and_enforced(scenario: Scenario) -> None:
    rows = scenario.sql("SELECT name, archived, slug FROM project ORDER BY id")
    assert rows == [
        ("Neon Migration", False, "neon-migration"),
        ("Q3 Roadmap", False, "q3-roadmap"),
        ("Old Code", False, "old-code"),
        ("New Code", True, "new-code"),
    ]
    assert columns(scenario, "project") == {
        "id": True,
        "name": True,
        "archived": True,
        "slug": True,
    }
    assert (
        scenario.value(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'project'::regclass "
            "AND contype = 'c'"
        )
        == 0
    )


def test_widened_column_rewrote_neither_table_nor_index(scenario: Scenario) -> None:
    assert dict(scenario.sql(STORAGE)) == scenario.storage_before
    assert (
        scenario.value(
            "SELECT character_maximum_length FROM information_schema.columns "
            "WHERE table_name = 'invoice' AND column_name = 'number'"
        )
        == 40
    )
    numbers = [number for (number,) in scenario.sql("SELECT number FROM invoice ORDER BY id")]
    assert numbers == ["INV-0001", "INV-2026-000000000002"]


def test_cast_column_holds_the_values_that_convert(scenario: Scenario) -> None:
    assert columns(scenario, "parcel") == {"id": True, "weight_grams": False}
    grams = [grams for (grams,) in scenario.sql("SELECT weight_grams FROM parcel ORDER BY id")]
    assert grams == [120, 75, None, 300, None, 5]
    assert scenario.value("SELECT to_regproc('parcel_weight_grams')") is None


def test_concurrent_indexes_are_valid_and_the_unique_one_backs_the_constraint(
    scenario: Scenario,
) -> None:
    indexes = scenario.sql(
        "SELECT indexrelid::regclass::text, indisvalid, indisunique FROM pg_index "
        "WHERE indexrelid IN ('ix_event_kind'::regclass, 'uq_customer_email'::regclass) ORDER BY 1"
    )
    assert indexes == [("ix_event_kind", True, False), ("uq_customer_email", True, True)]
    assert (
        scenario.value(
            "SELECT conindid::regclass::text FROM pg_constraint "
            "WHERE conname = 'uq_customer_email' AND contype = 'u'"
        )
        == "uq_customer_email"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        scenario.sql("INSERT INTO customer (email) VALUES ('dan@example.com')")


def test_foreign_key_is_validated_and_enforced(scenario: Scenario) -> None:
    assert (
        scenario.value(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'fk_task_project_id_project'"
        )
        is True
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        scenario.sql("INSERT INTO task (project_id, title) VALUES (999, 'orphan')")
