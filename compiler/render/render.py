"""Stage 3, render: a validated Spec -> {relative posix path: bytes} of every artifact, in memory.

Pure in what it returns: reads the templates, the data file's first rows (through plan), a user trial script and
capc's self-contained modules it copies into the job folder (azure_metrics beside the generated trial scripts and
the pipeline's select step, serving_cost beside the select step), and writes no artifact (the writer in capc.artifacts does). Its one write is a cache: Jinja's compiled templates
under $XDG_CACHE_HOME/capc (else ~/.cache/capc), keyed by each template's source, so it never changes the output;
without a writable cache folder templates are compiled every time.
Every value from the spec enters an artifact through one of the quoting filters (`yaml`, `py`, `json`), so
quotes, newlines, `{{ }}` or `${{ }}` in a description or a column name still give valid files holding the
literal value.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import jinja2

from capc.errors import CapcError
from capc.render.context import build_context
from capc.render.environment_version import versioned
from capc.render.forecasting_context import TRIAL_MODULES as FORECASTING_TRIAL_MODULES
from capc.spec.conditional import COMBINATIONS_FILE

# artifact path -> template. The image task swaps in its own AutoML job shape and a JSONL-backed MLTable; the
# pipeline (and its schedule) exists when both AutoML and the sweep are enabled.
TEMPLATES: dict[str, str] = {
    "automl_job.yml": "automl_job.yml.j2",
    "capc.json": "capc.json.j2",
    "compute.yml": "compute.yml.j2",
    "data/MLTable": "MLTable.j2",
    "conda.yml": "conda.yml.j2",
    "environment.yml": "environment.yml.j2",
    "endpoint.yml": "endpoint.yml.j2",
    "deployment.yml": "deployment.yml.j2",
    "batch_endpoint.yml": "batch_endpoint.yml.j2",
    "batch_deployment.yml": "batch_deployment.yml.j2",
    "score.py": "score.py.j2",
    "sample_request.json": "sample_request.json.j2",
}
PIPELINE_TEMPLATES: dict[str, str] = {
    "pipeline_job.yml": "pipeline_job.yml.j2",
    "select/select_best.py": "select_best.py.j2",
    "select/conda.yml": "select_conda.yml.j2",
}
# Shared rules the job folder runs as they are: capc's own modules, copied (they import nothing of capc).
# artifact path -> module. The generated trial scripts score with Azure's metric definitions; the pipeline's
# select step checks its metric's goal and measures the candidates' serving cost; forecasting trials forecast with
# forecasting.py (capc.render.forecasting_context).
TRIAL_MODULES: dict[str, str] = {"src/azure_metrics.py": "azure_metrics.py"}
PIPELINE_MODULES: dict[str, str] = {"select/azure_metrics.py": "azure_metrics.py", "select/serving_cost.py": "serving_cost.py",
                                     "select/serving_load.py": "serving_load.py"}


def render_artifacts(spec, out_dir: Path) -> dict[str, bytes]:
    """Every artifact of `spec`, as it will lie under out_dir/<name>/ (manifest.json excepted)."""
    context = build_context(spec, out_dir)
    env = environment()
    # conda.yml first: the environment's version is a hash of it and the image, and every job names that version.
    conda_yml = _render(env, "conda.yml.j2", context, spec.name).encode("utf-8")
    context["environment"] = versioned(context["environment"], conda_yml)
    # artifact path -> (template, what the template sees beyond the shared context)
    names: dict[str, tuple[str, dict]] = {path: (template, {}) for path, template in TEMPLATES.items()}
    sweep = context["sweep"]
    copied: dict[str, Path] = {}  # artifact path -> the user's trial script it is a copy of
    if context["is_image"]:
        names["score.py"] = ("score_image.py.j2", {})
        names["automl_job.yml"] = ("automl_job_image.yml.j2", {})
        names["data/MLTable"] = ("MLTable_images.j2", {})
        names["data/images.jsonl"] = ("images.jsonl.j2", {})
    if context["forecast"]:  # Azure's forecasting request shape (capc.render.forecast_serving)
        names["score.py"] = ("score_forecast.py.j2", {})
        names["sample_request.json"] = ("sample_request_forecast.json.j2", {})
    if sweep:
        for path, job in sweep["jobs"].items():
            names[path] = ("sweep_job.yml.j2", {"sweep": job})
        for path, script in sweep["scripts"].items():
            if script["train"] is None:
                copied[path] = Path(script["user_script"])
            else:
                # The image task has its own trial script (keras_cnn, base64 model), forecasting its rolling-origin one.
                template = ("train_image.py.j2" if script["train"]["family"] == "keras_cnn"
                            else "train_forecast.py.j2" if script["train"]["forecasting"] else "train.py.j2")
                names[path] = (template, {"train": script["train"]})
        if sweep["combinations"]:
            names["src/train.py"] = ("train_grid.py.j2", {})
    if context["pipeline"]:
        names.update({path: (template, {}) for path, template in PIPELINE_TEMPLATES.items()})
        for job in context["pipeline"]["sweep_nodes"]:
            names[job["component"]["file"]] = ("sweep_trial.yml.j2", {"sweep": job, "component": job["component"]})
        if context["schedule"]:
            names["schedule.yml"] = ("schedule.yml.j2", {})
        if context["pipeline"]["deploy"]:
            names["select/deploy_winner.py"] = ("deploy_winner.py.j2", {})
    files = {}
    for path, (template, extra) in sorted(names.items()):
        files[path] = _render(env, template, {**context, **extra}, spec.name).encode("utf-8")
    for path, source in copied.items():
        files[path] = _read_user_script(source)
    if sweep and sweep["combinations"]:
        files["src/" + COMBINATIONS_FILE] = (json.dumps(sweep["combinations"], indent=1, sort_keys=True) + "\n").encode("utf-8")
    modules = dict(TRIAL_MODULES) if sweep and any(s["train"] is not None for s in sweep["scripts"].values()) else {}
    if modules and context["task"] == "forecasting":
        modules.update(FORECASTING_TRIAL_MODULES)
    if context["pipeline"]:
        modules.update(PIPELINE_MODULES)
    package = Path(__file__).resolve().parents[1]
    files.update({path: (package / module).read_bytes() for path, module in modules.items()})
    return dict(sorted(files.items()))


def _render(env: jinja2.Environment, template: str, context: dict, name: str) -> str:
    try:
        return env.get_template(template).render(context)
    except jinja2.TemplateError as exc:  # a template bug, not a spec problem: say which template
        raise CapcError(f"rendering {template} for {name} failed: {exc}") from exc


def _read_user_script(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CapcError(f"cannot read the trial script {path}: {exc}", "sweep.script is relative to the spec file") from None


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("capc.templates", "."),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml"] = yaml_scalar
    env.filters["py"] = py_literal
    env.filters["json"] = json_value
    return env


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached on disk: compiling them is most of a cold `capc build`'s time."""
    import os

    from capc import __version__

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "capc" / f"jinja-{__version__}"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time
    return jinja2.FileSystemBytecodeCache(str(base))


