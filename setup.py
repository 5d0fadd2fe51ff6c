from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "compiler" / "__init__.py").read_text(), version)

# Heavy optional stacks stay behind extras; torch is pinned to the CPU build that lies on disk.
KERAS = ["keras==3.15.0", "torch==2.13.0", "pillow"]
# statsmodels: its bundled macrodata rebuilds the forecasting reference data's held-back quarters (tests, bench);
# capc itself does not need it.
TEST = ["pytest>=8", "websocket-client>=1.7", "statsmodels>=0.14"]

setup(
    name="capc",
    version=version["__version__"],
    description="Declarative experiment-spec compiler for Azure ML, with a local engine",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    package_dir={"capc": "compiler", "capc.templates": "templates"},
    packages=["capc", "capc.spec", "capc.render", "capc.state", "capc.local", "capc.local.automl", "capc.serve", "capc.azure", "capc.report", "capc.plan", "capc.jobfolder", "capc.templates"],
    package_data={"capc.spec": ["*.json"], "capc.plan": ["*.json"], "capc.templates": ["*.j2", "*/*.j2"]},
    install_requires=[
        "jinja2>=3.1",
        "jsonschema>=4.20",
        "pyyaml>=6.0",
        "click>=8.1",
        "rich>=13",
        "azure-ai-ml==1.35.2",
        "azure-identity>=1.15",
        "flaml[automl]==2.7.0",
        "optuna==5.0.0",
        "mlflow==3.17.2",
        "azureml-inference-server-http==1.5.1",
        "pandas>=2.2",
        "pyarrow",
        "scikit-learn==1.9.1",
        "lightgbm==4.7.0",
        "xgboost==2.1.4",
        "aiohttp>=3.9",
        "swagger-ui-bundle==1.1.0",
        "matplotlib>=3.8",  # capc report draws its figures (also an mlflow dependency)
    ],
    extras_require={"keras": KERAS, "test": TEST, "all": KERAS + TEST},
    entry_points={"console_scripts": ["capc=capc.cli:main"]},
)
