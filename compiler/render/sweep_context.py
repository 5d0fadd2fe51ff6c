"""Stage 3, render: the sweep's and the retraining pipeline's part of the render context (capc.render.context
builds the rest): each sweep job's command line and search space, the trial scripts to generate or copy, and the
pipeline's nodes with the select step's command.
"""

from __future__ import annotations

import shlex

from capc import serving_cost
from capc.families import FAMILIES, INTERVALS
from capc.image_files import IMAGE_SUFFIXES
from capc.render.forecasting_context import FORECAST_METADATA_KEY, settings_block
from capc.render.pins import SELECT_STEP_PINS
from capc.spec import conditional, schema_default
from capc.state.held_out import ARTIFACT_PATH as HELD_OUT_ARTIFACT
from capc.trial import trial_command

# Distributions a saved trial model needs, pinned by train.py to the versions it ran with.
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle")
FAMILY_MODEL_REQUIREMENTS = {"lightgbm": ("lightgbm",), "keras_mlp": ("keras", "torch"), "keras_cnn": ("keras", "torch", "pillow")}
# The spec's serving budget (deployment.*), passed to select_best.py as --KEY VALUE.
SERVING_BUDGET_KEYS = ("max_latency_ms", "max_model_mb")



def sweep_context(spec, dataset: dict) -> dict | None:
    """The sweep's jobs and trial scripts.

    One family: sweep_job.yml running src/train.py. Several (sweep.families): grid sampling gives one
    sweep_job.yml over the indices of the valid combinations, src/train.py looking its row up in
    src/combinations.json; random and bayesian give one sweep_<family>.yml per family, the trial budget and
    concurrency split between them. Either way each family's trial script is src/train_<family>.py.
    """
    sweep = spec.data.get("sweep")
    if not sweep:
        return None
    branches = conditional.branches(sweep)
    input_type = "uri_folder" if dataset["format"] == "image_folder" else "uri_file"
    limits = sweep["limits"]
    policy = sweep.get("early_termination")
    seed = spec.data.get("seed")
    shared = {
        "input_type": input_type,
        "sampling_algorithm": seeded_sampling(sweep["sampling"], seed),
        "early_termination": dict(policy) if policy else None,
    }

    def job(node: str, trials: str, script: str, space: dict, total: int, concurrent: int, tags: dict, family: str | None) -> dict:
        # capc's own trial scripts take --seed; a user's script is not asked to (locally it finds CAPC_SEED).
        seeded = seed is not None and (family is not None or all(b.family for b in branches))
        return _sweep_job(spec, dataset, shared, node, trials, script, space, (total, concurrent), tags, family,
                          [f"--seed {seed}"] if seeded else [])

    total, concurrent = limits["max_total_trials"], limits["max_concurrent_trials"]
    if not conditional.is_conditional(sweep):
        branch = branches[0]
        trials = f"{branch.family} trials" if branch.family else "user script trials"
        jobs = {"sweep_job.yml": job("sweep", trials, "train.py", branch.search_space, total, concurrent, {}, branch.family)}
        scripts = {"src/train.py": _branch_script(spec, dataset, branch)}
        combinations = None
    elif sweep["sampling"] == "grid":
        combinations = conditional.grid_combinations(branches)
        space = {conditional.COMBINATION_PARAMETER: {"type": "choice", "values": [c.index for c in combinations]}}
        trials = "conditional grid over " + ", ".join(b.name for b in branches)
        jobs = {"sweep_job.yml": job("sweep", trials, "train.py", space, total, concurrent, {}, None)}
        scripts = {f"src/{b.script_name}": _branch_script(spec, dataset, b) for b in branches}
    else:
        combinations = None
        weights = [b.weight for b in branches]
        totals, concurrents = conditional.split_limit(total, weights), conditional.split_limit(concurrent, weights)
        jobs = {
            f"sweep_{b.name}.yml": job(f"sweep_{b.name}", f"{b.name} trials" if b.family else f"{b.name} trials (user script)", b.script_name,
                                       b.search_space, t, c, {conditional.FAMILY_TAG: b.name}, b.family)
            for b, t, c in zip(branches, totals, concurrents)
        }
        scripts = {f"src/{b.script_name}": _branch_script(spec, dataset, b) for b in branches}
    only = next(iter(jobs.values())) if len(jobs) == 1 and not conditional.is_conditional(sweep) else None
    return {
        **shared,
        "enabled": sweep["enabled"],
        "conditional": conditional.is_conditional(sweep),
        "families": [b.family for b in branches if b.family],
        "jobs": jobs,
        "scripts": scripts,
        "combinations": None if combinations is None else {
            "scripts": {b.name: b.script_name for b in branches},
            "combinations": [c.to_dict() for c in combinations],
        },
        # The one-family form, as its templates and the image task read it.
        "family": branches[0].family if only else None,
        "train": scripts["src/train.py"]["train"] if only else None,
    }


