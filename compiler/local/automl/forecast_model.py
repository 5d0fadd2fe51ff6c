"""Backend, local AutoML (task forecasting): the model that gets registered, and its MLflow save.

An MLflow pyfunc model whose python model wraps a capc.forecasting.Forecaster: `mlflow.pyfunc.load_model(dir)
.predict(frame)` forecasts the frame's rows (time column + id columns [+ known features]) from the history seen at
fit, and `.unwrap_python_model().forecaster` is the Forecaster itself (quantiles, context rows). The MLmodel's
`metadata: capc_forecasting` records its settings (time column, ids, horizon, frequency, ...), so a scorer needs
nothing else. Like model.py, this module and capc.forecasting are pickled by value: loading needs pandas,
scikit-learn and LightGBM, not capc.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - mlflow is a dependency of capc; the guard keeps the pickle importable
    PythonModel = object

METADATA_KEY = "capc_forecasting"


class ForecastModel:
    """The engine's view of the chosen forecaster: what AutoMLModel is to the tabular tasks (`task`, `predict`)."""

    task = "forecasting"

    def __init__(self, forecaster):
        self.forecaster = forecaster

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        from capc.errors import CapcError
        from capc.forecasting import ForecastDataError

        try:
            return self.forecaster.predict(frame)
        except ForecastDataError as exc:
            raise CapcError(f"cannot forecast these rows: {exc}.") from None

    def describe(self) -> dict:
        """The settings a scorer needs, as plain JSON values."""
        forecaster = self.forecaster
        settings = forecaster.settings
        shape = forecaster.shape_
        return {
            "time_column": settings.time_column, "target": settings.target, "series_ids": list(settings.series_ids),
            "horizon": settings.horizon, "frequency": shape.freq, "seasonality": shape.season,
            "target_lags": list(shape.lags), "rolling_window": shape.window, "known_features": list(shape.known),
            "learner": forecaster.learner, "quantiles": bool(forecaster.residuals_),
            "series": sorted(forecaster.codes_),
        }


with warnings.catch_warnings():  # MLflow asks for type hints on predict, for checks the forecaster makes itself
    warnings.filterwarnings("ignore", message=".*type hints.*")

    class ForecastPythonModel(PythonModel):
        """The pyfunc face: predict(frame) -> the forecast of each row."""

        def __init__(self, forecaster):
            self.forecaster = forecaster

        def predict(self, context, model_input, params=None):
            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            return self.forecaster.predict(frame)


def save_forecast_model(model: ForecastModel, path: Path | str) -> Path:
    """Write `model` as an MLflow pyfunc model directory (cloudpickle by value: no capc import needed to load it)."""
    import cloudpickle
    import mlflow.pyfunc

    from capc import forecasting
    from capc.local.automl.model import runtime_requirements

    path = Path(path)
    modules = [forecasting, sys.modules[__name__]]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning about pickled python models: the pickle is the point (no capc to load)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints.*")  # MLflow reloads the class, and asks again
            mlflow.pyfunc.save_model(str(path), python_model=ForecastPythonModel(model.forecaster),
                                     pip_requirements=runtime_requirements(), metadata={METADATA_KEY: model.describe()})
    finally:
        quiet.setLevel(level)
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
    return path
