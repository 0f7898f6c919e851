"""docs/schema.md in a rendered project: generated, checked by the gate, drawn by a real renderer.

The page's Mermaid is rendered to SVG by mermaid-cli driving Debian's chromium
(``.ci/run`` installs both); where they are missing, the renderer tests skip
and say so, unless ``REQUIRE_MERMAID_RENDERER=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.workloads import write_model_set

from .support import Project, head_revision, output, write_revision

MERMAID_CLI_HOME = Path(
    os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "template-tests", "mermaid-cli"
)
# Chromium as root, on a closed network: the flags that keep it from failing there.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Names Mermaid cannot take as they are: reserved words, a dash, non-ASCII, a
# schema, a column named like a key marker, one starting with a digit.
AWKWARD_MODELS = """\
import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel


class Style(SQLModel, table=True):
    __tablename__ = "style"
    id: int | None = Field(default=None, primary_key=True)
    end: str


class UserEvent(SQLModel, table=True):
    __tablename__ = "user-event"
    __table_args__ = {"schema": "audit"}
    id: int | None = Field(default=None, primary_key=True)
    style_id: int = Field(foreign_key="style.id", unique=True)
    größe: int = Field(sa_column=Column("größe", sa.Integer, nullable=False))
    pk: int = Field(sa_column=Column("pk", sa.Integer, nullable=False))
    first: str = Field(sa_column=Column("1st name", sa.String, nullable=False))
