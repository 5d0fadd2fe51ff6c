"""Stage 3, render: a forecasting spec's `forecasting:` settings as the artifacts take them - Azure's AutoML job
(automl_job.yml and the pipeline's automl step) and capc's rolling-origin trial script (train_forecast.py.j2).

The spec already uses Azure's key names and values (checked against azure-ai-ml's ForecastingSettingsSchema), so
this module only orders them as the schema does, writes one id column as a list, and leaves out what Azure's
loader cannot take: `cv_step_size: auto` (the schema's field is an integer; left out, Azure chooses the step).
"""

from __future__ import annotations

from capc.spec import schema

FORECASTING_TASK = "forecasting"
AUTO = "auto"
# Keys azure-ai-ml's ForecastingSettingsSchema types as integers only: `auto` is capc's, so it is left out for Azure.
AZURE_INTEGER_ONLY = ("cv_step_size",)
# The sweep's trial script copies these capc modules beside it (capc.render.render); they import nothing of capc.
TRIAL_MODULES = {"src/forecasting.py": "forecasting.py"}
# The MLmodel metadata key of a forecasting model's settings; the local engine's (capc.local.automl.forecast_model)
# is the same string, and the render stage must not import the engine (tests/layout), so a test holds them equal.
FORECAST_METADATA_KEY = "capc_forecasting"


def settings_block(spec) -> dict | None:
    """The spec's forecasting settings in the schema's key order, the id columns as a list; None for other tasks."""
    block = spec.data.get("forecasting")
    if spec.task != FORECASTING_TASK or not block:
        return None
    out = {}
    for key in schema()["properties"]["forecasting"]["properties"]:
        if key in block:
            value = block[key]
            out[key] = [value] if key == "time_series_id_column_names" and isinstance(value, str) else value
    return out


def azure_forecasting(spec) -> dict | None:
    """automl_job.yml's `forecasting:` mapping (None for other tasks)."""
    block = settings_block(spec)
    if block is None:
        return None
    return {key: value for key, value in block.items() if not (key in AZURE_INTEGER_ONLY and value == AUTO)}
