"""Hazards a revision accepts on the record: squawk's rules and the gate's own (template-owned).

A revision accepts a rule, for itself only, with a reason that stays in its file::

    accepted_hazards = {"ban-drop-column": "user.nickname unread since 2026.11 (PR #412)"}

squawk's rules are checked by ``lint-migrations`` (``lint.py``). The gate's own
rules are measured where the revision runs on rows, in the gate's climb
(``on_rows.py``), and fail there: an accepted rule that no longer fires fails
as a stale squawk acceptance does, so that it cannot hide the next hazard.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from alembic.script import Script

from .revisions import describe

# The gate's own rules, with what makes each one fire.
GATE_RULES = {
    "table-rewrite": "the revision rewrites a table that holds rows",
    "lossy-downgrade": "the downgrade loses data that its upgrade did not create, or cannot "
    "run on what its upgrade allowed",
    "breaks-running-release": "the release that runs now fails on the schema it makes",
}
# The rehearsal's evidence (``uvx nox -s rehearse``): no row of a copy of production violates
# a constraint the revision adds. The reason is the line the rehearsal printed; it names
# the upgrade it rehearsed, so that an edit of the upgrade makes it stale.
ROWS_RULES = {
    "rows-unique": "rows share the key of a unique constraint or index the revision adds",
    "rows-not-null": "rows are NULL in a column the revision makes NOT NULL",
    "rows-foreign-key": "rows point at no row through a foreign key the revision adds",
    "rows-check": "rows fail a CHECK constraint the revision adds",
}
GATE_RULES |= ROWS_RULES
REHEARSED = re.compile(r"\(rehearsal on .+, upgrade ([0-9a-f]{8})\)$")


class DeclarationError(Exception):
    """``accepted_hazards`` is malformed; the message is one line that names the revision."""


def accepted_hazards(revision: Script) -> dict[str, str]:
    declared = getattr(revision.module, "accepted_hazards", {})
    if not isinstance(declared, dict) or not all(
        isinstance(rule, str) and isinstance(reason, str) for rule, reason in declared.items()
    ):
        raise DeclarationError(
            f"{describe(revision)}: accepted_hazards must be a dict of rule name to reason"
        )
    for rule, reason in declared.items():
        if not reason.strip():
            raise DeclarationError(
                f"{describe(revision)}: accepted_hazards[{rule!r}] needs a reason: "
                "why is it safe here?"
            )
    return declared


def how_to_accept(rule: str) -> str:
    return f'accepted_hazards = {{"{rule}": "<why it is safe>"}}'


def stale(named: str, rule: str, why: str) -> str:
    """The line for an accepted rule that did not fire, in the revision ``named``."""
    return (
        f"{named}: accepted_hazards lists {rule}, but {why}: remove it, "
        "so that it cannot hide the next hazard"
    )


def upgrade_fingerprint(revision: Script) -> str:
    """The revision's ``upgrade()`` as Python parses it: formatting and comments aside, any
    edit of it changes this."""
    tree = ast.parse(Path(revision.path).read_text())
    upgrade = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "upgrade"
        ),
        None,
    )
    return hashlib.sha256(ast.dump(upgrade or tree).encode()).hexdigest()[:8]


def evidence_mark(revision: Script, on: str, day: str) -> str:
    """What ends a rehearsal's reason: where and when, and which upgrade it ran."""
    return f"(rehearsal on {on}, {day}, upgrade {upgrade_fingerprint(revision)})"


def evidence_problem(revision: Script, rule: str, reason: str) -> str | None:
    """Why an accepted rows-* rule is not evidence of this revision's upgrade, if it is not."""
    rehearsed = REHEARSED.search(reason.strip())
    if rehearsed is None:
        return (
            f"{describe(revision)}: accepted_hazards[{rule!r}] must be the evidence line that "
            "`uvx nox -s rehearse -- URL` printed for it, ending in (rehearsal on ..., upgrade ...)"
        )
    if rehearsed.group(1) != upgrade_fingerprint(revision):
        return stale(
            describe(revision),
            rule,
            "its upgrade() changed since that rehearsal: rehearse it again",
        )
    return None
