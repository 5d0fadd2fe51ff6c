"""Trial families built into capc: which tasks each serves, which hyperparameters its train.py accepts, each
hyperparameter's domain (whole number or real, its legal range, the strings it allows) and how often a trial
reports its metric.

One table, used by validation (search-space parameters must be ones the family accepts, every distribution's
values inside the domain: capc.spec.domains), by rendering (train.py's argument parser, its defaults and the
domain it casts to and checks), by `capc families` and by the README's family table (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field


# Metric reports of the step-wise families: the trial trains in this many intervals and logs the metric after each
# (train.py's INTERVALS), so an early-termination policy has something to compare.
INTERVALS = 10


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: str  # "int" | "float" | "str": how train.py casts --name VALUE (int: rounded to the nearest whole number)
    default: object
    help: str
    low: float | None = None  # legal range; None: unbounded on that side
    high: float | None = None
    open_low: bool = False  # the bound itself is not legal (C > 0)
    open_high: bool = False
    allowed: tuple[str, ...] = ()  # kind "str": the legal values

    @property
    def domain(self) -> str:
        """The legal values in words: `integer >= 0`, `real in (0, 1]`, `one of "l2", "l1"`."""
        if self.kind == "str":
            return "one of " + ", ".join(f'"{a}"' for a in self.allowed)
        noun = "integer" if self.kind == "int" else "real"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f"{noun} {'>' if self.open_low else '>='} {low}"
        if self.high is not None:
            return f"{noun} {'<' if self.open_high else '<='} {high}"
        return f"any {noun}"

    def admits(self, value) -> bool:
        """Whether one value (as the trial script casts it) is legal."""
        if self.kind == "str":
            return value in self.allowed
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class TrialFamily:
    name: str
    tasks: tuple[str, ...]
    hyperparameters: tuple[Hyperparameter, ...]
    # How often a trial logs its metric: "intervals" (INTERVALS times, as it trains), "epochs" (once per epoch) or
    # "once" (one fit, one value: no early-termination policy can stop it before it ends).
    reports: str
    needs_extra: str | None = None  # pip extra (capc[keras]) the family's trial script imports
    pip: tuple[str, ...] = field(default=())  # what its environment needs beyond the common stack

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hyperparameters)

    def hyperparameter(self, name: str) -> Hyperparameter | None:
        return next((h for h in self.hyperparameters if h.name == name), None)

    @property
    def reports_text(self) -> str:
        return {"intervals": f"{INTERVALS} times per trial", "epochs": "once per epoch", "once": "once (one fit)"}[self.reports]


H = Hyperparameter
POSITIVE = dict(low=0.0, open_low=True)  # > 0
SHARE = dict(low=0.0, high=1.0, open_low=True)  # (0, 1]: a share of rows or columns

FAMILIES: dict[str, TrialFamily] = {
    f.name: f
    for f in (
        TrialFamily(
            "logistic_regression",
            ("classification",),
            (
                H("C", "float", 1.0, "inverse regularisation strength", **POSITIVE),
                H("max_iter", "int", 100, "solver iterations", low=1),
                H("penalty", "str", "l2", "regularisation (none: C is ignored)", allowed=("l2", "l1", "elasticnet", "none")),
                H("l1_ratio", "float", 0.5, "elastic-net mixing (penalty=elasticnet)", low=0.0, high=1.0),
                H("tol", "float", 1e-4, "stopping tolerance", **POSITIVE),
            ),
            "intervals",
        ),
        TrialFamily(
            "svc",
            ("classification",),
            (
                H("C", "float", 1.0, "penalty of misclassified training points", **POSITIVE),
                H("gamma", "float", 0.0, "kernel coefficient of rbf, poly and sigmoid (0: scale, 1 / (features x variance))", low=0.0),
                H("kernel", "str", "rbf", "kernel function", allowed=("rbf", "poly", "sigmoid", "linear")),
                H("degree", "int", 3, "degree of the poly kernel", low=1),
                H("tol", "float", 1e-3, "stopping tolerance", **POSITIVE),
                H("scaling", "str", "standard", "standard: each numeric column on its own; global: one scale for all (pixels)", allowed=("standard", "global")),
            ),
            "once",
        ),
        TrialFamily(
            "random_forest",
            ("classification", "regression"),
            (
                H("n_estimators", "int", 200, "trees", low=1),
                H("max_depth", "int", 0, "tree depth (0: unlimited)", low=0),
                H("min_samples_split", "int", 2, "samples to split a node", low=2),
                H("min_samples_leaf", "int", 1, "samples in a leaf", low=1),
                H("max_features", "float", 1.0, "share of features per split", **SHARE),
            ),
            "intervals",
        ),
        TrialFamily(
            "lightgbm",
            # forecasting: the same learner over lag and rolling-window features, scored by rolling origin
            ("classification", "regression", "forecasting"),
            (
                H("n_estimators", "int", 400, "boosting rounds", low=1),
                H("learning_rate", "float", 0.05, "shrinkage", **POSITIVE),
                H("num_leaves", "int", 31, "leaves per tree", low=2, high=131072),
                H("max_depth", "int", -1, "tree depth (-1: unlimited)", low=-1),
                H("min_child_samples", "int", 20, "samples in a leaf", low=1),
                H("subsample", "float", 1.0, "row sampling", **SHARE),
                H("colsample_bytree", "float", 1.0, "column sampling", **SHARE),
                H("reg_alpha", "float", 0.0, "L1 regularisation", low=0.0),
                H("reg_lambda", "float", 0.0, "L2 regularisation", low=0.0),
            ),
            "intervals",
            pip=("lightgbm==4.7.0",),
        ),
        TrialFamily(
            "keras_mlp",
            ("classification", "regression"),
            (
                H("batch_size", "int", 64, "minibatch size", low=1),
                H("epochs", "int", 20, "training epochs", low=1),
                H("first_layer_neurons", "int", 64, "width of the first hidden layer", low=1),
                H("second_layer_neurons", "int", 32, "width of the second hidden layer", low=1),
                H("learning_rate", "float", 0.001, "Adam learning rate", **POSITIVE),
                H("dropout", "float", 0.0, "dropout after each hidden layer", low=0.0, high=0.9),
            ),
            "epochs",
            needs_extra="keras",
            pip=("keras==3.15.0", "torch==2.13.0"),
        ),
        TrialFamily(
            "keras_cnn",
            ("image_classification",),
            (
                H("filters", "int", 32, "filters of the first convolution (doubles per block)", low=1),
                H("depth", "int", 3, "convolution blocks", low=1),
                H("dropout", "float", 0.3, "dropout before the classifier", low=0.0, high=1.0, open_high=True),
                H("learning_rate", "float", 0.001, "Adam learning rate", **POSITIVE),
                H("image_size", "int", 128, "side of the square input, pixels", low=16),
                H("epochs", "int", 15, "training epochs", low=1),
                H("batch_size", "int", 16, "minibatch size", low=1),
            ),
            "epochs",
            needs_extra="keras",
            pip=("keras==3.15.0", "torch==2.13.0", "pillow"),
        ),
    )
}
