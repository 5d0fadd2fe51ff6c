"""Backend, local: a sweep job read and checked before anything runs (capc.local.sweep runs it): its objective,
sampling, search space, limits (missing ones as capc.jobfolder.sweep_limit says), trial command and its bindings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.goal import Goal
from capc.jobfolder.folder import sweep_limit
from capc.jobfolder.job_yaml import code_path
from capc.local import bindings, commands, samplers
from capc.policies import policy_from_mapping
from capc.spec.conditional import FAMILY_TAG


@dataclass(frozen=True)
class SweepPlan:
    """Everything run_sweep needs from sweep_job.yml, checked once before anything starts."""

    metric: str
    goal: str
    algorithm: str
    sampling_options: dict
    search_space: dict
    policy_mapping: dict | None
    max_total_trials: int
    max_concurrent_trials: int
    timeout_s: float | None
    trial_timeout_s: float | None
    command: str  # the command text, placeholders still in it (capc.local.commands binds and starts it)
    code_dir: Path | None
    inputs: dict  # input name -> text substituted for ${{inputs.NAME}}
    family: str | None = None  # a conditional sweep's family (the job's capc_family tag), logged with each trial
    outputs: tuple[str, ...] = ()  # declared outputs: each trial binds ${{outputs.NAME}} to a folder of its own
    environment_variables: dict = field(default_factory=dict)  # the trial's environment_variables
    python: str | None = None  # the job environment's interpreter (None: capc's own)
    distribution: dict | None = None  # the trial's distribution block: one process with rank variables


def _limit_seconds(limits: Mapping, name: str) -> float | None:
    """`timeout` (Azure's seconds) or `timeout_minutes`; None when neither is set."""
    if limits.get(name) is not None:
        return float(limits[name])
    if limits.get(f"{name}_minutes") is not None:
        return float(limits[f"{name}_minutes"]) * 60
    return None


def plan_sweep(job: Mapping, job_dir: Path, python: str | None = None) -> SweepPlan:
    """Read and check a loaded sweep_job.yml mapping; every problem a user can cause becomes a CapcError."""
    if job.get("type", "sweep") != "sweep":
        raise CapcError(f"this job is of type {job.get('type')!r}; run_sweep runs sweep jobs.")
    objective = job.get("objective") or {}
    metric, goal = objective.get("primary_metric"), str(objective.get("goal", "")).lower()
    if not metric or goal not in tuple(Goal):
        raise CapcError("the sweep job needs objective.primary_metric and objective.goal (maximize or minimize).")
    algorithm, options = samplers.algorithm_of(job.get("sampling_algorithm", "random"))
    search_space = dict(job.get("search_space") or {})
    samplers.check_search_space(search_space, algorithm)
    policy_from_mapping(job.get("early_termination"))  # checked now, built per run
    limits = job.get("limits") or {}
    grid = samplers.grid_size(search_space) if algorithm == "grid" else None
    max_total = int(limits.get("max_total_trials") or grid or sweep_limit(limits, "max_total_trials"))
    if grid is not None:
        max_total = min(max_total, grid)  # a grid sweep ends when its grid is covered
    max_concurrent = sweep_limit(limits, "max_concurrent_trials")
    if max_total < 1 or max_concurrent < 1:
        raise CapcError("limits.max_total_trials and limits.max_concurrent_trials must be at least 1.")
    trial = trial_of(job, job_dir)
    if not trial.get("command"):
        raise CapcError("the sweep job has no trial.command.")
    command = str(trial["command"])
    code_dir = None
    if trial.get("code"):
        code_dir = (job_dir / code_path(trial["code"], "the sweep's trial")).resolve()
        if not code_dir.is_dir():
            raise CapcError(f"trial.code {trial['code']} (resolved to {code_dir}) is not a folder.")
    declared_inputs, declared_outputs = job.get("inputs") or {}, job.get("outputs") or {}
    inputs, unknown = {}, []
    optional = commands.optional_only(command)
    for scope, name in commands.references(command):
        if scope == "inputs" and name in declared_inputs:
            value = declared_inputs[name]
            if ("inputs", name) in optional and isinstance(value, dict) and not {"path", "value", "default"} & set(value):
                continue  # an optional input without a value: its $[[...]] is dropped
            inputs.setdefault(name, bindings.input_text(name, value, job_dir))
        elif not (scope == "search_space" and name in search_space or scope == "outputs" and name in declared_outputs):
            unknown.append(f"{scope}.{name}")
    if unknown:
        raise CapcError(
            f"trial.command refers to {', '.join('${{' + u + '}}' for u in unknown)}, which the job does not define "
            "(the local engine fills ${{inputs.NAME}}, ${{outputs.NAME}} and ${{search_space.NAME}})."
        )
    variables = {str(k): bindings.format_value(v) for k, v in (trial.get("environment_variables") or {}).items()}
    distribution = trial.get("distribution")
    return SweepPlan(
        metric=str(metric), goal=goal, algorithm=algorithm, sampling_options=options, search_space=search_space,
        policy_mapping=job.get("early_termination"), max_total_trials=max_total, max_concurrent_trials=min(max_concurrent, max_total),
        timeout_s=_limit_seconds(limits, "timeout"), trial_timeout_s=_limit_seconds(limits, "trial_timeout"),
        command=command, code_dir=code_dir, inputs=inputs, family=(job.get("tags") or {}).get(FAMILY_TAG),
        outputs=tuple(declared_outputs), environment_variables=variables, python=python,
        distribution=dict(distribution) if isinstance(distribution, Mapping) else None,
    )


def trial_of(job: Mapping, job_dir: Path) -> dict:
    """The sweep's trial: inline, or a command component file (`trial: ./train.yml`) read relative to the job."""
    trial = job.get("trial") or {}
    if isinstance(trial, str):
        path = (Path(job_dir) / trial.removeprefix("file:")).resolve()
        try:
            import yaml

            trial = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, ValueError) as exc:
            raise CapcError(f"cannot read the trial component {trial}: {exc}") from None
        if isinstance(trial, dict) and trial.get("code"):
            # The component's code is relative to the component file; the plan reads it relative to the job.
            trial = {**trial, "code": os.path.relpath(path.parent / code_path(trial["code"], str(path)), job_dir)}
    if not isinstance(trial, Mapping):
        raise CapcError("the sweep job's trial must be a command (command, code, environment) or a component file.")
    return dict(trial)


def trial_process(plan: SweepPlan, values: Mapping, outputs: Mapping[str, str] | None = None) -> commands.PreparedCommand:
    """The trial's process: its command with placeholders filled (`outputs` maps each declared output to the
    trial's folder), as Azure runs a command (capc.local.commands: bash for shell syntax, the environment's python)."""
    parameters = {name: samplers.format_value(value) for name, value in values.items()}
    return commands.prepare_command(
        plan.command, {"inputs": plan.inputs, "search_space": parameters, "outputs": dict(outputs or {})},
        python=plan.python, environment_variables=plan.environment_variables, distribution=plan.distribution,
    )


def trial_argv(plan: SweepPlan, values: Mapping, outputs: Mapping[str, str] | None = None) -> list[str]:
    """The argv a trial starts (see trial_process). Not capc.trial.trial_command, which writes the Azure command string."""
    return trial_process(plan, values, outputs).argv
