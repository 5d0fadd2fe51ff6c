"""Backend, local: why a search ended and which allowed algorithms never got a trial, for AutoML and the sweeps.

One record per engine run, said the same way everywhere: the submit's output, its `--json` result, the engine's
MLflow run (capc.state.tracking's STOP_REASON_TAG, SKIPPED_TAG and MLflow's own run note) and so `capc runs` and
the report, which read those tags back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The limit that ended a search. AutoML: time (timeout_minutes), trials (max_trials), exit_score, early_termination
# (FLAML's convergence test, enable_early_termination). A sweep: time (limits.timeout), trials (max_total_trials,
# or its grid covered). Either: interrupted (a stop signal).
LIMITS = ("time", "trials", "exit_score", "early_termination", "interrupted")
MAX_TAG_CHARS = 5000  # an MLflow tag value's limit (8000 in MLflow 2; kept well under it)


@dataclass(frozen=True)
class SearchEnd:
    """The limit that ended one search, and the same in words (`detail`) that name the setting to change."""

    limit: str
    detail: str

    def __post_init__(self) -> None:
        if self.limit not in LIMITS:
            raise ValueError(f"unknown search limit {self.limit!r}; one of {LIMITS}")

    def line(self) -> str:
        return f"ended by {self.limit}: {self.detail}"

    def to_dict(self) -> dict:
        return {"limit": self.limit, "detail": self.detail}


@dataclass
class SearchReport:
    """What one engine run says about its search: why it ended, the allowed algorithms it skipped (name -> why),
    and its other notes (validation, starting points, featurization)."""

    engine: str  # automl | sweep | sweep_<family>
    end: SearchEnd | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the submit prints, one self-contained line each (greppable in a CI log)."""
        out = [f"{self.engine}: {self.end.line()}"] if self.end else []
        out += [f"{self.engine}: skipped {name}: {why}" for name, why in self.skipped.items()]
        return out

    def to_dict(self) -> dict:
        return {
            "stop_reason": self.end.to_dict() if self.end else None,
            "skipped_algorithms": [{"algorithm": name, "reason": why} for name, why in self.skipped.items()],
            "notes": list(self.notes),
        }

    def tags(self) -> dict[str, str]:
        """MLflow tags of the engine's run: the limit and its words, the skipped algorithms, and every line as the
        run's note (what `mlflow ui` shows as its description)."""
        from capc.state.tracking import NOTE_TAG, SKIPPED_TAG, STOP_LIMIT_TAG, STOP_REASON_TAG

        note = "\n".join(self.lines() + self.notes)
        tags = {NOTE_TAG: note if len(note) <= MAX_TAG_CHARS else note[: MAX_TAG_CHARS - 3] + "..."}
        if self.end:
            tags[STOP_LIMIT_TAG] = self.end.limit
            tags[STOP_REASON_TAG] = self.end.detail
        if self.skipped:
            tags[SKIPPED_TAG] = "; ".join(f"{name}: {why}" for name, why in self.skipped.items())[:MAX_TAG_CHARS]
        return tags


def sweep_end(stopped_because: str, max_total_trials: int, timeout_s: float | None, counts: dict[str, int],
              grid_size: int | None = None, settings: tuple[str, str] = ("max_total_trials", "limits.timeout")) -> SearchEnd:
    """A sweep's SearchEnd from capc.local.sweep's `stopped_because` (max_total_trials | timeout | interrupted).
    `settings`: the job's own names of its trial cap and time budget (AutoML for images runs as a sweep)."""
    trials_setting, time_setting = settings
    if stopped_because == "interrupted":
        return SearchEnd("interrupted", "capc was stopped; finished trials are kept")
    if stopped_because == "timeout":
        return SearchEnd("time", f"{time_setting} passed ({timeout_s:g} s); running trials were cancelled")
    stopped = counts.get("early_terminated", 0)
    policy = f", {stopped} of them stopped early by the early-termination policy" if stopped else ""
    if grid_size is not None and grid_size <= max_total_trials:
        return SearchEnd("trials", f"all {grid_size} grid combinations ran{policy}")
    return SearchEnd("trials", f"{trials_setting} {max_total_trials} reached{policy}")
