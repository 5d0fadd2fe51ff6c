"""Backend, local AutoML: the settings of a generated Azure AutoML tabular job (automl_job.yml), with Azure's
defaults, checked, and the FLAML learners that run its algorithms here."""

from __future__ import annotations

from dataclasses import dataclass, field

from capc import azure_names
from capc.errors import CapcError
from capc.goal import Goal
from capc.local.cores import automl_alone_threads
from capc.local.automl import names
from capc.spec.hints import did_you_mean

TABULAR_TASKS = ("classification", "regression", "forecasting")
# Azure's service defaults for a job that leaves them out (TableVerticalLimitSettings).
DEFAULT_TIMEOUT_MINUTES = 360
DEFAULT_TRIAL_TIMEOUT_MINUTES = 30
DEFAULT_MAX_TRIALS = 1000
DEFAULT_FORECAST_FOLDS = 3  # forecasting's n_cross_validations: auto - rolling-origin folds
DEFAULT_PRIMARY_METRIC = {"classification": "AUC_weighted", "regression": "normalized_root_mean_squared_error",
                          "forecasting": "normalized_root_mean_squared_error"}


@dataclass(frozen=True)
class AutoMLSettings:
    """The settings of one Azure AutoML tabular job, with Azure's names (algorithms in PascalCase)."""

    task: str
    primary_metric: str
    target_column: str
    n_cross_validations: int | None = None
    validation_data_size: float | None = None
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES
    trial_timeout_minutes: float | None = DEFAULT_TRIAL_TIMEOUT_MINUTES
    max_trials: int = DEFAULT_MAX_TRIALS
    max_concurrent_trials: int = 1
    enable_early_termination: bool = True
    exit_score: float | None = None
    allowed_algorithms: tuple[str, ...] = ()
    blocked_algorithms: tuple[str, ...] = ()
    enable_vote_ensemble: bool = True
    enable_stack_ensemble: bool = True
    featurization: str = "auto"
    seed: int = 0
    # capc.local.reproducible: trials counted, not timed; learners in turn; no sampling or refit deadline.
    reproducible: bool = False
    # Threads of each trial: this machine's, not Azure's (capc.local.cores; a submit running the sweep beside
    # AutoML passes its share).
    threads: int = field(default_factory=automl_alone_threads)
    # task forecasting: the job's `forecasting:` block, Azure's keys (capc.forecasting.Settings.from_azure reads it).
    forecasting: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TABULAR_TASKS:
            raise CapcError(
                f"AutoML task `{self.task}` cannot run on the local tabular engine; it runs classification, regression and forecasting.",
            )
        if self.primary_metric not in azure_names.AUTOML_METRICS[self.task]:
            raise CapcError(
                f"`{self.primary_metric}` is not an Azure AutoML primary metric for {self.task}.",
                did_you_mean(self.primary_metric, azure_names.AUTOML_METRICS[self.task]),
            )
        for name in self.allowed_algorithms + self.blocked_algorithms:
            if name not in names.ALGORITHM_ESTIMATORS[self.task]:
                raise CapcError(
                    f"`{name}` is not an Azure AutoML {self.task} algorithm.",
                    did_you_mean(name, names.ALGORITHM_ESTIMATORS[self.task]),
                )
        if self.n_cross_validations is not None and self.n_cross_validations < 2:
            raise CapcError(f"n_cross_validations must be at least 2, not {self.n_cross_validations}.")
        if self.validation_data_size is not None and not 0 < self.validation_data_size < 1:
            raise CapcError(
                f"validation_data_size must be between 0 and 1 (a fraction of the rows), not {self.validation_data_size}."
            )
        if self.n_cross_validations is not None and self.validation_data_size is not None:
            raise CapcError("an AutoML job takes n_cross_validations or validation_data_size, not both.")
        if self.timeout_minutes <= 0 or (self.trial_timeout_minutes is not None and self.trial_timeout_minutes <= 0):
            raise CapcError("AutoML timeout_minutes and trial_timeout_minutes must be positive.")
        if self.max_trials < 1:
            raise CapcError(f"AutoML max_trials must be at least 1, not {self.max_trials}.")
        if self.threads < 1:
            raise CapcError(f"AutoML needs at least one thread, not {self.threads}.")
        if self.featurization not in ("auto", "off"):
            raise CapcError(f"featurization mode `{self.featurization}` is not one the local engine runs; use auto or off.")

    @property
    def forecast_folds(self) -> int:
        """Rolling-origin folds of a forecasting job (n_cross_validations; auto: DEFAULT_FORECAST_FOLDS)."""
        return self.n_cross_validations or DEFAULT_FORECAST_FOLDS

    @property
    def goal(self) -> Goal:
        return Goal.of(self.task, self.primary_metric)

    @classmethod
    def from_job_yaml(cls, job: dict) -> AutoMLSettings:
        """Settings from an Azure AutoML job mapping (automl_job.yml as loaded), with Azure's defaults."""
        task = str(job.get("task") or "")
        if task not in TABULAR_TASKS:
            raise CapcError(
                f"automl_job.yml: task `{task}` cannot run on the local tabular engine; it runs classification, regression and forecasting.",
            )
        metric_spelling = job.get("primary_metric") or DEFAULT_PRIMARY_METRIC[task]
        metric = azure_names.metric_from_yaml(task, str(metric_spelling))
        if metric is None:
            raise CapcError(
                f"automl_job.yml: `{metric_spelling}` is not an Azure AutoML primary metric for {task}.",
                did_you_mean(str(metric_spelling), azure_names.AUTOML_METRICS[task]),
            )
        target = job.get("target_column_name")
        if not target:
            raise CapcError("automl_job.yml has no target_column_name.")
        limits = job.get("limits") or {}
        training = job.get("training") or {}
        raw_mode = (job.get("featurization") or {}).get("mode")
        # YAML 1.1 reads a bare `mode: off` (as Azure's examples write it) as false.
        mode = "off" if raw_mode is False else str(raw_mode or "auto").lower()
        folds = job.get("n_cross_validations")
        return cls(
            task=task,
            primary_metric=metric,
            target_column=str(target),
            n_cross_validations=None if folds in (None, "auto") else int(folds),
            validation_data_size=_optional(job.get("validation_data_size"), float),
            timeout_minutes=_optional(limits.get("timeout_minutes"), float) or DEFAULT_TIMEOUT_MINUTES,
            trial_timeout_minutes=_optional(limits.get("trial_timeout_minutes"), float) or DEFAULT_TRIAL_TIMEOUT_MINUTES,
            max_trials=_optional(limits.get("max_trials"), int) or DEFAULT_MAX_TRIALS,
            max_concurrent_trials=_optional(limits.get("max_concurrent_trials"), int) or 1,
            enable_early_termination=bool(limits.get("enable_early_termination", True)),
            exit_score=_optional(limits.get("exit_score"), float),
            allowed_algorithms=tuple(algorithm_name(task, n) for n in training.get("allowed_training_algorithms") or ()),
            blocked_algorithms=tuple(algorithm_name(task, n) for n in training.get("blocked_training_algorithms") or ()),
            enable_vote_ensemble=bool(training.get("enable_vote_ensemble", True)),
            enable_stack_ensemble=bool(training.get("enable_stack_ensemble", True)),
            # Azure's "custom" is auto with user transformer parameters, which the local engine does not take.
            featurization="off" if mode == "off" else "auto",
            forecasting=dict(job.get("forecasting") or {}) if task == "forecasting" else {},
        )


