"""Backend, local AutoML: the model that gets served, and its MLflow save.

This module is pickled by value into the saved model (cloudpickle), and MLflow loads it where capc is not
installed (a scoring container, another machine): it must import nothing from capc, only what the model's
own learners need (numpy, pandas, scikit-learn, FLAML). tests/local/test_local_automl.py loads a saved model in a
process where capc cannot be imported.

Serving speed: FLAML's own predict featurizes with pandas work per column (~15 ms for one bank row, far more than
the model itself), so members of the plain tabular kind go through `FastTabularMember`, which gives the trained
estimator exactly the frame FLAML's featurization would, built from lookups made once per loaded model. score.py
goes further with `predict_columns` / `predict_proba_columns`: a request's typed columns straight to that input,
no DataFrame at all (a one-row call in well under a millisecond), falling back to the frame for anything else.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator


class AutoMLModel(BaseEstimator):
    """The chosen model: one FLAML model, a weighted vote of several, or a meta-learner stacked on them.

    `predict` / `predict_proba` take a DataFrame of the raw feature columns (extra columns are ignored; values
    arriving as text for numeric columns are parsed). Members are fitted `flaml.AutoML` objects, each carrying
    its own featurization. Pickled by value (see the module docstring).
    """

    def __init__(self, task=None, feature_columns=None, numeric_columns=None, members=None, weights=None,
                 stacker=None, classes=None, kind="single"):
        self.task = task
        self.feature_columns = feature_columns
        self.numeric_columns = numeric_columns
        self.members = members
        self.weights = weights
        self.stacker = stacker
        self.classes = classes
        self.kind = kind

    @property
    def classes_(self):
        return self.classes

    def _features(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X)
            if list(X.columns) == list(range(len(X.columns))) and len(X.columns) == len(self.feature_columns):
                X.columns = list(self.feature_columns)  # a bare 2-D array, columns in training order
        missing = [c for c in self.feature_columns if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature column(s): {', '.join(map(str, missing))}")
        X = X[list(self.feature_columns)]  # a new frame: the caller's is never changed
        for column, dtype in zip(X.columns, X.dtypes):
            if column in self.numeric_columns:
                if not pd.api.types.is_numeric_dtype(dtype):
                    X[column] = pd.to_numeric(X[column], errors="coerce")
            elif isinstance(dtype, pd.CategoricalDtype) or (dtype != object and pd.api.types.is_string_dtype(dtype)):
                continue
            elif not pd.api.types.is_string_dtype(values := X[column]):  # object cells: are they all text?
                X[column] = values.map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v)).astype(object)
        # A job's own imputer values (Azure's featurization.transformer_params.imputer), fixed when it trained; a model
        # pickled before them has none.
        fills = self.__dict__.get("fill_values")
        if fills:
            X = X.fillna({c: v for c, v in fills.items() if c in X.columns})
        return X

    def __getstate__(self):
        # The fast paths are rebuilt from the members after loading (and a pickle from before them has none).
        return {k: v for k, v in super().__getstate__().items() if k != "_fast_members"}

    def _fast_paths(self) -> list:
        """Per member, its FastTabularMember or None (FLAML's own path); built once per loaded model."""
        paths = self.__dict__.get("_fast_members")
        if paths is None or len(paths) != len(self.members):
            paths = self._fast_members = [FastTabularMember.build(m) for m in self.members]
        return paths

    def _member_outputs(self, X) -> list[np.ndarray]:
        classification = self.task == "classification"
        outputs = []
        for member, fast in zip(self.members, self._fast_paths()):
            output = fast.output(X, classification) if fast is not None else None
            if output is None:  # not a case the fast path takes: FLAML's own
                output = member.predict_proba(X) if classification else member.predict(X)
            outputs.append(_member_output(output, classification))
        return outputs

    def _combined(self, X) -> np.ndarray:
        return self._combine(self._member_outputs(self._features(X)))

    # A request's columns straight to the members' float input, no DataFrame: what score.py calls per request.

    def predict_proba_columns(self, columns: dict) -> np.ndarray | None:
        """`predict_proba` of the rows `columns` holds (column -> 1-D numpy array, as score.py types a request), or
        None where only the DataFrame path is sure to give FLAML's answer (the caller then builds the frame)."""
        if self.task != "classification":
            raise AttributeError("predict_proba is for classification models")
        return self._combined_columns(columns)

    def predict_columns(self, columns: dict) -> np.ndarray | None:
        """`predict` of the rows `columns` holds, or None (see predict_proba_columns)."""
        combined = self._combined_columns(columns)
        if combined is None or self.task != "classification":
            return combined
        return np.asarray(self.classes)[np.argmax(combined, axis=1)]

    def _combined_columns(self, columns: dict) -> np.ndarray | None:
        fast = self._fast_paths()
        if any(f is None for f in fast):
            return None
        features = self._column_features(columns)
        if features is None:
            return None
        classification = self.task == "classification"
        outputs = []
        for member in fast:
            output = member.output_of_columns(features, classification)
            if output is None:
                return None
            outputs.append(_member_output(output, classification))
        return self._combine(outputs)

    def _column_features(self, columns: dict) -> dict | None:
        """What `_features` makes of `columns`, for the inputs it leaves as they are: numbers as int64 / float64
        arrays, text as object arrays of text and gaps (None, NaN); the job's fill values put in the gaps. None for
        anything else (a number column in text, a bool, an odd fill value): `_features`' own conversions decide."""
        numeric = set(self.numeric_columns)
        fills = self.__dict__.get("fill_values") or {}
        rows = None
        out = {}
        for name in self.feature_columns:
            values = columns.get(name)
            if not isinstance(values, np.ndarray) or values.ndim != 1 or (rows is not None and len(values) != rows):
                return None
            rows = len(values)
            fill = fills.get(name)
            if name in numeric:
                values = _filled_numbers(values, fill)
            else:
                values = _filled_text(values, fill)
            if values is None:
                return None
            out[name] = values
        return out

    def _combine(self, outputs: list[np.ndarray]) -> np.ndarray:
        if self.kind == "stack":
            if self.task == "classification":
                return self.stacker.predict_proba(stack_features(outputs))
            return self.stacker.predict(stack_features(outputs))
        total = sum(w * o for w, o in zip(self.weights, outputs))
        return total / sum(self.weights)

    def predict_proba(self, X) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is for classification models")
        return self._combined(X)

    def predict(self, X) -> np.ndarray:
        combined = self._combined(X)
        if self.task == "classification":
            return np.asarray(self.classes)[np.argmax(combined, axis=1)]
        return combined


def _member_output(output, classification: bool) -> np.ndarray:
    output = np.asarray(output, dtype=float)
    return output if classification else output.ravel()


def _filled_numbers(values: np.ndarray, fill) -> np.ndarray | None:
    """A numeric column as `_features` leaves it (DataFrame.fillna for the fill value), or None (not int / float64)."""
    if values.dtype.kind not in "iu" and values.dtype != np.float64:
        return None
    if fill is None or values.dtype.kind in "iu":
        return values
    # fillna keeps float64 only for a fill value it holds exactly; other values are left to pandas
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or float(fill) != fill:
        return None
    gaps = np.isnan(values)
    if gaps.any():
        values = values.copy()
        values[gaps] = fill
    return values


def _filled_text(values: np.ndarray, fill) -> np.ndarray | None:
    """A text column as `_features` leaves it: only text and gaps, gaps filled, else None (its str() and pandas).
    Without a fill value the cells are not looked at here: _text_codes refuses any that is not text or a gap, in
    every column a member reads (the others cannot change an answer)."""
    if values.dtype != object or (fill is not None and not isinstance(fill, str)):
        return None
    if fill is None:
        return values
    gaps = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            continue
        if value is None or (type(value) is float and value != value):
            gaps.append(i)
            continue
        return None  # fillna's own way with it (np.float64 NaN, pd.NA, a number) is left to pandas
    if gaps:
        values = values.copy()
        values[gaps] = fill
    return values


NAN_CATEGORY = "__NAN__"  # FLAML's category for missing and unseen text values


class FastTabularMember:
    """A fitted flaml.AutoML's predictions, computed as FLAML computes them but without its per-call pandas work.

    FLAML's featurization (flaml/automl/data.py DataTransformer.transform) fills missing text with "__NAN__", turns
    each text column into a Categorical over the categories seen in training (unseen values: "__NAN__" too),
    imputes numeric gaps with the training medians and puts the text columns first. This builds the same values
    from a dict lookup per text column and the imputer's statistics, and hands the trained model what FLAML's
    estimator (flaml/automl/model.py) would after its own input step:
    - "codes": scikit-learn models (SKLearnEstimator) get a frame of category codes and numbers, as FLAML gives;
    - "xgboost": the same values as one float array (xgboost reads the frame into exactly that, 15 times slower);
    - "lightgbm": the float array lightgbm makes of the frame (basic._data_from_pandas: codes of its training
      categories, others missing), given to its Booster with the parameters its scikit-learn wrapper passes;
    - "frame": any other learner that takes FLAML's frame as it is.
    Only the plain tabular case is taken (no datetime, time-series or NLP featurization, featurization not off):
    `build` returns None otherwise, and `output` returns None for an input it cannot reproduce exactly (a
    categorical column, float32 or infinite numbers, cells of text columns that are not text): the caller then
    uses FLAML's own path. tests/local/test_automl_fast_predict.py holds both paths equal.
    """

    def __init__(self, estimator, cat_columns, categories, num_columns, medians, call):
        self.model = estimator._model
        self.cat_columns = cat_columns
        self.categories = categories  # per text column: pd.CategoricalDtype of FLAML's saved categories
        self.codes = [{v: i for i, v in enumerate(dtype.categories)} for dtype in categories]
        self.nan_codes = [list(dtype.categories).index(NAN_CATEGORY) for dtype in categories]
        self.num_columns = num_columns
        self.medians = medians
        self.call = call
        self.lightgbm_sizes = self.lightgbm_params = None
        if call == "lightgbm":
            self.lightgbm_sizes = [len(c) for c in self.model.booster_.pandas_categorical]
            self.lightgbm_params = _lightgbm_predict_params(self.model)

    @classmethod
    def build(cls, member) -> "FastTabularMember | None":
        try:
            return cls._build(member)
        except Exception:  # a FLAML object of a shape not foreseen: its own path serves it
            return None

    @classmethod
    def _build(cls, member) -> "FastTabularMember | None":
        from flaml import AutoML
        from flaml.automl import model as flaml_models

        if type(member).predict is not AutoML.predict or type(member).predict_proba is not AutoML.predict_proba:
            return None
        transformer = getattr(member, "_transformer", None)
        estimator = getattr(member, "_trained_estimator", None)
        task = getattr(getattr(member, "_state", None), "task", None)
        if transformer is None or estimator is None or task is None or getattr(estimator, "_model", None) is None:
            return None
        if task.is_nlp() or task.is_ts_forecast() or getattr(transformer, "_datetime_columns", None):
            return None
        classification = task.is_classification()
        if not classification and getattr(member, "_label_transformer", None) is not None:
            return None
        cat_columns, num_columns = list(transformer._cat_columns), list(transformer._num_columns)
        saved = getattr(transformer, "_cat_categories", None) or {}
        categories = []
        for column in cat_columns:
            values = saved.get(column)
            if values is None or NAN_CATEGORY not in values or not all(isinstance(v, str) for v in values):
                return None  # a pickle from a FLAML without pinned categories: its own path
            categories.append(pd.CategoricalDtype(list(values)))
        medians = _imputer_medians(transformer.transformer, len(num_columns)) if num_columns else None
        if num_columns and medians is None:
            return None
        kind = type(estimator)
        if kind.predict is not flaml_models.BaseEstimator.predict:
            return None
        if classification and kind.predict_proba is not flaml_models.BaseEstimator.predict_proba:
            return None
        if kind._preprocess is flaml_models.SKLearnEstimator._preprocess:
            call = "xgboost" if _plain_xgboost(estimator._model) else "codes"
        elif kind._preprocess is flaml_models.LGBMEstimator._preprocess:
            call = "lightgbm" if _plain_lightgbm(estimator._model, categories, classification) else "frame"
        elif kind._preprocess is flaml_models.BaseEstimator._preprocess:
            call = "frame"
        else:
            return None
        return cls(estimator, cat_columns, categories, num_columns, medians, call)

    def output(self, X: pd.DataFrame, classification: bool) -> np.ndarray | None:
        """The member's class probabilities (regression: predictions) for `X`, or None to use FLAML's path."""
        features = self._model_input(X)
        return None if features is None else self._predicted(features, classification)

    def output_of_columns(self, columns: dict, classification: bool) -> np.ndarray | None:
        """As `output`, for AutoMLModel._column_features' arrays (column -> 1-D array) instead of a frame."""
        features = self._columns_input(columns)
        return None if features is None else self._predicted(features, classification)

    def _predicted(self, features, classification: bool) -> np.ndarray:
        if self.call == "lightgbm":
            # lightgbm's LGBMModel.predict / LGBMClassifier.predict_proba, past their frame handling
            result = self.model._Booster.predict(features, **self.lightgbm_params)
            if classification and self.model._n_classes <= 2:
                return np.vstack((1.0 - result, result)).transpose()
            return result
        if classification:
            return self.model.predict_proba(features)
        predictions = self.model.predict(features)
        if isinstance(predictions, np.ndarray) and predictions.ndim > 1:  # as flaml.AutoML.predict
            predictions = predictions.flatten()
        return predictions

    def _model_input(self, X: pd.DataFrame):
        """What the trained model gets from FLAML for `X` (see the class docstring), or None."""
        dtypes = dict(zip(X.columns, X.dtypes))
        columns = {}
        if self.cat_columns:
            if any(isinstance(dtypes[c], pd.CategoricalDtype) for c in self.cat_columns):
                return None
            text = X[self.cat_columns].to_numpy(dtype=object)
            columns = self._coded([text[:, i] for i in range(len(self.cat_columns))])
            if columns is None:
                return None
        numbers = None
        if self.num_columns:
            numbers = self._imputed_numbers(X, dtypes)
            if numbers is None:
                return None
        return self._assembled(columns, numbers, len(X), X.index)

    def _columns_input(self, arrays: dict):
        """`_model_input` for column -> 1-D array (as a frame of those columns would hold them), or None."""
        if not (self.cat_columns or self.num_columns) or any(c not in arrays for c in self.cat_columns + self.num_columns):
            return None
        columns = self._coded([arrays[c] for c in self.cat_columns]) if self.cat_columns else {}
        if columns is None:
            return None
        numbers = None
        rows = len(arrays[(self.cat_columns or self.num_columns)[0]])
        if self.num_columns:
            numbers = np.empty((rows, len(self.num_columns)), dtype=np.float64)
            for i, column in enumerate(self.num_columns):
                values = arrays[column]
                if values.dtype.kind not in "iu" and values.dtype != np.float64:  # as _imputed_numbers
                    return None
                numbers[:, i] = values
            numbers = self._imputed(numbers)
            if numbers is None:
                return None
        return self._assembled(columns, numbers, rows, None)

    def _coded(self, texts: list) -> dict | None:
        """Per text column (its values, in cat_columns' order), FLAML's category codes; None for a non-text cell."""
        columns = {}
        for values, column, lookup, nan_code in zip(texts, self.cat_columns, self.codes, self.nan_codes):
            codes = _text_codes(column, values, lookup, nan_code)
            if codes is None:
                return None
            columns[column] = codes
        return columns

    def _assembled(self, columns: dict, numbers: np.ndarray | None, rows: int, index):
        """The model's input from the text columns' codes and the imputed numbers (index: the frame's, or None)."""
        if self.call in ("xgboost", "lightgbm"):
            array = np.empty((rows, len(self.cat_columns) + len(self.num_columns)), dtype=np.float64)
            for i, codes in enumerate(columns.values()):
                array[:, i] = codes
                if self.call == "lightgbm":  # a category lightgbm never saw in training: missing
                    array[codes >= self.lightgbm_sizes[i], i] = np.nan
            if numbers is not None:
                array[:, len(self.cat_columns):] = numbers
            return array
        for (column, codes), dtype in zip(columns.items(), self.categories):
            categorical = pd.Categorical.from_codes(codes, dtype=dtype)
            columns[column] = categorical.codes if self.call == "codes" else categorical
        for i, column in enumerate(self.num_columns):
            columns[column] = numbers[:, i]
        return pd.DataFrame(columns, index=pd.RangeIndex(rows) if index is None else index, copy=False)

    def _imputed_numbers(self, X: pd.DataFrame, dtypes: dict) -> np.ndarray | None:
        # SimpleImputer makes float64 of these dtypes (float32 alone would stay float32; booleans: left to FLAML).
        if not all(isinstance(dtypes[c], np.dtype) and (dtypes[c].kind in "iu" or dtypes[c] == np.float64)
                   for c in self.num_columns):
            return None
        return self._imputed(X[self.num_columns].to_numpy(dtype=np.float64, copy=True))

    def _imputed(self, numbers: np.ndarray) -> np.ndarray | None:
        """A float64 copy of the numeric columns with the training medians in its gaps, or None (an infinity)."""
        if np.isinf(numbers).any():  # scikit-learn refuses them, with its own message
            return None
        gaps = np.isnan(numbers)
        if gaps.any():
            numbers[gaps] = np.broadcast_to(self.medians, numbers.shape)[gaps]
        return numbers


def _text_codes(column, values: np.ndarray, lookup: dict, nan_code: int) -> np.ndarray | None:
    """Codes of a text column's values among FLAML's saved categories: missing and unseen values to "__NAN__"."""
    codes = np.empty(len(values), dtype=np.int64)
    unseen = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            code = lookup.get(value)
            if code is None:
                unseen.append(value)
                code = nan_code
        elif value is None or (isinstance(value, float) and value != value):
            code = nan_code  # FLAML's fillna("__NAN__")
        else:
            return None
        codes[i] = code
    if unseen:  # FLAML's own warning, word for word
        samples = sorted({str(v) for v in unseen})[:5]
        warnings.warn(
            f"Column '{column}' contains values unseen at fit time "
            f"(e.g. {samples}); these rows will be encoded as '__NAN__' "
            "and predictions may be unreliable.",
            UserWarning,
            stacklevel=2,
        )
    return codes


def _imputer_medians(transformer, n_columns: int) -> np.ndarray | None:
    """The statistics of FLAML's numeric step (one SimpleImputer in a ColumnTransformer), if it is only that."""
    from sklearn.impute import SimpleImputer

    steps = getattr(transformer, "transformers_", None)
    if not steps or len(steps[0][2]) != n_columns or any(s[:2] != ("remainder", "drop") for s in steps[1:]):
        return None
    imputer = steps[0][1]
    if type(imputer) is not SimpleImputer or imputer.add_indicator or not isinstance(imputer.missing_values, float):
        return None
    medians = np.asarray(imputer.statistics_, dtype=np.float64)
    if medians.shape != (n_columns,) or not np.isfinite(medians).all():
        return None
    return medians


def _plain_xgboost(model) -> bool:
    """An XGBoost model on numbers only (FLAML's own: category codes as numbers), which reads a float array as
    it reads the frame."""
    try:
        import xgboost
    except ImportError:
        return False
    if not isinstance(model, xgboost.XGBModel) or getattr(model, "enable_categorical", False):
        return False
    types = model.get_booster().feature_types
    return types is not None and all(t in ("int", "float", "i", "q") for t in types)


def _plain_lightgbm(model, categories: list, classification: bool) -> bool:
    """A lightgbm scikit-learn model with a built-in objective whose training categories are FLAML's saved ones
    (less a "__NAN__" FLAML appended after training), so the float array can be built without pandas."""
    import lightgbm

    kind = lightgbm.LGBMClassifier if classification else lightgbm.LGBMRegressor
    if type(model) is not kind or callable(getattr(model, "_objective", None)):
        return False
    trained = model.booster_.pandas_categorical
    if trained is None or len(trained) != len(categories):
        return False
    for seen, dtype in zip(trained, categories):
        saved, seen = list(dtype.categories), list(seen)
        if not (seen == saved or (seen == saved[:-1] and saved[-1] == NAN_CATEGORY)):
            return False
    return True


def _lightgbm_predict_params(model) -> dict:
    """The arguments lightgbm's LGBMModel.predict gives its Booster (lightgbm/sklearn.py), for a float array."""
    from lightgbm.basic import _choose_param_value, _ConfigAliases

    params = model._process_params(stage="predict")
    for alias in _ConfigAliases.get_by_alias("data", "X", "raw_score", "start_iteration", "num_iteration", "pred_leaf",
                                            "pred_contrib"):
        params.pop(alias, None)
    params = _choose_param_value("num_threads", params, model.n_jobs)
    params["num_threads"] = model._process_n_jobs(params["num_threads"])
    return dict(params, raw_score=False, start_iteration=0, num_iteration=None, pred_leaf=False, pred_contrib=False,
                validate_features=False)


def stack_features(outputs: list[np.ndarray]) -> np.ndarray:
    """Meta-learner inputs: each member's class probabilities (binary: the positive one) or its prediction."""
    columns = [o[:, 1:] if o.ndim == 2 and o.shape[1] == 2 else (o if o.ndim == 2 else o[:, None]) for o in outputs]
    return np.hstack(columns)


def with_ensemble(base: AutoMLModel, ensemble: dict) -> AutoMLModel:
    """`base`'s columns and classes, with an ensemble's members, weights, stacker and kind."""
    return AutoMLModel(task=base.task, feature_columns=base.feature_columns, numeric_columns=base.numeric_columns,
                       classes=base.classes, **ensemble)


def save_mlflow_model(model: AutoMLModel, path: Path | str, feature_sample: pd.DataFrame | None) -> Path:
    """Write `model` as an MLflow model directory (sklearn flavour, cloudpickle, no capc import needed)."""
    import cloudpickle
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = Path(path)
    signature = None
    if feature_sample is not None:
        # Inferred from training rows with a gap in every column that has one. MLflow's pyfunc check then
        # refuses a missing value in an integer column (it will not turn int64 into float64 either, so
        # declaring such columns as doubles would refuse every whole number instead).
        signature = infer_signature(feature_sample, model.predict(feature_sample))
    # By value: the pickle carries the code of AutoMLModel and of capc's own FLAML learners (a fitted flaml.AutoML
    # keeps its learners' classes), so loading it needs FLAML and scikit-learn, not capc.
    modules = [sys.modules[AutoMLModel.__module__], *_learner_modules(model)]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        mlflow.sklearn.save_model(
            model, str(path), serialization_format="cloudpickle", signature=signature,
            pip_requirements=runtime_requirements(),
        )
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
    return path


def _learner_modules(model: AutoMLModel) -> list:
    """The modules of the members' learner classes that are not FLAML's own (capc's: learners.py)."""
    found = {}
    for member in model.members or ():
        for learner in (getattr(getattr(member, "_state", None), "learner_classes", None) or {}).values():
            name = learner.__module__
            if not name.startswith("flaml.") and name in sys.modules:
                found[name] = sys.modules[name]
    return list(found.values())


def runtime_requirements() -> list[str]:
    """What loading the pickled model needs, pinned to the versions it was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("flaml", "scikit-learn", "lightgbm", "xgboost", "pandas", "numpy", "scipy", "cloudpickle"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return out
