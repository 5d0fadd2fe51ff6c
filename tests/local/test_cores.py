"""The core budget of a local submit (capc.local.cores): one rule splits the cores between AutoML and the sweep."""

from __future__ import annotations

import pytest

from capc.local.cores import CoreBudget, CoreSplit, pin_steps, split_cores


@pytest.mark.parametrize("cores, limit, expected", [
    (1, 2, CoreSplit(1, 0, 0)),  # no room for both: AutoML first, the sweep waits
    (2, 2, CoreSplit(1, 1, 1)),
    (2, 1, CoreSplit(1, 1, 1)),
    (8, 2, CoreSplit(4, 2, 2)),
    (8, 4, CoreSplit(4, 4, 1)),
    (8, 20, CoreSplit(4, 4, 1)),
    (64, 2, CoreSplit(32, 2, 16)),
    (64, 40, CoreSplit(32, 32, 1)),
])
def test_side_by_side(cores, limit, expected):
    split = split_cores(cores, automl=True, sweep_limit=limit)
    assert split == expected
    assert split.busy <= cores
    assert split.sweep_trials <= limit


@pytest.mark.parametrize("cores, limit, expected", [
    (1, 2, CoreSplit(0, 1, 1)),
    (2, 2, CoreSplit(0, 2, 1)),
    (2, 1, CoreSplit(0, 1, 2)),
    (8, 2, CoreSplit(0, 2, 4)),
    (8, 20, CoreSplit(0, 8, 1)),
    (64, 3, CoreSplit(0, 3, 21)),
])
def test_sweep_alone(cores, limit, expected):
    split = split_cores(cores, automl=False, sweep_limit=limit)
    assert split == expected and split.busy <= cores and split.sweep_trials <= limit


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 1), (8, 7), (64, 63)])
def test_automl_alone_keeps_a_core_spare(cores, threads):
    assert split_cores(cores, automl=True, sweep_limit=None) == CoreSplit(threads, 0, 0)


@pytest.mark.parametrize("cores", range(1, 70))
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 16, 100])
def test_never_more_threads_than_cores(cores, limit):
    for automl in (True, False):
        split = split_cores(cores, automl=automl, sweep_limit=limit)
        assert split.busy <= cores
        assert split.sweep_trials <= limit
        assert (split.automl_threads >= 1) == automl
        assert split.sweep_trials >= 1 or (automl and cores == 1)


def test_the_sweeps_take_the_cores_automl_leaves():
    budget = CoreBudget(2, automl=True, sweep_limit=2)
    assert budget.split() == CoreSplit(1, 1, 1)
    assert budget.start_sweep_trial() and not budget.start_sweep_trial()  # one place beside AutoML
    budget.automl_finished()
    assert budget.split() == CoreSplit(0, 2, 1)
    assert budget.start_sweep_trial() and not budget.start_sweep_trial()
    budget.sweep_trial_ended()
    assert budget.start_sweep_trial()


def test_one_core_runs_automl_first():
    budget = CoreBudget(1, automl=True, sweep_limit=3)
    assert not budget.start_sweep_trial()
    budget.automl_finished()
    assert budget.start_sweep_trial() and not budget.start_sweep_trial()


def test_bad_core_count():
    with pytest.raises(ValueError):
        split_cores(0, automl=True, sweep_limit=1)


# The local pipeline: each engine step's process pinned to its share of the same split.
def test_pipeline_steps_on_two_cpus_get_one_each_like_submit():
    assert pin_steps([0, 1], ["automl"], {"sweep": 2}) == {"automl": [0], "sweep": [1]}


def test_pipeline_steps_on_eight_cpus_split_the_sweep_half_by_concurrency():
    pins = pin_steps(list(range(8)), ["automl"], {"sweep_a": 2, "sweep_b": 2})
    assert pins == {"automl": [0, 1, 2, 3], "sweep_a": [4, 5], "sweep_b": [6, 7]}
    weighted = pin_steps(list(range(8)), ["automl"], {"sweep_a": 1, "sweep_b": 3})
    assert weighted["sweep_a"] == [4] and weighted["sweep_b"] == [5, 6, 7]


def test_pipeline_steps_on_sixty_four_cpus_never_overlap_and_use_them_all():
    pins = pin_steps(list(range(64)), ["automl"], {"a": 4, "b": 4, "c": 8})
    taken = [cpu for cpus in pins.values() for cpu in cpus]
    assert sorted(taken) == list(range(64)) and len(taken) == len(set(taken))
    assert len(pins["automl"]) == 32 and len(pins["c"]) == 16


def test_pipeline_steps_are_not_pinned_on_one_cpu_or_alone():
    assert pin_steps([0], ["automl"], {"sweep": 2}) == {}
    assert pin_steps(list(range(8)), ["automl"], {}) == {}
    assert pin_steps(list(range(8)), [], {"sweep": 2}) == {}


def test_more_sweep_steps_than_their_cpus_share_them():
    pins = pin_steps([0, 1], ["automl"], {"a": 1, "b": 1})
    assert pins == {"automl": [0], "a": [1], "b": [1]}


def test_a_pinned_step_process_runs_on_its_cpus_only():
    import os
    import subprocess
    import sys

    from capc.local.pipeline import _step_preexec

    cpu = sorted(os.sched_getaffinity(0))[-1]
    out = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                         preexec_fn=_step_preexec([cpu]), capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"[{cpu}]"