"""
NOTE_MODEL = """\
from sqlmodel import Field, SQLModel


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id")
"""
SCHEMA_DOCS_TEST = "tests/test_migration_gate.py::test_schema_docs_are_current"


def mermaid_blocks(page: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", page, flags=re.MULTILINE | re.DOTALL)


def schema_docs_check(project: Project) -> subprocess.CompletedProcess[str]:
    return project.run(
        str(project.bin / "pytest"), "-q", "-p", "no:cacheprovider", SCHEMA_DOCS_TEST
    )


def page(project: Project) -> str:
    return (project.backend / "docs" / "schema.md").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def render_mermaid(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], list[Path]]:
    """Markdown in, one SVG per Mermaid block out, by mermaid-cli in headless chromium."""
    mmdc = os.environ.get("MERMAID_CLI") or shutil.which(
        "mmdc", path=MERMAID_CLI_HOME / "node_modules/.bin"
    )
    chromium = os.environ.get("PUPPETEER_EXECUTABLE_PATH") or shutil.which("chromium")
    if not (mmdc and chromium):
        missing = "mermaid-cli (mmdc)" if not mmdc else "chromium"
        reason = f"{missing} not found: .ci/run installs it (apt chromium, npm mermaid-cli)"
        if os.environ.get("REQUIRE_MERMAID_RENDERER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    config = tmp_path_factory.mktemp("mermaid") / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": chromium, "args": CHROMIUM_FLAGS}))

    def render(markdown: Path) -> list[Path]:
        target = markdown.with_suffix(".svg")
        result = subprocess.run(
            [mmdc, "--puppeteerConfigFile", config, "-i", markdown, "-o", target, "-q"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return sorted(markdown.parent.glob(f"{markdown.stem}-*.svg"))

    return render


def test_a_fresh_project_ships_a_current_page_with_no_tables_yet(
    render_project: Callable[..., Project],
) -> None:
    project = render_project()
    project.install()
    assert "_No tables yet._" in page(project) and "_No revisions yet._" in page(project)
    assert mermaid_blocks(page(project)) == [], "no empty or broken diagram"
    result = schema_docs_check(project)
    assert result.returncode == 0, output(result)


def test_a_stale_page_fails_the_gate_in_one_line_until_the_session_rewrites_it(
    project_with_history: Project,
) -> None:
    project = project_with_history
    current = schema_docs_check(project)
    assert current.returncode == 0, output(current)
    [ids] = [re.findall(r"\br_([0-9a-f]{12})\[", page(project))]
    assert len(ids) == 3, page(project)

    project.write_model("note", NOTE_MODEL)
    stale = schema_docs_check(project)
    assert stale.returncode == 1, output(stale)
    assert "FAILED tests/test_migration_gate.py::test_schema_docs_are_current" in (stale.stdout)
    # The failure's own line; pytest's summary repeats it after "FAILED ..." (in full under CI).
    [reason] = [
        line
        for line in stale.stdout.splitlines()
        if "docs/schema.md is" in line and not line.startswith("FAILED ")
    ]
    assert reason == (
        "docs/schema.md is out of date with the models or revisions: run `uvx nox -s schema-docs`"
    )
    assert "Traceback" not in output(stale) and "def test_" not in stale.stdout

    session = project.run("uvx", "nox", "-s", "schema-docs")
    assert session.returncode == 0, output(session)
    assert '"note" {' in page(project)
    assert '"user" ||--o{ "note" : "user_id"' in page(project)
    assert schema_docs_check(project).returncode == 0

    write_revision(project, "5ide5ide5ide", head_revision(project), "pass", "pass")
    assert schema_docs_check(project).returncode == 1, "a new revision makes the page stale too"
    project.write_schema_docs()
    assert "r_5ide5ide5ide" in page(project)

    (project.backend / "docs" / "schema.md").unlink()
    missing = schema_docs_check(project)
    assert "docs/schema.md is missing: run `uvx nox -s schema-docs`" in missing.stdout


def test_a_revision_that_does_not_load_is_named_in_one_line(project_with_history: Project) -> None:
    path = write_revision(
        project_with_history, "b40b40b40b40", head_revision(project_with_history), "pass", "pass"
    )
    path.write_text(path.read_text().replace("def upgrade() -> None:", "def upgrade() -> None"))
    result = project_with_history.gate_command("schema-docs")
    assert result.returncode == 1
    [line] = output(result).strip().splitlines()
    assert line.startswith("schema-docs: SyntaxError: ") and path.name in line, line


def test_names_mermaid_cannot_take_as_they_are_are_quoted_or_renamed(
    project: Project, render_mermaid: Callable[[Path], list[Path]], tmp_path: Path
) -> None:
    project.write_model("awkward", AWKWARD_MODELS)
    project.write_schema_docs()
    [diagram] = mermaid_blocks(page(project))
    assert '  "style" {\n    integer id PK\n    varchar end\n  }' in diagram
    assert '"audit.user-event" {' in diagram
    assert "    integer größe\n" in diagram
    assert '    integer _pk "column: pk"\n' in diagram
    assert '    varchar _1st_name "column: 1st name"\n' in diagram
    assert '"style" ||--o| "audit.user-event" : "style_id"' in diagram

    markdown = tmp_path / "awkward.md"
    markdown.write_text(page(project), encoding="utf-8")
    [svg] = render_mermaid(markdown)
    drawn = svg.read_text(encoding="utf-8")
    for label in ("audit.user-event", "größe", "column: 1st name", "style_id"):
        assert label in drawn, f"{label!r} is not in the rendered picture"


def test_the_renderer_rejects_what_mermaid_cannot_parse(
    render_mermaid: Callable[[Path], list[Path]], tmp_path: Path
) -> None:
    """Unquoted, ``style`` is a Mermaid keyword: what the quoting above is for."""
    markdown = tmp_path / "unquoted.md"
    markdown.write_text("```mermaid\nerDiagram\n  style {\n    integer id PK\n  }\n```\n")
    with pytest.raises(AssertionError, match=r"Parse error|Lexical error"):
        render_mermaid(markdown)


def test_fifty_tables_get_one_diagram_per_module_and_every_picture_renders(
    project_with_history: Project, render_mermaid: Callable[[Path], list[Path]], tmp_path: Path
) -> None:
    project = project_with_history
    write_model_set(project.backend / project.package / "models", tables=50)
    base = head_revision(project)
    write_revision(project, "babababababa", base, "pass", "pass")
    write_revision(project, "cdcdcdcdcdcd", base, "pass", "pass")
    merge = project.alembic("merge", "heads", "-m", "merge heads", "--rev-id", "e0e0e0e0e0e0")
    assert merge.returncode == 0, output(merge)

    started = time.perf_counter()
    project.write_schema_docs()
    check = schema_docs_check(project)
    elapsed = time.perf_counter() - started
    assert check.returncode == 0, output(check)

    sections = re.findall(r"^### (\S+)$", page(project), flags=re.MULTILINE)
    assert sections == [f"{project.package}.models.area_{n:02d}" for n in range(1, 6)] + [
        f"{project.package}.models.team",
        f"{project.package}.models.user",
    ]
    graph = mermaid_blocks(page(project))[-1]
    assert 'r_e0e0e0e0e0e0{{"e0e0e0e0e0e0: merge heads (head)"}}' in graph
    assert "r_babababababa --> r_e0e0e0e0e0e0" in graph
    assert "r_cdcdcdcdcdcd --> r_e0e0e0e0e0e0" in graph

    markdown = tmp_path / "schema.md"
    markdown.write_text(page(project), encoding="utf-8")
    pictures = render_mermaid(markdown)
    assert len(pictures) == len(mermaid_blocks(page(project))) == 8
    sizes = {svg.name: svg.stat().st_size for svg in pictures}
    assert all(size > 5_000 for size in sizes.values()), sizes
    print(f"50 tables: schema-docs and its check {elapsed:.2f} s; SVG bytes {sizes}")
