"""Stage 2, validate (service rules): what Azure ML refuses, or quietly slows down, only once a job is submitted.

One table, SERVICE_RULES, each rule citing the documentation page it comes from. `load_spec` runs it after the
schema and the semantic checks, so `capc validate`, `capc plan`, `build` and `submit` all apply the same rules:
an error makes the spec invalid; a warning travels on `Spec.warnings`, which `validate` and `plan` print and
`--strict` turns into errors. A rule reads the checked mapping (defaults filled, distributions as written) and
yields Findings: a key path, a message and a hint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from capc.spec.hints import did_you_mean
from capc.spec.search_space import SAMPLING_ALLOWS, SearchSpaceError, normalise, parse_compact

ERROR, WARNING = "error", "warning"

# Sweep limits, "Set limits for your sweep job": max_total_trials "must be an integer between 1 and 1000",
# max_concurrent_trials likewise (https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters).
SWEEP_MAX_TOTAL_TRIALS = 1000
SWEEP_MAX_CONCURRENT_TRIALS = 1000

# VM sizes a managed online deployment accepts (instance_type), with their quota family, vCPUs and GPUs, as the
# "Managed online endpoints SKU list" gives them
# (https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list).
ONLINE_ENDPOINT_SIZES: dict[str, tuple[str, int, float]] = {
    **{f"Standard_D{n}as_v4": ("standardDASv4Family", n, 0) for n in (2, 4, 8, 16, 32, 48, 64, 96)},
    **{f"Standard_D{n}a_v4": ("standardDAv4Family", n, 0) for n in (2, 4, 8, 16, 32, 48, 64, 96)},
    **{f"Standard_DS{i}_v2": ("standardDSv2Family", n, 0) for i, n in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16))},
    **{f"Standard_E{n}s_v3": ("standardESv3Family", n, 0) for n in (2, 4, 8, 16, 32, 48, 64)},
    **{f"Standard_F{n}s_v2": ("standardFSv2Family", n, 0) for n in (2, 4, 8, 16, 32, 48, 64, 72)},
    **{f"Standard_FX{n}mds": ("standardFXMDVSFamily", n, 0) for n in (4, 12, 24, 36, 48)},
    **{f"Standard_L{n}as_v3": ("standardLASv3Family", n, 0) for n in (8, 16, 32, 48, 64, 80)},
    **{f"Standard_L{n}s_v2": ("standardLSv2Family", n, 0) for n in (8, 16, 32, 48, 64, 80)},
    **{f"Standard_L{n}s_v3": ("standardLSv3Family", n, 0) for n in (8, 16, 32, 48, 64, 80)},
    **{f"Standard_NC{n}ads_A100_v4": ("standardNCADSA100v4Family", n, g) for n, g in ((24, 1), (48, 2), (96, 4))},
    **{f"Standard_NC{n}as_T4_v3": ("standardNCASv3_T4Family", n, g) for n, g in ((4, 1), (8, 1), (16, 1), (64, 4))},
    **{f"Standard_NC{n}s_v2": ("standardNCSv2Family", n, g) for n, g in ((6, 1), (12, 2), (24, 4))},
    **{f"Standard_NC{n}s_v3": ("standardNCSv3Family", n, g) for n, g in ((6, 1), (12, 2), (24, 4))},
    "Standard_NC40ads_H100_v5": ("standardNCADSH100v5Family", 40, 1),
    "Standard_NC80adis_H100_v5": ("standardNCADSH100v5Family", 80, 2),
    "Standard_ND96amsr_A100_v4": ("standardNDAMSv4_A100Family", 96, 8),
    "Standard_ND96asr_v4": ("standardNDASv4_A100Family", 96, 8),
    "Standard_ND40rs_v2": ("standardNDSv2Family", 40, 8),
    "Standard_ND96is_H100_v5": ("standardNDv5H100Family", 96, 8),
    "Standard_ND96isr_H100_v5": ("standardNDv5H100Family", 96, 8),
    **{f"Standard_NV{n}ads_A10_v5": ("standardNVADSA10v5Family", n, g) for n, g in ((6, 1 / 6), (12, 1 / 3), (18, 1 / 2), (36, 1), (72, 2))},
    "Standard_NV36adms_A10_v5": ("standardNVADSA10v5Family", 36, 1),
}
_ENDPOINT_SIZES_BY_KEY = {name.lower(): name for name in ONLINE_ENDPOINT_SIZES}

_MIGRATION_GUIDES = "https://learn.microsoft.com/azure/virtual-machines/sizes/migration-guides"
# VM sizes Azure has retired: "Series with Retirement Status listed as Retired are no longer available and can't be
# provisioned" (https://learn.microsoft.com/azure/virtual-machines/sizes/retirement/retired-sizes-list), and VMs made
# before are deallocated. Only series whose retirement date had passed when this table was written (2026-11-30);
# series merely announced (Dv2/DSv2 on 2028-05-01, Av2, F/Fsv2 ...) are not refused. lower-case size -> (series,
# retired on, the page that gives the date).
RETIRED_SIZES: dict[str, tuple[str, str, str]] = {
    size.lower(): (series, date, page)
    for series, date, page, sizes in (
        ("NCv3", "2025-09-30", "https://learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement",
         ("Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3")),
        ("NCv3 NC24rs", "2025-09-30", "https://learn.microsoft.com/azure/virtual-machines/ncv3-nc24rs-retirement", ("Standard_NC24rs_v3",)),
        ("NVv3", "2026-09-30", "https://learn.microsoft.com/azure/virtual-machines/sizes/retirement/retired-sizes-list",
         ("Standard_NV12s_v3", "Standard_NV24s_v3", "Standard_NV48s_v3")),
        ("NVv4", "2026-09-30", "https://learn.microsoft.com/azure/virtual-machines/sizes/retirement/retired-sizes-list",
         ("Standard_NV4as_v4", "Standard_NV8as_v4", "Standard_NV16as_v4", "Standard_NV32as_v4")),
        ("NC", "2023-09-06", f"{_MIGRATION_GUIDES}/nc-series-retirement",
         [f"Standard_NC{n}{promo}" for n in ("6", "12", "24", "24r") for promo in ("", "_Promo")]),
        ("NCv2", "2023-09-06", f"{_MIGRATION_GUIDES}/ncv2-series-retirement",
         ("Standard_NC6s_v2", "Standard_NC12s_v2", "Standard_NC24s_v2", "Standard_NC24rs_v2")),
        ("ND", "2023-09-06", f"{_MIGRATION_GUIDES}/nd-series-retirement",
         ("Standard_ND6s", "Standard_ND12s", "Standard_ND24s", "Standard_ND24rs")),
        ("NV", "2023-09-06", f"{_MIGRATION_GUIDES}/nv-series-retirement",
         [f"Standard_NV{n}{promo}" for n in (6, 12, 24) for promo in ("", "_Promo")]),
        ("Av1", "2024-08-31", f"{_MIGRATION_GUIDES}/av1-series-retirement",
         [f"Standard_A{n}" for n in range(8)] + [f"Basic_A{n}" for n in range(5)]),
    )
    for size in sizes
}
GPU_SIZE_EXAMPLES = "Standard_NC4as_T4_v3 (T4) or Standard_NC24ads_A100_v4 (A100)"


def is_gpu_size(size: str) -> bool:
    """Azure's N-family sizes (NC, ND, NG, NV) are the GPU ones
    (https://learn.microsoft.com/azure/virtual-machines/sizes/overview, "GPU accelerated")."""
    return size.lower().startswith("standard_n")


@dataclass(frozen=True)
class Finding:
    path: tuple
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class ServiceRule:
    name: str
    severity: str  # ERROR: Azure refuses the job; WARNING: Azure accepts it but does not do what the spec says
    doc: str  # the page the rule comes from
    check: Callable[[dict], Iterator[Finding]]


# ---------------------------------------------------------------- the rules


def _sampling_accepts_distributions(data: dict) -> Iterator[Finding]:
    sweep = data.get("sweep")
    if sweep and "families" in sweep:  # a conditional sweep: every family's own space
        for name, entry in sweep["families"].items():
            if isinstance(entry, dict) and isinstance(entry.get("search_space"), dict):
                yield from _distributions_fit(sweep["sampling"], entry["search_space"], ("sweep", "families", name, "search_space"))
    elif sweep and isinstance(sweep.get("search_space"), dict):
        yield from _distributions_fit(sweep["sampling"], sweep["search_space"], ("sweep", "search_space"))
    image = (data.get("automl") or {}).get("image")  # absent when the mapping is a job YAML's sweep (capc.jobfolder)
    if image:
        yield from _distributions_fit(image["sampling"], {"learning_rate": image.get("learning_rate")}, ("automl", "image"))


def _distributions_fit(sampling: str, space: dict, where: tuple) -> Iterator[Finding]:
    allowed = SAMPLING_ALLOWS.get(sampling)  # None for an unknown algorithm: the schema reports it
    for name, raw in space.items():
        dist = _parsed(raw)
        if allowed is not None and dist is not None and dist["type"] not in allowed:
            yield Finding(where + (name,), f"`{sampling}` sampling does not accept `{dist['type']}`", f"it accepts {', '.join(sorted(allowed))}")


def _parsed(raw) -> dict | None:
    """A distribution in Azure's mapping form; None when it does not parse (its own check reports why)."""
    try:
        if isinstance(raw, str):
            return parse_compact(raw)
        return normalise(raw) if isinstance(raw, dict) else None
    except SearchSpaceError:
        return None


def _bayesian_takes_no_early_termination(data: dict) -> Iterator[Finding]:
    sweep = data.get("sweep")
    if sweep and sweep["sampling"] == "bayesian" and sweep.get("early_termination"):
        yield Finding(
            ("sweep", "early_termination"),
            "Azure ML refuses an early-termination policy with bayesian sampling",
            "remove early_termination, or use `sampling: random` to keep the policy",
        )


def _concurrency_within_cluster(data: dict) -> Iterator[Finding]:
    compute = data["compute"]
    nodes = compute["max_instances"]
    sweep = data.get("sweep")
    if sweep and sweep.get("enabled", True) and sweep["limits"]["max_concurrent_trials"] > nodes:
        yield Finding(
            ("sweep", "limits", "max_concurrent_trials"),
            f"{sweep['limits']['max_concurrent_trials']} concurrent trials on cluster `{compute['name']}` of at most {nodes} nodes: the rest queue",
            f"lower it to {nodes} or raise compute.max_instances",
        )
    automl = data["automl"]
    # Image AutoML runs on its own GPU cluster; capc knows that cluster's size only when it is the spec's compute.
    automl_cluster = automl["image"]["gpu_compute"] if data["task"] == "image_classification" else compute["name"]
    if automl["enabled"] and automl_cluster == compute["name"] and automl["max_concurrent_trials"] > nodes:
        yield Finding(
            ("automl", "max_concurrent_trials"),
            f"{automl['max_concurrent_trials']} concurrent AutoML trials on cluster `{compute['name']}` of at most {nodes} nodes: the rest queue",
            f"lower it to {nodes} or raise compute.max_instances",
        )


def _sweep_limits_within_maxima(data: dict) -> Iterator[Finding]:
    sweep = data.get("sweep")
    if not sweep:
        return
    limits = sweep["limits"]
    for key, most in (("max_total_trials", SWEEP_MAX_TOTAL_TRIALS), ("max_concurrent_trials", SWEEP_MAX_CONCURRENT_TRIALS)):
        if limits[key] > most:
            yield Finding(("sweep", "limits", key), f"{limits[key]} is above Azure ML's maximum of {most}", f"use at most {most}")


def _image_task_runs_on_gpu(data: dict) -> Iterator[Finding]:
    if data["task"] != "image_classification" or not data["automl"]["enabled"]:
        return
    compute = data["compute"]
    if data["automl"]["image"]["gpu_compute"] == compute["name"] and not is_gpu_size(compute["size"]):
        yield Finding(
            ("compute", "size"),
            f"AutoML image tasks need a GPU cluster; `{compute['size']}` has no GPU",
            f"use a GPU size such as {GPU_SIZE_EXAMPLES}",
        )


def _size_not_retired(data: dict) -> Iterator[Finding]:
    for path, size in ((("compute", "size"), data["compute"]["size"]), (("deployment", "instance_type"), data["deployment"]["instance_type"])):
        retired = RETIRED_SIZES.get(size.lower())
        if retired:
            series, date, page = retired
            other = GPU_SIZE_EXAMPLES if is_gpu_size(size) else "Standard_D4as_v4 or Standard_DS3_v2"
            yield Finding(path, f"`{size}` ({series} series) was retired by Azure on {date}", f"use a current size such as {other}; see {page}")


def _endpoint_size_is_offered(data: dict) -> Iterator[Finding]:
    size = data["deployment"]["instance_type"]
    if size.lower() not in _ENDPOINT_SIZES_BY_KEY:
        yield Finding(
            ("deployment", "instance_type"),
            f"`{size}` is not a size managed online endpoints offer",
            did_you_mean(size, list(ONLINE_ENDPOINT_SIZES)) or "e.g. Standard_DS3_v2 or Standard_F4s_v2",
        )


# What Azure ML answers a pipeline whose sweep node has a seeded sampling algorithm (azure-sdk-for-python#33703,
# open since 2024-01: `command.sweep(sampling_algorithm=RandomSamplingAlgorithm(seed=0, rule="random"))`).
SEEDED_PIPELINE_SWEEP_MESSAGE = "Error occurred when loading YAML file rootNode, details: Algorithm  is not supported by Sweep Component."
SEEDED_PIPELINE_SWEEP_ISSUE = "https://github.com/Azure/azure-sdk-for-python/issues/33703"
RANDOM_SAMPLING_DOC = "https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#random-sampling"


def _pipeline_sweep_takes_no_seed(data: dict) -> Iterator[Finding]:
    """A pipeline job mapping (`jobs:`): a sweep node whose sampling_algorithm carries a seed."""
    jobs = data.get("jobs") if data.get("type") == "pipeline" else None
    for node, job in (jobs or {}).items():
        sampling = job.get("sampling_algorithm") if isinstance(job, dict) and job.get("type") == "sweep" else None
        if isinstance(sampling, dict) and sampling.get("seed") is not None:
            yield Finding(
                ("jobs", node, "sampling_algorithm"),
                f"Azure ML refuses a seeded sampling algorithm in a pipeline's sweep node: {SEEDED_PIPELINE_SWEEP_MESSAGE!r}",
                "write `sampling_algorithm: random` (no seed) in the pipeline, and seed the sweep submitted as its own "
                f"sweep job, which takes it ({SEEDED_PIPELINE_SWEEP_ISSUE})",
            )


def _pipeline_sweep_runs_unseeded(data: dict) -> Iterator[Finding]:
    """A spec: its seed reaches the sweep job, but capc compiles the pipeline's sweep nodes without it (the rule above)."""
    sweep, automl = data.get("sweep"), data.get("automl") or {}
    pipeline = bool(sweep and sweep.get("enabled", True) and automl.get("enabled", True))
    if data.get("seed") is not None and pipeline and sweep.get("sampling") == "random":
        yield Finding(
            ("seed",),
            "the retraining pipeline's sweep samples unseeded: Azure ML refuses a seeded sampling algorithm in a "
            f"pipeline's sweep node ({SEEDED_PIPELINE_SWEEP_MESSAGE!r}); sweep_job.yml and the trial scripts keep the seed",
            f"for a repeatable search on Azure submit the sweep job itself (`capc submit --target azure`); see {SEEDED_PIPELINE_SWEEP_ISSUE}",
        )


def is_floating_image(image: str) -> bool:
    """An image named by `:latest` or by no tag or digest at all: its content changes under the same name."""
    last = image.rsplit("/", 1)[-1]
    return "@" not in last and (":" not in last or image.endswith(":latest"))


def _image_is_pinned(data: dict) -> Iterator[Finding]:
    """An image by `:latest` (or no tag): Azure builds it once per environment version, so the version capc derives
    from the image's name stops saying what runs."""
    image = (data.get("environment") or {}).get("image")
    if isinstance(image, str) and is_floating_image(image):
        yield Finding(("environment", "image"), f"`{image}` names no fixed image: the environment's version cannot tell its builds apart",
                      "pin a dated tag (e.g. mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20241202.v1) or a digest (@sha256:...)")


def _aggregation_needs_frequency(data: dict) -> Iterator[Finding]:
    block = data.get("forecasting") or {}
    function = block.get("target_aggregate_function")
    if function not in (None, "none") and "frequency" not in block:
        yield Finding(("forecasting", "target_aggregate_function"),
                      f"Azure ML refuses target_aggregate_function `{function}` without a frequency to aggregate to",
                      "add forecasting.frequency (a pandas offset alias such as D, MS or QS)")


def _tcn_needs_dnn_training(data: dict) -> Iterator[Finding]:
    """capc never sets training.enable_dnn_training, so Azure's one deep forecaster is never trained."""
    if data["task"] != "forecasting":
        return
    for i, name in enumerate(data["automl"]["allowed_models"]):
        if name == "TCNForecaster":
            yield Finding(("automl", "allowed_models", i), "Azure trains TCNForecaster only with enable_dnn_training, which capc does not set",
                          "remove it; AutoML tries the other allowed models")


SERVICE_RULES: tuple[ServiceRule, ...] = (
    # "Grid sampling can only be used with choice hyperparameters"; "Bayesian sampling supports choice, uniform,
    # and quniform distributions" (https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters).
    ServiceRule("sampling_accepts_distributions", ERROR,
                "https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#sampling-the-hyperparameter-space",
                _sampling_accepts_distributions),
    # "Bayesian sampling does not support early termination policies. When using Bayesian parameter sampling, use
    # NoTerminationPolicy" (HyperDrive's BayesianParameterSampling reference; v2 sweep jobs run on that service).
    ServiceRule("bayesian_takes_no_early_termination", ERROR,
                "https://learn.microsoft.com/python/api/azureml-train-core/azureml.train.hyperdrive.bayesianparametersampling",
                _bayesian_takes_no_early_termination),
    # "The number of concurrent trial jobs is gated on the resources available in the specified compute target"
    # (how-to-tune-hyperparameters); AutoML: "match max_concurrent_trials count with the number of nodes in the
    # cluster" (azure.ai.ml.automl.TabularLimitSettings / ImageLimitSettings reference).
    ServiceRule("concurrency_within_cluster", WARNING,
                "https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.automl.tabularlimitsettings",
                _concurrency_within_cluster),
    # max_total_trials and max_concurrent_trials: "an integer between 1 and 1000" (how-to-tune-hyperparameters).
    ServiceRule("sweep_limits_within_maxima", ERROR,
                "https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#set-limits-for-your-sweep-job",
                _sweep_limits_within_maxima),
    # AutoML for images trains on GPU compute only: "Only remote GPU computes with more than 12 GB of GPU memory are
    # supported" (AutoMLImageConfig reference; https://learn.microsoft.com/azure/machine-learning/how-to-auto-train-image-models).
    ServiceRule("image_task_runs_on_gpu", ERROR,
                "https://learn.microsoft.com/azure/machine-learning/how-to-auto-train-image-models",
                _image_task_runs_on_gpu),
    # Retired sizes "can't be provisioned" (the list of retired series; each series' page is cited in RETIRED_SIZES).
    ServiceRule("size_not_retired", ERROR,
                "https://learn.microsoft.com/azure/virtual-machines/sizes/retirement/retired-sizes-list",
                _size_not_retired),
    # Managed online deployments take only the listed VM sizes
    # (https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list).
    ServiceRule("endpoint_size_is_offered", ERROR,
                "https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list",
                _endpoint_size_is_offered),
    # A seeded RandomSamplingAlgorithm in a pipeline's sweep node is refused when the pipeline is submitted
    # (azure-sdk-for-python#33703; the sampling options: https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#random-sampling).
    # Job YAMLs (`capc validate pipeline.yml`) get the error; a spec the warning, since capc compiles around it.
    ServiceRule("pipeline_sweep_takes_no_seed", ERROR, RANDOM_SAMPLING_DOC, _pipeline_sweep_takes_no_seed),
    ServiceRule("pipeline_sweep_runs_unseeded", WARNING, RANDOM_SAMPLING_DOC, _pipeline_sweep_runs_unseeded),
    # "Azure Machine Learning builds a Docker image ... the environment's version": a registered environment version
    # is built once; an image tag that moves (`:latest`) changes what a rebuild would hold, not the version
    # (https://learn.microsoft.com/azure/machine-learning/concept-environments#environment-building-caching-and-reuse).
    ServiceRule("image_is_pinned", WARNING,
                "https://learn.microsoft.com/azure/machine-learning/concept-environments#environment-building-caching-and-reuse",
                _image_is_pinned),
    # target_aggregate_function: "If the TargetAggregateFunction is set i.e. not 'None', but the freq parameter is not
    # set, the error is raised" (ForecastingSettings reference).
    ServiceRule("aggregation_needs_frequency", ERROR,
                "https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.automl.forecastingsettings",
                _aggregation_needs_frequency),
    # TCNForecaster is the deep learner of AutoML forecasting; the job's training settings turn it on with
    # enable_dnn_training (training: enable_dnn_training, ForecastingTrainingSettings), which capc's spec has no key
    # for (https://learn.microsoft.com/azure/machine-learning/concept-automl-forecasting-deep-learning).
    ServiceRule("tcn_needs_dnn_training", WARNING,
                "https://learn.microsoft.com/azure/machine-learning/concept-automl-forecasting-deep-learning",
                _tcn_needs_dnn_training),
)



def refuse_warnings(specs) -> None:
    """`--strict`: the service-rule warnings of every spec become errors, reported together."""
    from capc.errors import SpecInvalid

    warnings = [warning for spec in specs for warning in spec.warnings]
    if warnings:
        raise SpecInvalid(warnings)
