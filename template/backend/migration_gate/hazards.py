"""Hazards a revision accepts on the record: squawk's rules and the gate's own (template-owned).

A revision accepts a rule, for itself only, with a reason that stays in its file::

    accepted_hazards = {"ban-drop-column": "user.nickname unread since 2026.11 (PR #412)"}

squawk's rules are checked by ``lint-migrations`` (``lint.py``). The gate's own
rules are measured where the revision runs on rows, in the gate's climb
(``on_rows.py``), and fail there: an accepted rule that no longer fires fails
as a stale squawk acceptance does, so that it cannot hide the next hazard.
"""

from __future__ import annotations

from alembic.script import Script

from .revisions import describe

# The gate's own rules, with what makes each one fire.
GATE_RULES = {
    "table-rewrite": "the revision rewrites a table that holds rows",
    "lossy-downgrade": "the downgrade loses data that its upgrade did not create, or cannot "
    "run on what its upgrade allowed",
    "breaks-running-release": "the release that runs now fails on the schema it makes",
}


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
