"""After `copier update`: say in one line which files hold conflict markers.

Copier marks such files unmerged in git's index but prints nothing about them.
copier.yml's `_migrations` runs this from the project root, after the merge.
"""

from __future__ import annotations

import subprocess


def unmerged_files() -> list[str]:
    listed = subprocess.run(
        ["git", "diff", "--name-only", "--diff-filter=U", "--relative", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(set(filter(None, listed.split("\0"))))


def main() -> None:
    conflicted = unmerged_files()
    if conflicted:
        print(
            f"copier update: {len(conflicted)} file(s) hold conflict markers; keep the lines "
            f"you want, delete the <<<<<<< ======= >>>>>>> lines, then git add: "
            + ", ".join(conflicted)
        )
    else:
        print("copier update: merged without conflicts; review `git diff`, then run `uvx nox`")


if __name__ == "__main__":
    main()
