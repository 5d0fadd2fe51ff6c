"""Trial families built into capc: which tasks each serves and which hyperparameters its train.py accepts.

One table, used by validation (search-space parameters must be ones the family accepts) and by rendering
(train.py's argument parser and its defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: str  # "int" | "float" | "str": how train.py parses --name VALUE
    default: object
    help: str


@dataclass(frozen=True)
class TrialFamily:
    name: str
    tasks: tuple[str, ...]
    hyperparameters: tuple[Hyperparameter, ...]
    needs_extra: str | None = None  # pip extra (capc[keras]) the family's trial script imports
    pip: tuple[str, ...] = field(default=())  # what its environment needs beyond the common stack

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hyperparameters)


H = Hyperparameter

FAMILIES: dict[str, TrialFamily] = {
    f.name: f
    for f in (
        TrialFamily(
            "logistic_regression",
            ("classification",),
            (
                H("C", "float", 1.0, "inverse regularisation strength"),
                H("max_iter", "int", 100, "solver iterations"),
                H("penalty", "str", "l2", "l2 | l1 | elasticnet | none"),
                H("l1_ratio", "float", 0.5, "elastic-net mixing (penalty=elasticnet)"),
                H("tol", "float", 1e-4, "stopping tolerance"),
            ),
        ),
        TrialFamily(
            "svc",
            ("classification",),
            (
                H("C", "float", 1.0, "penalty of misclassified training points"),
                H("gamma", "float", 0.0, "kernel coefficient of rbf, poly and sigmoid (0: scale, 1 / (features x variance))"),
                H("kernel", "str", "rbf", "rbf | poly | sigmoid | linear"),
                H("degree", "int", 3, "degree of the poly kernel"),
                H("tol", "float", 1e-3, "stopping tolerance"),
                H("scaling", "str", "standard", "standard: each numeric column on its own | global: one scale for all (pixels)"),
            ),
        ),
        TrialFamily(
            "random_forest",
            ("classification", "regression"),
            (
                H("n_estimators", "int", 200, "trees"),
                H("max_depth", "int", 0, "tree depth (0: unlimited)"),
                H("min_samples_split", "int", 2, "samples to split a node"),
                H("min_samples_leaf", "int", 1, "samples in a leaf"),
                H("max_features", "float", 1.0, "share of features per split"),
            ),
        ),
        TrialFamily(
            "lightgbm",
            ("classification", "regression"),
            (
                H("n_estimators", "int", 400, "boosting rounds"),
                H("learning_rate", "float", 0.05, "shrinkage"),
                H("num_leaves", "int", 31, "leaves per tree"),
                H("max_depth", "int", -1, "tree depth (-1: unlimited)"),
                H("min_child_samples", "int", 20, "samples in a leaf"),
                H("subsample", "float", 1.0, "row sampling"),
                H("colsample_bytree", "float", 1.0, "column sampling"),
                H("reg_alpha", "float", 0.0, "L1 regularisation"),
                H("reg_lambda", "float", 0.0, "L2 regularisation"),
            ),
            pip=("lightgbm==4.7.0",),
        ),
        TrialFamily(
            "keras_mlp",
            ("classification", "regression"),
            (
                H("batch_size", "int", 64, "minibatch size"),
                H("epochs", "int", 20, "training epochs"),
                H("first_layer_neurons", "int", 64, "width of the first hidden layer"),
                H("second_layer_neurons", "int", 32, "width of the second hidden layer"),
                H("learning_rate", "float", 0.001, "Adam learning rate"),
                H("dropout", "float", 0.0, "dropout after each hidden layer"),
            ),
            needs_extra="keras",
            pip=("keras==3.15.0", "torch==2.13.0"),
        ),
        TrialFamily(
            "keras_cnn",
            ("image_classification",),
            (
                H("filters", "int", 32, "filters of the first convolution (doubles per block)"),
                H("depth", "int", 3, "convolution blocks"),
                H("dropout", "float", 0.3, "dropout before the classifier"),
                H("learning_rate", "float", 0.001, "Adam learning rate"),
                H("image_size", "int", 128, "side of the square input, pixels"),
                H("epochs", "int", 15, "training epochs"),
                H("batch_size", "int", 16, "minibatch size"),
            ),
            needs_extra="keras",
            pip=("keras==3.15.0", "torch==2.13.0", "pillow"),
        ),
    )
}