def _optional(value, kind):
    return None if value is None else kind(value)


def _squash(name: str) -> str:
    return str(name).replace("_", "").replace("-", "").lower()


def algorithm_name(task: str, spelling: str) -> str:
    """Azure's PascalCase algorithm from any spelling: `light_gbm`, `LightGBM`, `lightgbm` -> `LightGBM`."""
    known = names.ALGORITHM_ESTIMATORS.get(task, {})
    found = {_squash(n): n for n in known}.get(_squash(spelling))
    if found is not None:
        return found
    message = f"automl_job.yml: `{spelling}` is not an Azure AutoML {task} algorithm"
    elsewhere = [t for t, table in names.ALGORITHM_ESTIMATORS.items() if _squash(spelling) in map(_squash, table)]
    if elsewhere:
        message += f" (it is a {elsewhere[0]} one)"
    # Suggest in the spelling the user wrote: YAML snake case or Azure's PascalCase.
    choices = [azure_names.yaml_spelling(n) for n in known] if str(spelling).lower() == str(spelling) else list(known)
    hint = did_you_mean(str(spelling), choices) or "expected one of: " + ", ".join(f"`{c}`" for c in choices)
    raise CapcError(message + ".", hint)


def resolve_estimators(settings: AutoMLSettings) -> tuple[list[str], list[str]]:
    """(FLAML estimators to search, Azure algorithms skipped because FLAML cannot run them)."""
    table = names.ALGORITHM_ESTIMATORS[settings.task]
    chosen = [a for a in (settings.allowed_algorithms or tuple(table)) if a not in settings.blocked_algorithms]
    skipped = [a for a in chosen if table[a] is None]
    wanted = {est for a in chosen for est in (table[a] or ())}
    return [est for est in names.ESTIMATOR_ORDER if est in wanted], skipped


def azure_algorithm(task: str, estimator: str) -> str:
    """FLAML estimator -> the Azure algorithm it stands for (first match in the table)."""
    for algorithm, estimators in names.ALGORITHM_ESTIMATORS[task].items():
        if estimators and estimator in estimators:
            return algorithm
    return estimator
