"""Backend, local AutoML: the checks no model can get past on the training data, and the data in the form the
search takes it (features, target, label codes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from capc import azure_metrics
from capc.errors import CapcError
from capc.local.automl.settings import AutoMLSettings
from capc.spec.hints import did_you_mean

MIN_ROWS = 10


@dataclass(frozen=True)
class TrainingData:
    X: pd.DataFrame  # the feature columns
    y: pd.Series  # the target (regression: as floats)
    y_fit: pd.Series  # what FLAML fits: classification labels as codes 0..K-1 (the model maps them back)
    classes: np.ndarray | None  # classification: the sorted labels
    # A validation table of its own (Azure's validation_data): its features and target codes, else None.
    X_val: pd.DataFrame | None = None
    y_val_fit: pd.Series | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    @property
    def y_range(self) -> float:
        """What Azure divides the normalized errors by: the range of the whole training target."""
        return azure_metrics.target_range(self.y) if self.classes is None else 1.0

    @property
    def numeric_columns(self) -> list[str]:
        return [str(c) for c in self.X.columns if pd.api.types.is_numeric_dtype(self.X[c])]

    def feature_sample(self) -> pd.DataFrame:
        """Some training rows, with a missing value in each column that has any, so the signature marks it optional."""
        X = self.X
        gaps = [X.index[X[c].isna()][0] for c in X.columns if X[c].isna().any()]
        return X.loc[list(dict.fromkeys(list(X.index[:20]) + gaps))].reset_index(drop=True)


def training_data(frame, settings: AutoMLSettings, notes: list[str], validation=None) -> TrainingData:
    """The rows the search trains on (and, with `validation`, the table it validates on); what no model can get
    past is a CapcError, and what is dropped a note."""
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise CapcError("the AutoML training data has no rows; check the dataset path and any filters in the spec.")
    target = settings.target_column
    if target not in frame.columns:
        shown = ", ".join(f"`{c}`" for c in list(frame.columns)[:20])
        raise CapcError(
            f"target column `{target}` is not in the AutoML training data (columns: {shown}).",
            did_you_mean(target, map(str, frame.columns)),
        )
    unlabeled = int(frame[target].isna().sum())
    if unlabeled:
        frame = frame[frame[target].notna()]
        notes.append(f"dropped {unlabeled} rows whose target `{target}` is missing")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise CapcError(f"the AutoML training data has no feature columns besides the target `{target}`.")
    if len(frame) < MIN_ROWS:
        raise CapcError(
            f"AutoML needs at least {MIN_ROWS} labelled rows to train and validate; the training data has {len(frame)}."
        )
    y = frame[target]
    classes = None
    if settings.task == "classification":
        try:
            classes = np.sort(y.unique())
        except TypeError:  # labels of mixed types (numbers and text) only order as text
            y = y.astype(str)
            classes = np.sort(y.unique())
        if len(classes) < 2:
            raise CapcError(
                f"target column `{target}` holds one class only (`{classes[0]}`); classification needs at least two.",
            )
    else:
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].iloc[0]
            raise CapcError(f"regression target `{target}` must be numeric; it holds values such as `{bad}`.")
        if numeric.max() == numeric.min():
            raise CapcError(f"regression target `{target}` is constant ({numeric.iloc[0]}); there is nothing to learn.")
        y = numeric.astype(float)
    if settings.featurization == "off":
        text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        gaps = [str(c) for c in features.columns if features[c].isna().any()]
        if text or gaps:
            problem = f"non-numeric columns ({', '.join(text)})" if text else f"missing values (in {', '.join(gaps)})"
            raise CapcError(
                f"featurization is off, so AutoML uses the columns as they are, but the data has {problem}.",
                "set featurization to auto (automl.featurization in a spec, featurization.mode in a job YAML), or clean the data first",
            )
    X, y = features.reset_index(drop=True), y.reset_index(drop=True)
    y_fit = pd.Series(np.searchsorted(classes, y.to_numpy()), name=y.name) if classes is not None else y
    if validation is None:
        return TrainingData(X, y, y_fit, classes)
    X_val, y_val_fit = _validation_table(validation, settings, X, classes, notes)
    return TrainingData(X, y, y_fit, classes, X_val, y_val_fit)


def _validation_table(frame, settings: AutoMLSettings, X: pd.DataFrame, classes, notes: list[str]):
    """(features, target codes) of a validation table: the training features' columns, labels the training has."""
    target = settings.target_column
    if not isinstance(frame, pd.DataFrame) or target not in frame.columns:
        raise CapcError(f"target column `{target}` is not in the AutoML validation data.")
    missing = [str(c) for c in X.columns if c not in frame.columns]
    if missing:
        raise CapcError(f"the AutoML validation data lacks the training data's column(s) {', '.join(missing)}.")
    unlabeled = int(frame[target].isna().sum())
    if unlabeled:
        frame = frame[frame[target].notna()]
        notes.append(f"dropped {unlabeled} validation rows whose target `{target}` is missing")
    if len(frame) < 2:
        raise CapcError(f"the AutoML validation data has {len(frame)} labelled rows; it needs at least 2.")
    X_val, y_val = frame[list(X.columns)].reset_index(drop=True), frame[target].reset_index(drop=True)
    if classes is None:
        numeric = pd.to_numeric(y_val, errors="coerce")
        if numeric.isna().any():
            raise CapcError(f"regression target `{target}` in the validation data holds non-numbers such as `{y_val[numeric.isna()].iloc[0]}`.")
        return X_val, numeric.astype(float)
    labels = y_val.astype(str).to_numpy() if classes.dtype.kind in "OUS" else y_val.to_numpy()
    unseen = sorted({str(v) for v in labels if v not in set(classes)})
    if unseen:
        raise CapcError(f"the AutoML validation data has label(s) the training data lacks: {', '.join(unseen[:5])}.",
                        "a model cannot learn a class it never trained on; move some of those rows into training_data")
    return X_val, pd.Series(np.searchsorted(classes, labels), name=y_val.name)