# ---------------------------------------------------------------- quoting filters


def yaml_scalar(value) -> str:
    """Any value as YAML flow (JSON-like) text that PyYAML - Azure's loader - reads back as the same value.

    JSON is nearly YAML 1.1; the differences handled here: floats need a dot (`1e-07` would load as a string),
    infinities and NaN have YAML spellings, and characters YAML treats as line breaks or does not allow
    (NEL, U+2028/9, C1 controls, BOM) are escaped.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    if isinstance(value, str):
        return _yaml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_string(str(k))}: {yaml_scalar(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _yaml_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)  # exponents always carry a sign (1e+20), as YAML 1.1 wants
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _yaml_string(text: str) -> str:
    out = []
    for ch in json.dumps(text, ensure_ascii=False)[1:-1]:
        code = ord(ch)
        if code == 0x7F or 0x80 <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def py_literal(value) -> str:
    """Any plain value as Python source that evaluates to it (repr, with finite-float care)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, (list, tuple)):
        items = ", ".join(py_literal(v) for v in value)
        return f"[{items}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)  # repr escapes quotes, newlines and every non-printable character
    raise TypeError(f"no Python literal for {type(value).__name__}")


def json_value(value, indent: int | None = None) -> str:
    """JSON text (non-finite floats become null: JSON has no spelling for them)."""
    return json.dumps(_finite(value), ensure_ascii=False, indent=indent)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
