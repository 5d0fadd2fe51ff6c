"""Backend, local: the one core budget of a submit - how many threads AutoML and the sweep may keep busy.

The rule (`split_cores`, a pure function of the cores this process may use and who is running):
- AutoML alone: its trials run one at a time on all cores but one (the spare core keeps the sweep's runner,
  tracking and the live display responsive; small LightGBM fits lose more to OpenMP spin-waiting than a second
  thread gains), at least one.
- the sweep alone: min(max_concurrent_trials, cores) trials at once, the cores shared evenly among them.
- side by side (two or more cores): the sweep takes half the cores (rounded down) and AutoML the rest; the
  sweep's half is shared as above. On one core the two cannot both run: AutoML runs first, then the sweep.
The threads busy at once never exceed the cores, and a spec's max_concurrent_trials is only ever an upper bound.
When AutoML ends first, the sweep's later trials get the sweep-alone share.

The local pipeline (`--only pipeline`) runs each engine step as a process of its own; `pin_steps` gives each its
share of the same split as a CPU affinity, which the step's own split then reads as its cores. Those shares stay
as they are for the whole run (a process's children keep the affinity they started with).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

# What a trial process's thread pools read (OpenMP: LightGBM, torch; BLAS), set for each sweep trial.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class CoreSplit:
    automl_threads: int  # threads of AutoML's one trial at a time; 0: AutoML is not running
    sweep_trials: int  # sweep trials at once; 0: the sweep is not running
    sweep_trial_threads: int  # threads of each sweep trial

    @property
    def busy(self) -> int:
        return self.automl_threads + self.sweep_trials * self.sweep_trial_threads


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or `taskset`'s limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def usable_cpus() -> list[int]:
    """The CPU numbers this process may run on; empty where the system does not say (not Linux)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return []


def side_by_side(cores: int) -> bool:
    """Whether AutoML and the sweep may run at the same time on this many cores."""
    return cores >= 2


def split_cores(cores: int, *, automl: bool, sweep_limit: int | None) -> CoreSplit:
    """Threads per engine when AutoML runs (`automl`) and/or the sweep does (`sweep_limit`: its
    max_concurrent_trials; None when it is not running). Both on one core: AutoML's share only (it runs first)."""
    if cores < 1:
        raise ValueError(f"cores must be at least 1, not {cores}")
    if automl and sweep_limit is not None and not side_by_side(cores):
        return CoreSplit(1, 0, 0)
    if automl and sweep_limit is not None:
        sweep_cores = cores // 2
        trials = min(sweep_limit, sweep_cores)
        return CoreSplit(cores - sweep_cores, trials, sweep_cores // trials)
    if automl:
        return CoreSplit(max(1, cores - 1), 0, 0)
    if sweep_limit is not None:
        trials = min(sweep_limit, cores)
        return CoreSplit(0, trials, cores // trials)
    return CoreSplit(0, 0, 0)


def pin_steps(cpus: list[int], automl_steps: list[str], sweep_steps: dict[str, int]) -> dict[str, list[int]]:
    """The local pipeline's share of the same budget: the CPUs each engine step process is pinned to (its
    affinity, which the step's own split then reads as its cores). AutoML steps get AutoML's share of
    split_cores, the sweep steps (name -> max_concurrent_trials) the sweep's, cut in contiguous slices by
    concurrency, at least one CPU each; steps that outnumber their CPUs share them all. Nothing is pinned on one
    CPU (the steps take turns on it) or when only one kind of engine step runs alone (it gets every CPU)."""
    cpus = sorted(cpus)
    if len(cpus) < 2 or not (automl_steps and sweep_steps):
        return {}
    split = split_cores(len(cpus), automl=True, sweep_limit=sum(sweep_steps.values()))
    automl_cpus, sweep_cpus = cpus[:split.automl_threads], cpus[split.automl_threads:]
    pins = {name: automl_cpus for name in automl_steps}
    if len(sweep_steps) > len(sweep_cpus):
        return {**pins, **{name: sweep_cpus for name in sweep_steps}}
    total = sum(max(1, c) for c in sweep_steps.values())
    start = 0
    for i, (name, concurrency) in enumerate(sweep_steps.items()):
        left_after = len(sweep_steps) - i - 1  # each later step keeps at least one CPU
        take = max(1, round(len(sweep_cpus) * max(1, concurrency) / total))
        take = len(sweep_cpus) - start if left_after == 0 else min(take, len(sweep_cpus) - start - left_after)
        pins[name] = sweep_cpus[start:start + take]
        start += take
    return pins


def automl_alone_threads() -> int:
    return split_cores(usable_cores(), automl=True, sweep_limit=None).automl_threads


class CoreBudget:
    """The split of one submit as it goes: who runs now decides the sweeps' share, and the sweep trials running
    (across all of a submit's sweeps, e.g. a conditional sweep's one per family) are counted against it."""

    def __init__(self, cores: int | None = None, *, automl: bool = False, sweep_limit: int | None = None):
        self.cores = cores or usable_cores()
        self.sweep_limit = sweep_limit  # the sweeps' max_concurrent_trials, summed; None: no sweep
        self._automl = automl
        self._sweep_trials = 0
        self._lock = threading.Lock()

    def automl_finished(self) -> None:
        with self._lock:
            self._automl = False

    def split(self) -> CoreSplit:
        with self._lock:
            return split_cores(self.cores, automl=self._automl, sweep_limit=self.sweep_limit)

    def start_sweep_trial(self) -> bool:
        """Take a sweep trial's place if the split has one free now (then call sweep_trial_ended when it ends)."""
        with self._lock:
            split = split_cores(self.cores, automl=self._automl, sweep_limit=self.sweep_limit)
            if self._sweep_trials >= split.sweep_trials:
                return False
            self._sweep_trials += 1
            return True

    def sweep_trial_ended(self) -> None:
        with self._lock:
            self._sweep_trials = max(0, self._sweep_trials - 1)
