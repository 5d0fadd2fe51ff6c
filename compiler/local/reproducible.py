"""Backend, local: one seed for a whole submit, and `--reproducible`, where two submits on the same data give the
same leaderboard, the same winner and a model with the same predictions.

The seed is the spec's (capc.json `seed`), else one drawn now and recorded with the run (`capc runs --json`,
`capc submit --like RUN_ID` repeats it). It reaches the sweep's sampler (a job with no seed of its own gets it),
every trial (`--seed` on the command line of capc's trial scripts; CAPC_SEED in every trial's environment) and
the AutoML search (FLAML's seed; its folds and holdout use FLAML's own fixed seed).

Reproducible mode takes a seed and counts trials, not time. What depends on timing is switched off, each named
in the run's notes:
- AutoML: no time budget (FLAML's `time_budget=-1`: max_trials ends the search, and FLAML then weighs the
  learners by trials where it would weigh them by seconds), every trial on all rows (no sample-size growth,
  which FLAML decides by time), a cold start (small models, growing: a zero-shot model's cost no trial count
  bounds), one thread per trial, and the ensembles' refits and the final refit without a deadline.
- the sweep: one thread per trial and no early-termination policy (which trial it stops depends on when each
  reported). Random, grid and sobol sampling propose trial k the same values whatever finished first (a seeded
  sampler asked in trial order); bayesian sampling (TPE) proposes from the trials finished so far, so it runs one
  trial at a time.
Left to timing, and said in the notes: a trial or AutoML candidate cut off by its trial timeout, and the serving
budget (deployment.max_latency_ms, and a tie within 0.01% won by the faster model to serve), which measures time.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from pathlib import Path

from capc.errors import CapcError
from capc.local.cores import THREAD_VARIABLES

SEED_VARIABLE = "CAPC_SEED"  # read by capc's trial scripts when the command line has no --seed
MAX_SEED = 2**31 - 1  # the spec schema's maximum: numpy, FLAML and Optuna all take it
REPRODUCIBLE_THREADS = 1

# Learners whose results a seed cannot pin down, named in the notes and the README.
NONDETERMINISTIC_LEARNERS = {
    "keras_cnn": "keras_cnn on a GPU: cuDNN's convolution kernels are not deterministic (on a CPU the trial repeats)",
}


@dataclass(frozen=True)
class RunSeed:
    """The seed of one submit and whether it runs in reproducible mode."""

    seed: int
    drawn: bool = False  # the spec had none: capc drew it (recorded, so --like repeats it)
    reproducible: bool = False

    def notes(self) -> list[str]:
        origin = "drawn for this run (the spec has none)" if self.drawn else "from the spec"
        lines = [f"seed {self.seed} ({origin})"]
        if self.reproducible:
            lines.append("reproducible: budgets count trials, not time; AutoML trains every trial on all rows, one thread "
                         "each, from a cold start; the sweep's trials run on one thread each, without early termination")
            lines.append("reproducible except: a trial cut off by its trial timeout, and the serving budget and speed "
                         "ties, which measure latency")
        return lines


def run_seed(spec_seed: int | None, reproducible: bool) -> RunSeed:
    """The seed a submit runs with: the spec's, else drawn now. Reproducible mode needs the spec's (or --set seed=N)."""
    if spec_seed is not None:
        return RunSeed(int(spec_seed), drawn=False, reproducible=reproducible)
    if reproducible:
        raise CapcError(
            "--reproducible needs a seed: two runs give the same results only from the same seed.",
            "add `seed: N` to the spec, or submit with --set seed=N (a run without one recorded the seed it drew: "
            "`capc submit --like RUN_ID --reproducible` repeats it)",
        )
    return RunSeed(secrets.randbelow(MAX_SEED + 1), drawn=True, reproducible=False)


def automl_settings(settings, run: RunSeed | None):
    """AutoMLSettings with the run's seed, and reproducible mode's fixed thread count."""
    from dataclasses import replace

    if run is None:
        return settings
    changes = {"seed": run.seed, "reproducible": run.reproducible}
    if run.reproducible:
        changes["threads"] = REPRODUCIBLE_THREADS
    return replace(settings, **changes)


def sweep_job(job: dict, run: RunSeed | None, notes: list[str] | None = None) -> dict:
    """A loaded sweep job as the local engine runs it under `run`: the sampler seeded (unless the job seeds it
    itself), CAPC_SEED for every trial, and in reproducible mode one thread per trial, no early termination and
    bayesian sampling one trial at a time."""
    if run is None:
        return job
    job = copy.deepcopy(job)
    sampling = job.get("sampling_algorithm", "random")
    options = dict(sampling) if isinstance(sampling, dict) else {"type": sampling}
    options.setdefault("seed", run.seed)
    job["sampling_algorithm"] = options
    trial = job.get("trial")
    if isinstance(trial, dict):
        variables = {SEED_VARIABLE: str(run.seed), **dict(trial.get("environment_variables") or {})}
        if run.reproducible:
            variables.update({name: str(REPRODUCIBLE_THREADS) for name in THREAD_VARIABLES})
        job["trial"] = {**trial, "environment_variables": variables}
    if not run.reproducible:
        return job
    if job.pop("early_termination", None) and notes is not None:
        notes.append("reproducible: the sweep's early-termination policy is off (which trial it stops depends on timing)")
    if str(options.get("type", "random")).lower() == "bayesian":
        limits = dict(job.get("limits") or {})
        if int(limits.get("max_concurrent_trials") or 1) > 1 and notes is not None:
            notes.append("reproducible: bayesian sampling runs one trial at a time (TPE proposes from the trials finished so far)")
        job["limits"] = {**limits, "max_concurrent_trials": 1}
    return job


def family_notes(families: list[str]) -> list[str]:
    """What a seed cannot pin down among these trial families."""
    return [f"not reproducible: {NONDETERMINISTIC_LEARNERS[f]}" for f in families if f in NONDETERMINISTIC_LEARNERS]


@dataclass(frozen=True)
class SubmitRecord:
    """What a local submit runs with and records: its seed and mode, its data's fingerprint, its run's tags."""

    run: RunSeed
    tags: dict
    data: object  # capc.state.fingerprint.DataFingerprint, or None for data on Azure only


def prepare_submit(folder, source, overrides: list[str], reproducible: bool, say, seed: int | None = None) -> SubmitRecord:
    """Before a local submit starts: its seed, the data it will train on (and `say` how that data differs from the
    latest registered model's), and the tags its run records (capc.state.run_record)."""
    from capc.local import run_data
    from capc.state import fingerprint, run_record

    run = run_seed(folder.seed if seed is None else seed, reproducible)  # `seed`: --like of a job folder's run
    data = run_data.folder_fingerprint(folder.path)
    change = fingerprint.change_from_registered(folder.name, data)
    if change:
        say(f"data changed: {change}")
    notes = run.notes()
    for job in folder.sweeps:
        sweep_job(job.data, run, notes)
    if folder.task == "image_classification":
        notes += family_notes(["keras_cnn"])
    for note in notes:
        say(note)
    tags = run_record.submit_tags(folder.path, run, source, overrides, fingerprint.to_tag(data) if data else None, notes)
    return SubmitRecord(run, tags, data)


# Metrics that measure time (serving latency and throughput, a trial's seconds): no seed repeats them.
TIMING_METRICS = ("serving_", "trial_seconds")


def comparable_leaderboard(board: dict) -> dict:
    """`capc leaderboard NAME --json` without what differs between two runs of the same settings by nature (run
    ids, start times, durations, timing metrics): what two reproducible runs must give identically."""
    rows = [
        {"name": r["name"], "kind": r["kind"], "status": r["status"], "params": r["params"],
         "metrics": {k: v for k, v in sorted(r["metrics"].items()) if not k.startswith(TIMING_METRICS)}}
        for r in board["runs"]
    ]
    return {"metric": board["metric"], "goal": board["goal"], "runs": sorted(rows, key=lambda r: (r["kind"], r["name"]))}
