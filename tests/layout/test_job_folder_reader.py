"""jobfolder/ is the one reader of a job folder: no module outside compiler/jobfolder/ names a job-folder file.

The rule, read from the source with ast: outside compiler/jobfolder/, no string literal (docstrings aside; an
f-string's literal parts count) is a job-folder file's name or a relative path ending in one ("MLTable",
"data/MLTable", "select/conda.yml"). A module that needs such a file asks capc.jobfolder for it (its readers, or
its name constants when it only points at the file). Exempt are the writers, and only for the files they write:
the artifact table of render/render.py (every file a build renders), artifacts.py (manifest.json, and the sweep
job files it names for both sides) and render/sweep_context.py (the pipeline's command lines, which name the
sweep job file they run). Messages that mention a file in a sentence ("... has no MLTable file.") are prose, not
a name, and pass.
"""

from __future__ import annotations

import ast

from layout import modules

JOB_FOLDER_FILES = {
    "automl_job.yml", "sweep_job.yml", "pipeline_job.yml", "endpoint.yml", "deployment.yml", "batch_endpoint.yml",
    "batch_deployment.yml", "environment.yml", "conda.yml", "MLTable", "images.jsonl", "capc.json", "manifest.json",
    "sample_request.json", "compute.yml", "schedule.yml", "score.py",
}
ALL = frozenset(JOB_FOLDER_FILES)
WRITERS = {
    "render/render.py": ALL,
    "artifacts.py": {"manifest.json", "sweep_job.yml"},
    "render/sweep_context.py": {"sweep_job.yml"},
}


def named_file(text: str) -> str | None:
    """The job-folder file a literal names: the whole literal, or the last part of a relative path."""
    last = text.rsplit("/", 1)[-1]
    return last if last in JOB_FOLDER_FILES and " " not in text else None


def literals(tree: ast.AST) -> list[ast.Constant]:
    """Every string constant but docstrings (a string that is a statement of its own)."""
    prose = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in prose]


def job_folder_names(path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, name) for node in literals(tree) if (name := named_file(node.value))]


def test_no_module_outside_jobfolder_names_a_job_folder_file():
    offenders = {}
    for rel, path in modules():
        if rel.startswith("jobfolder/"):
            continue
        allowed = WRITERS.get(rel, set())
        found = [f"{line}: {name}" for line, name in job_folder_names(path) if name not in allowed]
        if found:
            offenders[rel] = found
    assert offenders == {}


def test_the_rule_sees_names_paths_and_f_strings_but_not_prose(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        '"""Reads deployment.yml."""\n'
        'A = "deployment.yml"\n'
        'B = job_dir / "data/MLTable"\n'
        'C = f"{job_dir}/sample_request.json"\n'
        'D = "the MLTable of data/ names no file"\n'
        'def f():\n    """capc.json, as written."""\n'
    )
    assert job_folder_names(source) == [(2, "deployment.yml"), (3, "MLTable"), (4, "sample_request.json")]
