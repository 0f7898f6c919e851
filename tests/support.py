"""What the template's tests and the demo share: snapshot, render, install, run.

A user's story is render -> install -> add a model -> autogenerate -> upgrade ->
check; these helpers are its verbs, each running the real tool.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import copier
import psycopg

REPO = Path(__file__).resolve().parents[1]
SERVERS_MODULE = REPO / "template" / "backend" / "migration_gate" / "servers.py"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}
# Rendered projects install for this interpreter; uv must not download one.
PROJECT_PYTHON = "3.12"


def load_gate_module(name: str) -> ModuleType:
    """A standalone module of the rendered projects' gate (``servers``, ``rows``), loaded
    from the template, so that both sides share one implementation."""
    path = SERVERS_MODULE.with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"template_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_servers_module() -> ModuleType:
    """The rendered projects' own test-server module."""
    return load_gate_module("servers")


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def working_tree_files(repo: Path) -> list[str]:
    listed = git(repo, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    return [name for name in listed.split("\0") if name and (repo / name).is_file()]


def snapshot_template(dst: Path, tag: str | None = None) -> Path:
    """Copy this repository's working tree (committed or not) into a fresh git repo."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in working_tree_files(REPO):
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    git(dst, "init", "--quiet", "--initial-branch=main")
    git(dst, "add", "--all")
    git(dst, "commit", "--quiet", "--no-verify", "-m", "template snapshot")
    if tag:
        git(dst, "tag", tag)
    return dst


def render(src: Path, dst: Path, vcs_ref: str = "HEAD", **answers: object) -> Path:
    """``copier copy --trust --defaults`` with the given answers."""
    copier.run_copy(
        str(src), dst, data=answers, defaults=True, unsafe=True, vcs_ref=vcs_ref, quiet=True
    )
    return dst


@contextmanager
def reachable_folder() -> Iterator[Path]:
    """A temporary folder that others may enter: as root, a project's dev-db server runs as
    ``postgres``, which cannot reach pytest's own temporary folders (private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="reachable-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def uv_env() -> dict[str, str]:
    """The environment for a rendered project's commands: not the venv running the tests.

    Python writes the bytecode of what it imports, as on a developer's machine,
    even where the shell running the tests sets PYTHONDONTWRITEBYTECODE (as CI
    does): a project's first command compiles what it needs, and the hundreds
    after it start fast, without compiling all of every venv at install.
    """
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    # The tests that walk the loop against DATABASE_URL keep comparing with it;
    # tests/test_dev_loop.py clears this, for autogenerate's database at head.
    env["MIGRATION_AUTOGENERATE_AGAINST"] = "DATABASE_URL"
    for inherited in (
        "VIRTUAL_ENV",
        "UV_PROJECT_ENVIRONMENT",
        "UV_PYTHON",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
    ):
        env.pop(inherited, None)
    return env


@dataclass
class Project:
    """A rendered project; commands run from ``backend/`` as the README says."""

    root: Path
    package: str = "my_service"
    env: dict[str, str] = field(default_factory=dict)
    python: str = PROJECT_PYTHON  # the project's python_version answer

    @property
    def backend(self) -> Path:
        return self.root / "backend"

    @property
    def bin(self) -> Path:
        return self.backend / ".venv" / "bin"

    def install(self) -> None:
        """``uv sync``: the documented ``--compile-bytecode`` runs as written in
        test_workflow.py; here each import compiles as it first runs (``uv_env``), also in
        a project of an older version whose ``[tool.uv]`` still sets compile-bytecode."""
        subprocess.run(
            ["uv", "sync", "--quiet", "--no-compile-bytecode", "--python", self.python],
            cwd=self.backend,
            env={**uv_env(), **self.skipped_groups()},
            check=True,
        )

    def skipped_groups(self) -> dict[str, str]:
        """The tests' servers run from the machine's binaries: the local-postgres group's
        PostgreSQL wheel (3,400 files) would only slow down each install and ``uv run``."""
        pyproject = self.backend / "pyproject.toml"
        defined = pyproject.is_file() and "local-postgres = [" in pyproject.read_text()
        return {"UV_NO_GROUP": "local-postgres"} if defined else {}

    def environment(self, **extra_env: str) -> dict[str, str]:
        env = {**uv_env(), **self.skipped_groups(), **self.env, **extra_env}
        env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
        return env

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=self.backend,
            env=self.environment(**extra_env),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[str]:
        """Like ``run``, but in the background."""
        return subprocess.Popen(
            list(args),
            cwd=self.backend,
            env=self.environment(**extra_env),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def alembic(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "alembic"), *args, **extra_env)

    def write_model(self, module: str, source: str) -> Path:
        path = self.backend / self.package / "models" / f"{module}.py"
        path.write_text(source)
        return path

    def revision_files(self) -> list[Path]:
        return sorted((self.backend / "migrations" / "versions").glob("*.py"))

    def gate_command(
        self, command: str, *args: str, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        """``python -m migration_gate COMMAND ARGS``, as its nox sessions run it."""
        python = str(self.bin / "python")
        return self.run(python, "-m", "migration_gate", command, *args, **extra_env)

    def write_schema_docs(self) -> None:
        """What a user runs after changing models or revisions: ``uvx nox -s schema-docs``."""
        result = self.gate_command("schema-docs")
        assert result.returncode == 0, output(result)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_gate_passes(project: Project, database_url: str) -> None:
    """What a user runs before pushing: the schema page, then the gate's tests and
    lint-migrations on the server of ``database_url``; both must pass."""
    project.write_schema_docs()
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    gate = project.run(
        str(project.bin / "pytest"), "-q", "-p", "no:cacheprovider", TEST_DATABASE_URL=server
    )
    assert gate.returncode == 0, output(gate)
    assert "not compared by definition" not in output(gate), output(gate)
    lint = project.gate_command("lint-migrations")
    assert lint.returncode == 0, output(lint)


def alembic_ok(project: Project, *args: str, **env: str) -> str:
    """Run ``alembic ARGS`` in the project; fail the test with its output unless it succeeds."""
    result = project.alembic(*args, **env)
    assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{output(result)}"
    return output(result)


def one_failure_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """It failed with one ``FAILED: ...`` line that holds ``expected``, and no traceback."""
    text = output(result)
    assert result.returncode != 0, text
    assert "Traceback" not in text
    failures = [line for line in text.splitlines() if line.startswith("FAILED")]
    assert len(failures) == 1, text
    for fragment in expected:
        assert fragment in failures[0], text
    return failures[0]


USER_MODEL = """\
from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str
"""
TEAM_MODEL = """\
from sqlmodel import Field, SQLModel


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str
"""


def public_tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def version_rows(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def write_revision(project: Project, rev: str, down: str, upgrade: str, downgrade: str) -> Path:
    path = project.backend / "migrations" / "versions" / f"{rev}_handwritten.py"
    path.write_text(
        f'"""handwritten"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {rev!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n    {upgrade}\n\n\ndef downgrade() -> None:\n    {downgrade}\n"
    )
    return path


def add_revision(
    project: Project, rev: str, upgrade: str, downgrade: str, accepted: str = ""
) -> Path:
    """A hand-written revision on top of head; ``accepted`` is its ``accepted_hazards`` line."""
    path = write_revision(project, rev, head_revision(project), upgrade, downgrade)
    if accepted:
        source = path.read_text()
        path.write_text(source.replace("depends_on = None\n", f"depends_on = None\n{accepted}\n"))
    return path


def revision_ids(path: Path) -> tuple[str, tuple[str, ...]]:
    """A revision file's ``revision`` and its ``down_revision`` ids, as the file assigns them."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = ast.literal_eval(value)
    down = found.get("down_revision")
    parents = (down,) if isinstance(down, str) else tuple(down or ())  # type: ignore[arg-type]
    return str(found["revision"]), parents


def head_revision(project: Project) -> str:
    """The one head of the project's revisions, read from their files: the revision that no
    other revises (``alembic heads`` says the same, in a process of its own)."""
    ids = [revision_ids(path) for path in project.revision_files()]
    revised = {parent for _, parents in ids for parent in parents}
    [head] = [revision for revision, _ in ids if revision not in revised]
    return head


MARKED_BLOCK = re.compile(r"<!-- recipe: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def recipe_blocks(doc: Path) -> dict[str, list[str]]:
    """Each code block of a rendered project's doc that follows a ``<!-- recipe: NAME -->``
    marker, by marker, in the doc's order: tests run the doc's code as written."""
    blocks: dict[str, list[str]] = {}
    for marker, code in MARKED_BLOCK.findall(doc.read_text()):
        blocks.setdefault(marker, []).append(code)
    return blocks


# What a revision may import: Alembic, SQLAlchemy and its dialects, the enum helper.
PORTABLE_IMPORTS = ("alembic", "sqlalchemy", "alembic_postgresql_enum", "collections")


def portability_problems(source: str, *extension_packages: str) -> list[str]:
    """Imports of anything but Alembic, SQLAlchemy (and ``extension_packages``), and names
    the revision never defines.

    The second catch is the one that matters: Alembic writes an unknown type as
    a dotted path (``advanced_alchemy.types.guid.GUID()``) without importing it,
    and the revision fails with a NameError only when it runs.
    """
    tree = ast.parse(source)
    problems = []
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            for module in modules:
                if (module or "").split(".")[0] not in (*PORTABLE_IMPORTS, *extension_packages):
                    problems.append(f"imports {module}")
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    undefined = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined
    ]
    for node in sorted(undefined, key=lambda node: (node.lineno, node.col_offset)):
        problems.append(f"line {node.lineno}: {node.id} is never imported")
    return problems
