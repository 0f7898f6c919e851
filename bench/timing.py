"""Medians of repeated runs, and the figures the report is made of.

Standard library only: the probes import it too, from a rendered project's
interpreter.
"""

from __future__ import annotations

import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RUNS = 5
WARMUP = 1


def measure(
    action: Callable[[], object],
    *,
    runs: int | None = None,
    warmup: int | None = None,
    before: Callable[[], object] | None = None,
    after: Callable[[], object] | None = None,
) -> list[float]:
    """Wall seconds of ``runs`` calls of ``action`` after ``warmup`` untimed ones.

    ``before`` and ``after`` run around every call, untimed (to reset state).
    """
    return alternate({"only": (action, before, after)}, runs=runs, warmup=warmup)["only"]


Step = tuple[Callable[[], object], Callable[[], object] | None, Callable[[], object] | None]


def alternate(
    steps: dict[str, Step], *, runs: int | None = None, warmup: int | None = None
) -> dict[str, list[float]]:
    """Like ``measure`` for several variants, one run of each in turn.

    Taking turns spreads a slow spell of a shared machine over every variant,
    so their ratios stay fair. Each step is ``(action, before, after)``.
    """
    runs = RUNS if runs is None else runs
    warmup = WARMUP if warmup is None else warmup
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for index in range(warmup + runs):
        for name, (action, before, after) in steps.items():
            if before is not None:
                before()
            start = time.perf_counter()
            action()
            elapsed = time.perf_counter() - start
            if after is not None:
                after()
            if index >= warmup:
                samples[name].append(elapsed)
    return samples


def profile_summary(
    stats: pstats.Stats, wanted: dict[str, tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """Calls and cumulative seconds of functions named by ``(file ending, function name)``."""
    entries = stats.stats.items()  # type: ignore[attr-defined]
    found = {}
    for label, (file_end, function) in wanted.items():
        for (filename, _, name), (_, calls, own, cumulative, _) in entries:
            if filename.endswith(file_end) and name == function:
                found[label] = {"calls": calls, "seconds": round(max(own, cumulative), 3)}
    return found


@dataclass
class Figure:
    """One row of the report: a median, and its ratio to a baseline of the same run."""

    key: str
    label: str
    samples: list[float]
    baseline: Figure | None = None
    goal: float | None = None  # the ratio must not exceed it
    limit: float | None = None  # seconds no sample may exceed
    failures: int = 0  # runs whose command failed: a figure with a limit then misses it
    note: str = ""
    derived: bool = False  # computed from other figures' medians, not timed itself
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ratio(self) -> float | None:
        return self.median / self.baseline.median if self.baseline else None

    @property
    def met(self) -> bool | None:
        verdicts = []
        if self.goal is not None and self.ratio is not None:
            verdicts.append(self.ratio <= self.goal)
        if self.limit is not None:
            verdicts.append(max(self.samples) <= self.limit and not self.failures)
        return all(verdicts) if verdicts else None

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "label": self.label,
            "median_s": round(self.median, 4),
            "runs": 0 if self.derived else len(self.samples),
            "samples_s": [round(sample, 4) for sample in self.samples],
            "baseline": self.baseline.key if self.baseline else None,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "goal_max_ratio": self.goal,
            "limit_s": self.limit,
            "failed_runs": self.failures,
            "met": self.met,
            "note": self.note,
            **self.extra,
        }
