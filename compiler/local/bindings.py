"""Backend, local: what `${{inputs.X}}`, `${{outputs.X}}` and `${{search_space.X}}` in a job's command become here
(capc.local.commands puts them into the command text).

Azure ML mounts or downloads an input and puts its local path in the command, and gives each output (each
trial's, in a sweep) a fresh folder; a literal input (`learning_rate: 0.01`, or `{type: number, default: 0.01}`)
is its value. Locally an input must be a file or folder on this machine (relative paths are relative to the
job YAML's folder, as Azure reads them); an input on Azure (azureml:, https, wasbs, abfss, ...) is refused with
the override that fixes it. An output is a folder `named_outputs/NAME` in the trial's (or run's) folder (a uri_file
output: a file in it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from capc.errors import CapcError
from capc.data_location import is_remote, output_file_name
from capc.local.samplers import format_value

NAMED_OUTPUTS = "named_outputs"  # beside outputs/ (the folder Azure uploads as the run's artifacts)


def input_text(name: str, declared, job_dir: Path) -> str:
    """What `${{inputs.NAME}}` becomes: a local path (checked to exist) or a literal value."""
    if not isinstance(declared, Mapping):
        return format_value(declared)  # a literal input: `inputs: {learning_rate: 0.01}`
    if "path" not in declared:
        for key in ("value", "default"):
            if key in declared:
                return format_value(declared[key])
        raise CapcError(f"input {name} has neither a path nor a value.", f"give it one, e.g. --set inputs.{name}.path=LOCAL_FILE")
    path = str(declared["path"])
    if is_remote(path):
        raise CapcError(
            f"input {name} points at {path}, which lives on Azure or the web; the local engine reads only files on this "
            "machine and never downloads data.",
            f"run it with a copy on this machine: --set inputs.{name}.path=LOCAL_FILE (a file or folder, relative to the current "
            f"directory), or --data-map FILE, a YAML of remote URI to local path (`{path}: LOCAL_PATH`) that binds it wherever it is named",
        )
    local = (Path(job_dir) / path.removeprefix("file://")).resolve()
    if not local.exists():
        raise CapcError(
            f"input {name}: {path} (resolved against {job_dir} to {local}) does not exist.",
            f"fix the path, or --set inputs.{name}.path=LOCAL_FILE",
        )
    return str(local)


def output_folders(declared, run_dir: Path) -> dict[str, str]:
    """Each declared output (a mapping of name to its declaration, or names) -> a fresh folder under
    run_dir/named_outputs/ (created); a declared uri_file output -> a file in that folder, as Azure hands a uri_file
    output's command the path of a file."""
    folders = {}
    pairs = declared.items() if isinstance(declared, Mapping) else ((name, None) for name in declared or ())
    for name, value in pairs:
        folder = Path(run_dir) / NAMED_OUTPUTS / name
        folder.mkdir(parents=True, exist_ok=True)
        file_name = output_file_name(name, value)
        folders[name] = str(folder / file_name) if file_name else str(folder)
    return folders