def seeded_sampling(sampling: str, seed: int | None):
    """sweep_job.yml's sampling_algorithm: Azure's random sampling takes a seed (RandomSamplingAlgorithm(seed=));
    grid has nothing to seed and bayesian no seed to set."""
    return {"type": sampling, "seed": seed} if seed is not None and sampling == "random" else sampling


def _sweep_job(spec, dataset: dict, shared: dict, node: str, trials: str, script: str, space: dict,
               trial_counts: tuple[int, int], tags: dict, family: str | None, seed_words: list[str]) -> dict:
    """One sweep job's context: `trial_counts` is (max_total_trials, max_concurrent_trials); `seed_words` the
    trial's `--seed N`, if it takes one."""
    limits = spec.data["sweep"]["limits"]
    search_space = {p: dict(d) for p, d in space.items()}
    return {
        **shared,
        "node": node,  # its step in pipeline_job.yml
        "trials": trials,
        "command": trial_command(spec.metric, space, "search_space", target=dataset["target"], script=script, extra=seed_words),
        "search_space": search_space,
        # The same sweep as a pipeline node: Azure refuses a seeded sampler there (capc.spec.service_rules).
        "pipeline_fields": {**shared, "sampling_algorithm": spec.data["sweep"]["sampling"], "search_space": search_space},
        "limits": {
            "max_total_trials": trial_counts[0],
            "max_concurrent_trials": trial_counts[1],
            # Azure's sweep limits are in seconds; per-family sweeps run side by side, each with the whole time.
            "timeout": limits["timeout_minutes"] * 60,
            "trial_timeout": limits["trial_timeout_minutes"] * 60,
        },
        "tags": tags,
        "component": _trial_component(spec, dataset, node, script, space, family, seed_words),
    }


def _branch_script(spec, dataset: dict, branch) -> dict:
    """One family's trial script: rendered from its template, or the user's own file copied."""
    if branch.family:
        return {"train": _train_script(spec, FAMILIES[branch.family], dataset), "user_script": None}
    return {"train": None, "user_script": str(spec.path.parent / branch.script)}


def image_holdout(dataset: dict) -> float:
    """Image training always holds out a share (it has no folds): with cross_validations given, the schema's."""
    return dataset["validation_fraction"] or schema_default("dataset.validation_fraction")


def _train_script(spec, family, dataset: dict) -> dict:
    kinds = {"int": "as_int", "float": "float", "str": "str"}
    return {
        "template": f"train/{family.name}.py.j2",
        "family": family.name,
        "hyperparameters": [
            {"name": h.name, "parser": kinds[h.kind], "default": h.default, "help": h.help, "domain": domain_of(h)}
            for h in family.hyperparameters
        ],
        "drop": dataset["drop"],
        "cross_validations": dataset["cross_validations"],
        "validation_fraction": image_holdout(dataset) if dataset["format"] == "image_folder" else dataset["validation_fraction"],
        # train.py.j2 reads tables; an image folder's keras_cnn trial is train_image.py.j2, which reads folders itself.
        "data_format": "parquet" if dataset["format"] == "parquet" else "csv",
        "model_requirements": list(MODEL_REQUIREMENTS) + list(FAMILY_MODEL_REQUIREMENTS.get(family.name, ())),
        "image_suffixes": sorted(IMAGE_SUFFIXES),
        "held_out_artifact": HELD_OUT_ARTIFACT,  # where the trial stores its predictions on its validation rows
        "intervals": INTERVALS,
        # forecasting: the spec's settings under Azure's names (train_forecast.py.j2 validates by rolling origin)
        "forecasting": settings_block(spec),
        "model_metadata_key": FORECAST_METADATA_KEY,
    }


def domain_of(h) -> dict:
    """A hyperparameter's domain as the trial script checks it (capc.families holds it)."""
    return {"low": h.low, "high": h.high, "open_low": h.open_low, "open_high": h.open_high, "allowed": list(h.allowed), "words": h.domain}


# ---------------------------------------------------------------- retraining pipeline

COMPONENT_TYPES = {"int": "integer", "float": "number", "str": "string"}


