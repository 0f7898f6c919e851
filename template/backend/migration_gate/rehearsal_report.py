"""The rehearsal's report: one line per revision, the job summary, the JSON file, the evidence.

Template-owned (``rehearsal.py``). Nothing here holds a row value, a URL or a
password: counts, names of tables, columns and constraints, the revisions' own
statements with their string literals elided, and ``host:port/dbname``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script

from .hazards import evidence_mark
from .rehearsal_watch import SAMPLE_SECONDS, Step
from .revisions import describe
from .trace import LOCK_MODES, STRENGTH, Measured
from .violations import Constraint, plain

# How a revision's rehearsal ended.
APPLIED = "applied"
FAILED = "failed"
VIOLATED = "not run: rows violate what it adds"
NOT_RUN = "not run: an earlier revision stopped the rehearsal"


@dataclass
class Rehearsed:
    """One new revision: what it adds and the rows that violate it, and how its run went."""

    revision: Script
    constraints: list[Constraint] = field(default_factory=list)
    outcome: str = NOT_RUN
    seconds: float | None = None
    steps: list[Step] = field(default_factory=list)
    rewrote: Measured | None = None
    waited: dict[str, Any] | None = None  # the running release: longest_ms, table, passes
    not_measured: str | None = None  # why the running release's wait is unknown
    error: str | None = None

    def locks(self) -> dict[tuple[str, str], float]:
        """Each (table, mode) the revision held, and for how long in all."""
        held: dict[tuple[str, str], float] = {}
        for step in self.steps:
            for key, seconds in step.locks.items():
                held[key] = held.get(key, 0.0) + seconds
        return held

    def violations(self) -> list[Constraint]:
        return [constraint for constraint in self.constraints if constraint.fails()]


def took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def lock_phrase(held: dict[tuple[str, str], float]) -> str:
    if not held:
        return "no lock beyond ACCESS SHARE on a table"
    phrases = []
    for (table, mode), seconds in sorted(held.items(), key=lambda item: -STRENGTH[item[0][1]]):
        name, blocks = LOCK_MODES[mode]
        phrases.append(f"{name} on {plain(table)} {took(seconds)} ({blocks})")
    return ", ".join(phrases)


def rewrite_phrase(measured: Measured | None) -> str:
    if measured is None:
        return "rewrites not read"
    lines = [line for line in measured.lines() if not line.startswith("takes ")]
    return "; ".join(lines) if lines != ["no lock on a table with rows"] else "rewrote nothing"


def wait_phrase(item: Rehearsed) -> str:
    if item.not_measured:
        return f"the running release was not measured: {item.not_measured}"
    if item.waited is None:
        return "the running release was not measured"
    if not item.waited.get("table"):
        return "it touches no table the running release maps"
    return (
        f"the running release waited at most {item.waited['longest_ms']:.0f} ms "
        f"(on {item.waited['table']}, {item.waited['passes']} passes)"
    )


def count_phrase(constraint: Constraint) -> str:
    if constraint.not_counted:
        return f"{plain(constraint.table)} {plain(constraint.name)}: {constraint.not_counted}"
    phrase = constraint.finding()
    return phrase if constraint.enforced else f"{phrase} (NOT VALID: existing rows stay)"


def line(item: Rehearsed) -> str:
    """``9c8fa1b97a2c add email unique: 4.2 s; SHARE UPDATE EXCLUSIVE on customer ...``."""
    head = f"{item.revision.revision} {item.revision.doc}"
    counts = "; ".join(count_phrase(c) for c in item.constraints) or "adds no constraint on rows"
    if item.outcome != APPLIED:
        why = f": {item.error}" if item.error else ""
        return f"{head}: {item.outcome}{why}; {counts}"
    return (
        f"{head}: {took(item.seconds or 0)}; {lock_phrase(item.locks())}; "
        f"{rewrite_phrase(item.rewrote)}; {wait_phrase(item)}; {counts}"
    )


def violation_lines(item: Rehearsed) -> list[str]:
    """One line per violated constraint: table, column or constraint, count, recipe."""
    return [
        f"{describe(item.revision)}: {plain(c.table)} {plain(c.name)} ({c.kind}): "
        f"{c.finding()}: fix those rows first ({c.recipe})"
        for c in item.violations()
    ]


def markdown(where: str, items: Iterable[Rehearsed], outcome: str) -> str:
    parts = [f"### Rehearsal on {where}", "", outcome, ""]
    for item in items:
        parts += [f"- {line(item)}"]
        for step in item.steps:
            kind = "autocommit" if step.autocommit else "in its transaction"
            kind += ", locks exact" if step.exact else ""
            locks = lock_phrase(step.locks) if step.locks else "no lock seen"
            parts.append(f"  - `{step.statement}` ({kind}): {took(step.seconds)}; {locks}")
    parts += [
        "",
        "Locks exact: the statement ran in a transaction of its own, whose locks were read "
        f"at its end. The others' locks are sampled every {SAMPLE_SECONDS * 1000:.0f} ms: "
        "each duration is exact to within one interval, and a lock held for less may be "
        "missed.",
    ]
    return "\n".join(parts)


def as_json(where: str, items: Iterable[Rehearsed], outcome: str) -> dict[str, Any]:
    return {
        "target": where,
        "outcome": outcome,
        "lock_sample_ms": SAMPLE_SECONDS * 1000,
        "revisions": [
            {
                "revision": item.revision.revision,
                "message": item.revision.doc,
                "outcome": item.outcome,
                "error": item.error,
                "seconds": item.seconds,
                "line": line(item),
                "steps": [
                    {
                        "statement": step.statement,
                        "autocommit": step.autocommit,
                        "locks_exact": step.exact,
                        "seconds": round(step.seconds, 4),
                        "locks": [
                            {"table": plain(table), "mode": LOCK_MODES[mode][0], "seconds": s}
                            for (table, mode), s in step.locks.items()
                        ],
                    }
                    for step in item.steps
                ],
                "rewrote": rewrite_phrase(item.rewrote),
                "running_release": item.waited,
                "running_release_not_measured": item.not_measured,
                "constraints": [constraint.as_json() for constraint in item.constraints],
            }
            for item in items
        ],
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")


def evidence(item: Rehearsed, on: str, day: str) -> dict[str, str]:
    """The ``accepted_hazards`` entries that put a clean revision's counts on the record."""
    by_rule: dict[str, list[str]] = {}
    for constraint in item.constraints:
        if constraint.violating == 0 and constraint.enforced:
            by_rule.setdefault(constraint.rule, []).append(constraint.finding())
    mark = evidence_mark(item.revision, on, day)
    return {rule: f"{'; '.join(findings)} {mark}" for rule, findings in sorted(by_rule.items())}
