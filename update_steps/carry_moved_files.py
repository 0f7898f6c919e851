"""After `copier update`: carry your edits of a template-owned file that moved.

Copier deletes a file at its old path when the template no longer ships it
there, and the project's edits go with it. For each move below this step
3-way merges the project's old copy into the file at its new path: the base is
the old file as the project's version shipped it, read from the template's
history. A file you never edited needs nothing; an edit that cannot be merged
(or a file the template split in two) is named in one line, with the git
command that shows it. Moves older than the version updated from find nothing
to do, so the step runs after every update (versions before the first tag are
commits, which a ``version:`` gate cannot order).

copier.yml's `_migrations` runs this from the project root:
``python carry_moved_files.py TEMPLATE_CHECKOUT VERSION_FROM``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from project_state import say

GATE_BEFORE = "backend/tests/migration_gate"
GATE_NOW = "backend/migration_gate"
# Old path -> new path, for template-owned files that moved whole.
MOVED = {
    f"{GATE_BEFORE}/cli.py": f"{GATE_NOW}/__main__.py",
    f"{GATE_BEFORE}/lint.py": f"{GATE_NOW}/lint.py",
    f"{GATE_BEFORE}/history.py": f"{GATE_NOW}/applied_revisions.py",
    f"{GATE_BEFORE}/revisions.py": f"{GATE_NOW}/revisions.py",
    f"{GATE_BEFORE}/review.py": f"{GATE_NOW}/review.py",
    f"{GATE_BEFORE}/squash.py": f"{GATE_NOW}/squash.py",
    f"{GATE_BEFORE}/diagrams.py": f"{GATE_NOW}/diagrams.py",
    f"{GATE_BEFORE}/schema_state.py": f"{GATE_NOW}/schema_state.py",
    f"{GATE_BEFORE}/postgres.py": f"{GATE_NOW}/servers.py",
}
# Old path -> where its code went, for files that were split or rendered from Jinja.
REWRITTEN = {
    f"{GATE_BEFORE}/test_migrations.py": f"{GATE_NOW}/climb.py and checks.py",
    f"{GATE_BEFORE}/test_schema_docs.py": f"{GATE_NOW}/checks.py",
    f"{GATE_BEFORE}/test_conflict_markers.py": f"{GATE_NOW}/checks.py",
    f"{GATE_BEFORE}/fixtures.py": f"{GATE_NOW}/pytest_plugin.py and project.py",
    f"{GATE_BEFORE}/schema_docs.py": f"{GATE_NOW}/schema_docs.py",
}


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """git, in bytes: a file is compared and merged as the project stores it."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)


def before_update(path: str) -> bytes | None:
    """The project's file at ``path`` in the commit the update started from."""
    shown = git("show", f"HEAD:./{path}")
    return shown.stdout if shown.returncode == 0 else None


def shipped(template: Path, version: str, path: str, package: str) -> bytes | None:
    """``path`` as ``version`` of the template rendered it (a ``.jinja`` file: its one
    ``{{ package_name }}`` substitution; anything more and it is unknown)."""
    source = f"{version}:template/{path.replace('/' + package + '/', '/{{ package_name }}/')}"
    plain = git("show", source, cwd=template)
    if plain.returncode == 0:
        return plain.stdout
    jinja = git("show", source + ".jinja", cwd=template)
    if jinja.returncode != 0:
        return None
    text = jinja.stdout.replace(b"{{ package_name }}", package.encode())
    return None if b"{{" in text or b"{%" in text else text


def package_name() -> str:
    for line in Path(".copier-answers.yml").read_text().splitlines():
        if line.startswith("package_name:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return ""


def merge_into(new: Path, base: bytes, ours: bytes) -> bool:
    """3-way merge ``ours`` (the project's old file) into ``new``; False on a conflict."""
    with tempfile.TemporaryDirectory() as tmp:
        base_file, ours_file = Path(tmp, "base"), Path(tmp, "ours")
        base_file.write_bytes(base)
        ours_file.write_bytes(ours)
        merged = git(
            "merge-file",
            *("-L", "after updating", "-L", "last update", "-L", "before updating"),
            str(new),
            str(base_file),
            str(ours_file),
        )
    return merged.returncode == 0


def main(template: Path, version_from: str) -> None:
    package = package_name()
    for old, new in {**MOVED, **REWRITTEN}.items():
        ours = before_update(old)
        if ours is None or Path(old).exists():
            continue  # not in this project, or this update did not move it
        if ours == shipped(template, version_from, old, package):
            continue  # never edited: the new file is all there is
        show = f"git show HEAD:./{old}"
        if old in MOVED and Path(new).is_file():
            base = shipped(template, version_from, old, package) or b""
            if merge_into(Path(new), base, ours):
                say(f"your edits of {old} moved with it into {new}")
            else:
                say(
                    f"your edits of {old} conflict with the template's in {new}: "
                    "keep the lines you want, delete the <<<<<<< ======= >>>>>>> lines"
                )
        else:
            say(
                f"you had edited {old}, whose code is now in {new}; "
                f"carry your edits over by hand (`{show}` shows them)"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
