"""After `copier update`: settle a conflict in pyproject.toml's dependencies that only a
template line moved to the top has caused.

The template adds its dependency lines at the top, and `uv add` appends the
project's at the end. A version that moves one of its own lines from the end to
the top (as `sqlalchemy[asyncio]` moved for psycopg projects) removes a line
next to the project's appended ones, and git writes conflict markers around
them. Such a conflict has one answer: the moved line once, where the template
now has it, and the project's lines at the end, in their order. Any conflict
with another difference in it stays for the user to resolve.

copier.yml's `_migrations` runs this from the project root, after the merge.
"""

from __future__ import annotations

from project_state import git, say, unmerged_files

PYPROJECT = "backend/pyproject.toml"
OURS, SEPARATOR, THEIRS = "<<<<<<< before updating", "=======", ">>>>>>> after updating"


def dependency_array(lines: list[str]) -> tuple[int, int] | None:
    """The indexes of ``dependencies = [`` and of its closing ``]``."""
    starts = [i for i, line in enumerate(lines) if line.startswith("dependencies = [")]
    if len(starts) != 1:
        return None
    ends = [i for i in range(starts[0], len(lines)) if lines[i].rstrip() == "]"]
    return (starts[0], ends[0]) if ends else None


def dependency_lines(text: str) -> set[str] | None:
    lines = text.split("\n")
    array = dependency_array(lines)
    return None if array is None else {line.strip() for line in lines[array[0] + 1 : array[1]]}


def requirement(line: str) -> str:
    """``"sqlalchemy[asyncio]>=2.0",  # why`` -> ``sqlalchemy[asyncio]>=2.0``"""
    return line.split("#", 1)[0].strip().rstrip(",").strip().strip("\"'")


def conflict_blocks(lines: list[str]) -> tuple[list[str], list[tuple[list[str], list[str]]]]:
    """The lines outside conflicts (each conflict as one OURS line) and each conflict's sides."""
    outside: list[str] = []
    blocks: list[tuple[list[str], list[str]]] = []
    side: list[str] | None = None
    for line in lines:
        if line == OURS:
            blocks.append(([], []))
            side = blocks[-1][0]
            outside.append(OURS)
        elif line == SEPARATOR and side is not None:
            side = blocks[-1][1]
        elif line == THEIRS and side is not None:
            side = None
        elif side is not None:
            side.append(line)
        else:
            outside.append(line)
    return outside, blocks


def settle(text: str, base: str) -> tuple[str, list[str]] | None:
    """``text`` with each conflict settled, and the moved lines; None when one cannot be.

    ``base`` is the file as the project's old version rendered it. A conflict is
    settled only when the template's side holds nothing but moved lines, and the
    project's side holds moved lines and lines the project added (none from the base).
    """
    outside, blocks = conflict_blocks(text.split("\n"))
    array = dependency_array(outside)
    base_lines = dependency_lines(base)
    if array is None or base_lines is None or not blocks:
        return None
    start, end = array
    if any(line == OURS for line in outside[:start] + outside[end:]):
        return None
    kept = {line.strip() for line in outside[start + 1 : end] if line != OURS}
    moved: set[str] = set()
    resolutions: list[list[str]] = []
    for ours, theirs in blocks:
        moved_here = {line.strip() for line in ours + theirs if line.strip() in kept - {""}}
        added = [line for line in ours if line.strip() not in kept]
        if not moved_here or any(line.strip() not in kept for line in theirs):
            return None
        if any(line.strip() in base_lines for line in added):
            return None  # a line the template removed or changed: the user's call
        moved |= {requirement(line) for line in moved_here}
        resolutions.append(added)
    settled: list[str] = []
    for line in outside:
        settled += resolutions.pop(0) if line == OURS else [line]
    return "\n".join(settled), sorted(moved)


def main() -> None:
    if PYPROJECT not in unmerged_files():
        return
    base = git("show", f":1:./{PYPROJECT}")  # Copier records the old version's file as stage 1
    with open(PYPROJECT, encoding="utf-8") as file:
        outcome = settle(file.read(), base.stdout) if base.returncode == 0 else None
    if outcome is None:
        return
    text, moved = outcome
    with open(PYPROJECT, "w", encoding="utf-8") as file:
        file.write(text)
    git("reset", "--quiet", "--", PYPROJECT)  # no longer unmerged; the change stays unstaged
    say(
        f"{PYPROJECT}: the template moved {', '.join(moved)} to the top of the dependencies; "
        "your lines stay at the end (the conflict this caused is settled)"
    )


if __name__ == "__main__":
    main()