def _trial_component(spec, dataset: dict, node: str, script: str, space: dict, family: str | None, seed_words: list[str]) -> dict:
    """The command component a pipeline's sweep node runs: the trial with its parameters as typed inputs."""
    hyperparameters = {h.name: h for h in FAMILIES[family].hyperparameters} if family else {}
    inputs = {}
    for param, dist in space.items():
        if param in hyperparameters:
            kind, default = COMPONENT_TYPES[hyperparameters[param].kind], hyperparameters[param].default
        else:  # a user script or a grid index: the distribution says what it sends
            first = dist["values"][0] if dist["type"] == "choice" else dist.get("min_value", dist.get("mu", 0))
            kind = "integer" if dist["type"] in ("choice", "randint") and isinstance(first, int) else "string" if isinstance(first, str) else "number"
            default = first if dist["type"] != "randint" else 0
        inputs[param] = {"type": kind, "default": default}
    stem = spec.name.replace("-", "_")
    return {
        "file": "sweep_trial.yml" if node == "sweep" else f"sweep_trial_{node.removeprefix('sweep_')}.yml",
        "name": f"{stem}_trial" if node == "sweep" else f"{stem}_{node.removeprefix('sweep_')}_trial",
        "inputs": inputs,
        "command": trial_command(
            spec.metric, space, "inputs", target=dataset["target"], script=script, extra=[*seed_words, "--output_dir ${{outputs.model_output}}"]
        ),
    }


def pipeline_context(spec, dataset: dict, automl: dict, sweep: dict | None, environment: dict) -> dict | None:
    """AutoML and the sweep (one node per sweep job) side by side, then select_best.py registers the best winner
    within the serving budget, measuring them through score.py (so its step runs in the job folder, with the
    scoring stack)."""
    if not sweep or not automl["enabled"] or not sweep["enabled"]:
        return None
    deploy = None
    if spec.data["deployment"]["auto_deploy"]:
        # Its code is the whole job folder: endpoint.yml and deployment.yml name score.py and conda.yml beside them.
        deploy = {"command": " ".join([
            "python select/deploy_winner.py",
            "--winner ${{inputs.winner}}",
            "--endpoint_file endpoint.yml",
            "--deployment_file deployment.yml",
        ])}
    # Candidates of the selecting step: input name -> the output it reads; each named on the command line.
    candidates = {"automl_model": ("automl", "${{parent.jobs.automl.outputs.best_model}}")}
    for job in sweep["jobs"].values():
        candidates[f"{job['node']}_model"] = (job["node"], f"${{{{parent.jobs.{job['node']}.outputs.model_output}}}}")
    select = [
        "python select/select_best.py",
        *(f"--candidate {node}=${{{{inputs.{name}}}}}" for name, (node, _) in candidates.items()),
        f"--metric {shlex.quote(spec.metric)}",
        f"--goal {spec.goal}",
        f"--model_name {shlex.quote(spec.name)}",
        f"--deployment_model {spec.data['deployment']['model']}",
    ]
    if serving_cost.is_measured(spec.task):  # candidates are measured with rows of the training table
        select += ["--score score.py", "--training_data ${{inputs.training_data}}", f"--target {shlex.quote(dataset['target'])}"]
        budget = spec.data["deployment"]
        select += [f"--{key} {budget[key]!r}" for key in SERVING_BUDGET_KEYS if budget.get(key) is not None]
        select += _load_budget_arguments(budget)
    select.append("--output ${{outputs.winner}}")
    return {
        "training_table": "${{parent.inputs.training_table}}",
        "training_file": "${{parent.inputs.training_file}}",
        "sweep_nodes": list(sweep["jobs"].values()),
        "candidates": {name: binding for name, (_, binding) in candidates.items()},
        "select_command": " ".join(select),
        "select_measures": serving_cost.is_measured(spec.task),
        "select_environment": {
            "name": f"{spec.name}-select-env",
            "python": spec.data["environment"]["python"],
            # The scoring stack too: the step loads each candidate through score.py to measure it.
            "pip": [f"{name}=={version}" for name, version in sorted(SELECT_STEP_PINS.items())]
            + [p for p in environment["pip"] if p.split("==")[0] not in SELECT_STEP_PINS],
        },
        "winner": "${{parent.jobs.select_best.outputs.winner}}",
        "deploy": deploy,
    }


def _load_budget_arguments(deployment: dict) -> list[str]:
    """select_best.py's load budget (deployment.min_requests_per_s, deployment.load), with the deployment's server
    settings (deployment.yml, beside it in the step's code) and the instance's vCPUs for the estimate."""
    from capc.load_budget import instance_vcpus

    load = deployment["load"]
    if deployment.get("min_requests_per_s") is None and load.get("max_p99_ms") is None:
        return []
    out = [f"--min_requests_per_s {deployment['min_requests_per_s']!r}"] if deployment.get("min_requests_per_s") is not None else []
    out += [f"--max_load_p99_ms {load['max_p99_ms']!r}"] if load.get("max_p99_ms") is not None else []
    out += [f"--load_concurrency {int(load['concurrency'])}", "--deployment_file deployment.yml",
            f"--instance_type {shlex.quote(deployment['instance_type'])}"]
    vcpus = instance_vcpus(deployment["instance_type"])
    return out + ([f"--instance_vcpus {vcpus}"] if vcpus else [])
