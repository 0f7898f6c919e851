"""After `copier update`: give a starter file its user never edited the current text.

A starter is rendered on copy and then belongs to the project (`_skip_if_exists`
in copier.yml), so no update rewrites it. Left as rendered, it would keep an old
version's text for good, and the next lint rules could turn the project's gate
red on a file nobody wrote. A starter byte-identical to a text the template
once shipped was never edited: it gets the current text. Any other content is
the user's and stays.

copier.yml's `_migrations` runs this from the project root:
``python refresh_untouched_starters.py TEMPLATE_CHECKOUT``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Starters without a .jinja suffix: what the project received is the source text.
# docs/schema.md is generated once a project has tables or revisions
# (refresh_generated_files.py); until then it is the starter page.
STARTERS = ["backend/migrations/env_hooks.py", "backend/docs/schema.md"]


def git_show(template: Path, commit: str, path: str) -> bytes | None:
    shown = subprocess.run(
        ["git", "-C", str(template), "show", f"{commit}:template/{path}"],
        capture_output=True,
        check=False,
    )
    return shown.stdout if shown.returncode == 0 else None


def shipped_texts(template: Path, path: str) -> set[bytes]:
    """Every text of ``path`` in the template's history."""
    commits = subprocess.run(
        ["git", "-C", str(template), "log", "--format=%H", "--", f"template/{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {text for commit in commits if (text := git_show(template, commit, path)) is not None}


def main(template: Path) -> None:
    for path in STARTERS:
        project_file = Path(path)
        current = template / "template" / path
        if not (project_file.is_file() and current.is_file()):
            continue
        text = project_file.read_bytes()
        if text != current.read_bytes() and text in shipped_texts(template, path):
            project_file.write_bytes(current.read_bytes())
            print(f"copier update: {path} was never edited; it now has the template's new text")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
