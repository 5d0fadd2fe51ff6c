"""Stage 3, render: the package versions the generated environments pin (trials, deployments, the pipeline's steps).

One table per purpose.
"""

from __future__ import annotations

# The stack every trial and deployment environment pins: the versions capc is tested with (installed here).
# tests/render/test_rendered_artifacts_sdk.py checks this table against the installed distributions.
RUNTIME_PINS: dict[str, str] = {
    "azureml-inference-server-http": "1.5.1",
    "flaml": "2.7.0",
    "inference-schema": "1.8",
    "lightgbm": "4.7.0",
    "pandas": "3.1.1",
    "pyarrow": "25.0.1",
    "scikit-learn": "1.9.1",
}

# MLflow in an Azure ML job logs to the workspace only through the azureml-mlflow plugin, whose newest release
# (1.62.0.post6) takes mlflow-skinny <= 3.15.0 (and full mlflow 3.15.0 takes pandas < 3). So the environments pin
# mlflow-skinny 3.15.0 with it, while capc itself runs mlflow 3.17.2: the same 3.x model format both ways (the
# generated train.py was run under these pins and its model loaded with 3.17.2).
AZURE_MLFLOW_PINS: dict[str, str] = {
    "azureml-mlflow": "1.62.0.post6",
    "mlflow-skinny": "3.15.0",
}

# The pipeline's select and deploy steps talk to the workspace: MLflow as above, and the SDK with the submitting
# user's identity.
SELECT_STEP_PINS: dict[str, str] = {
    **AZURE_MLFLOW_PINS,
    "azure-ai-ml": "1.35.2",
    "azure-identity": "1.27.0",
    "pyyaml": "6.0.3",
}
