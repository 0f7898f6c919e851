"""No git-tracked file holds conflict markers (template-owned).

`copier update` writes them where your edit and a template fix touch the same
lines, and `git commit -a` commits them unless the pre-commit hook is
installed; this test catches them in CI. Outside a git checkout there is
nothing to check.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[2]
# A line that starts a conflict's "ours" or ends its "theirs" side.
MARKER_LINE = r"^(<{7}|>{7})( |$)"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=BACKEND, capture_output=True, text=True, check=False)


def in_git_checkout() -> bool:
    try:
        return git("rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    except FileNotFoundError:  # no git on this machine
        return False


def test_no_tracked_file_holds_conflict_markers() -> None:
    if not in_git_checkout():
        return
    found = git("grep", "-l", "-z", "-I", "--full-name", "-E", MARKER_LINE, "--", ":/")
    if found.returncode > 1:  # 1: searched, no match
        pytest.fail(f"git grep failed: {found.stderr.strip()}", pytrace=False)
    files = sorted(set(filter(None, found.stdout.split("\0"))))
    if files:
        pytest.fail(
            f"conflict markers in {len(files)} git-tracked file(s): {', '.join(files)}; "
            "keep the lines you want and delete the marker lines "
            "(docs/migrations.md, 'Updating the template')",
            pytrace=False,
        )
