"""Backend, local: the environments a hand-written pipeline's steps run in, built before any step runs.

Each command step's `environment` (its component's, when the step takes it from one) and each sweep node's trial
environment is what a standalone job's would be (capc.local.environments): a conda file's requirements installed
into a virtual environment cached under $CAPC_HOME/envs by a hash of the resolved dependencies. Steps naming the
same environment share it: it is built once here, and the cache keeps it for later runs. A failed install is a
CapcError naming the package, raised before the first step starts and before the pipeline's run is recorded.
A step whose environment is curated or registered (`azureml:...`), an image alone, or any under `--env current`,
runs in capc's interpreter and keeps the fork server's fast path. AutoML nodes run on capc's own AutoML engine, in
capc's interpreter. capc's compiled pipeline (its own scripts) does not come here: it runs in capc's interpreter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from capc.jobfolder.pipeline_graph import GraphStep
from capc.local.environments import JOB, JobEnvironment, job_environment

BUILT_KINDS = ("command", "sweep")  # the steps whose command runs in the environment its YAML names


def step_environment_of(step: GraphStep) -> object:
    """The `environment:` a step's command runs in, as written (relative paths already read from its file)."""
    if step.type == "sweep":
        trial = step.node.get("trial")
        return trial.get("environment") if isinstance(trial, dict) else None
    return step.node.get("environment")


def build_step_environments(steps: Iterable[GraphStep], mode: str = JOB, say=None) -> tuple[dict[str, JobEnvironment], list[str]]:
    """({step: its environment}, notes): each distinct environment built (or reused) once, in step order; the notes
    name the steps each applies to. CapcError (capc.local.env_install) when one cannot be built."""
    say = say or (lambda text: None)
    by_environment: dict[str, tuple[JobEnvironment, list[str]]] = {}
    chosen: dict[str, JobEnvironment] = {}
    for step in steps:
        if step.type not in BUILT_KINDS:
            continue
        environment = step_environment_of(step)
        key = json.dumps([environment, str(step.base_dir)], sort_keys=True, default=str)
        if key not in by_environment:
            by_environment[key] = (job_environment(environment, Path(step.base_dir), mode=mode, say=say), [])
        built, names = by_environment[key]
        names.append(step.name)
        chosen[step.name] = built
    return chosen, _notes(by_environment.values())


def _notes(built: Iterable[tuple[JobEnvironment, list[str]]]) -> list[str]:
    """One note per distinct text, naming every step it applies to (two steps of one environment: one line)."""
    steps_of: dict[str, list[str]] = {}
    for environment, names in built:
        for note in environment.notes:
            steps_of.setdefault(note.replace("the job runs", "it runs"), []).extend(names)
    return [f"{'step' if len(names) == 1 else 'steps'} {', '.join(dict.fromkeys(names))}: {note}" for note, names in steps_of.items()]
