"""Backend, local: `capc predict` - a registered model's predictions for a file, through its job folder's score.py.

A forecasting model forecasts (capc.serve.forecast_batch: a horizon per series, or a file's rows); any other model
scores a CSV file of any size in chunks (capc.serve.batch).
"""

from __future__ import annotations

from pathlib import Path

from capc.errors import CapcError
from capc.forecast_requests import FORECASTING_TASK


def predict(ref: str, input_path: Path | None, output_path: Path, *, chunk_rows: int | None = None,
            horizon: int | None = None, quantiles_text: str | None = None):
    """The BatchResult or ForecastResult of `capc predict REF`; a CapcError for options that do not fit the model."""
    from capc.state import registry

    model = registry.get(ref)
    if model.task == FORECASTING_TASK:
        from capc.serve.forecast_batch import forecast_csv, parse_quantiles

        return forecast_csv(model.model_dir, Path(model.job_dir), output_path, input_path=input_path, horizon=horizon,
                            quantiles=parse_quantiles(quantiles_text), model_ref=model.ref)
    if horizon is not None or quantiles_text is not None:
        raise CapcError(f"--horizon and --quantiles are for forecasting models; `{model.ref}` is a {model.task} model.")
    if input_path is None:
        raise CapcError("--input FILE.csv is required: the rows to score.")
    from capc.serve.batch import BatchProgress, score_csv

    with BatchProgress(input_path) as progress:
        return score_csv(model.model_dir, Path(model.job_dir), input_path, output_path, chunk_rows=chunk_rows,
                         model_ref=model.ref, task=model.task, progress=progress)
