"""The optimisation goal of a primary metric (maximize or minimize): which of two scores is better, the best
of many, the leaderboard order. Shared by the local engines, the Azure backend, the CLI views and the report.

The goal comes from Azure's metric table (capc.azure_names.AUTOML_METRICS) for a spec's task and primary
metric, or from a job file's `objective.goal`. A score that is not a finite number (None, NaN, infinity,
text) never wins and ranks after every finite one, so a failed run can never be chosen or shown as best.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TypeVar

from capc import azure_names

T = TypeVar("T")


def is_score(value) -> bool:
    """A finite number: what a run that scored reports (a failed one logs NaN or nothing)."""
    return isinstance(value, numbers.Real) and math.isfinite(value)


class Goal(StrEnum):
    """`Goal("maximize")` or `Goal.of(task, metric)`; equal to its Azure spelling, so it travels as text."""

    MAXIMIZE = azure_names.MAXIMIZE
    MINIMIZE = azure_names.MINIMIZE

    @classmethod
    def of(cls, task: str, metric: str) -> Goal:
        """The goal Azure gives `metric` for `task`."""
        return cls(azure_names.AUTOML_METRICS[task][metric])

    @property
    def maximize(self) -> bool:
        return self is Goal.MAXIMIZE

    def better(self, a, b) -> bool:
        """Whether score `a` is strictly better than `b` (a non-score never is; any score beats a non-score)."""
        if not is_score(a):
            return False
        if not is_score(b):
            return True
        return a > b if self.maximize else a < b

    @property
    def worst(self) -> float:
        """A value every score beats (what a failed report counts as)."""
        return -math.inf if self.maximize else math.inf

    def reached(self, value: float, target: float) -> bool:
        """Whether `value` is at least as good as `target` (an exit score)."""
        return value >= target if self.maximize else value <= target

    def sort_key(self, value: float) -> float:
        """Ascending order of this key is best first."""
        return -value if self.maximize else value

    def best(self, items: Iterable[T], score: Callable[[T], object] = lambda item: item) -> T | None:
        """The item with the best score (ties: the first); None when no item has a score."""
        chosen = None
        for item in items:
            if is_score(score(item)) and (chosen is None or self.better(score(item), score(chosen))):
                chosen = item
        return chosen

    def ranked(self, items: Iterable[T], score: Callable[[T], object], tiebreak: Callable[[T], object] | None = None) -> list[T]:
        """The items that have a score, best first (ties: by `tiebreak`, else in their given order)."""
        scored = [item for item in items if is_score(score(item))]
        if tiebreak is None:
            return sorted(scored, key=lambda item: self.sort_key(score(item)))
        return sorted(scored, key=lambda item: (self.sort_key(score(item)), tiebreak(item)))
