"""Shared state: what a submit run records so that it can be told apart and repeated.

On the submit run, as MLflow tags: the spec's hash (capc.spec_sha256, as before), the job folder's manifest hash,
the data fingerprint (capc.state.fingerprint), the seed and whether capc drew it, reproducible mode, the --set
overrides and the spec it came from, the versions of capc and of the learners, and the run's notes.
`capc runs --json` shows them (`record`), `capc submit --like RUN_ID` reads them back (`like`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from capc.errors import CapcError

SPEC_TAG = "capc.spec_sha256"
MANIFEST_TAG = "capc.manifest_sha256"
DATA_TAG = "capc.data"
SEED_TAG = "capc.seed"
SEED_DRAWN_TAG = "capc.seed_drawn"
REPRODUCIBLE_TAG = "capc.reproducible"
OVERRIDES_TAG = "capc.overrides"
SOURCE_TAG = "capc.source"
VERSIONS_TAG = "capc.versions"
NOTES_TAG = "capc.notes"
# Distributions whose versions decide what a run trains: capc, its engines and every trial family's learner.
LEARNER_PACKAGES = ("flaml", "lightgbm", "xgboost", "scikit-learn", "optuna", "numpy", "pandas", "mlflow", "keras", "torch")


def versions() -> dict[str, str]:
    """capc and the installed learners, `name -> version`."""
    out = {}
    for name in ("capc", *LEARNER_PACKAGES):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            if name == "capc":
                from capc import __version__

                out[name] = __version__
    return out


def manifest_sha256(job_dir: Path) -> str:
    """The hash of the job folder's manifest.json, which holds a sha256 per file: one hash of every artifact."""
    from capc.jobfolder.folder import manifest_file

    path = manifest_file(job_dir)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def submit_tags(job_dir: Path, run, source: Path | None, overrides: list[str], data_tag: str | None, notes: list[str]) -> dict[str, str]:
    """The tags a submit run starts with; `run` is its capc.local.reproducible.RunSeed."""
    tags = {
        MANIFEST_TAG: manifest_sha256(job_dir),
        SEED_TAG: str(run.seed),
        SEED_DRAWN_TAG: str(run.drawn).lower(),
        REPRODUCIBLE_TAG: str(run.reproducible).lower(),
        OVERRIDES_TAG: json.dumps(list(overrides)),
        VERSIONS_TAG: json.dumps(versions(), sort_keys=True),
        NOTES_TAG: "\n".join(notes)[:7500],
    }
    if source is not None:
        tags[SOURCE_TAG] = str(Path(source).resolve())
    if data_tag:
        tags[DATA_TAG] = data_tag
    return tags


def record_of(tags: dict) -> dict:
    """A submit run's record as `capc runs --json` shows it (empty for runs that are not submits)."""
    if SEED_TAG not in tags and MANIFEST_TAG not in tags:
        return {}
    return {
        "spec_sha256": tags.get(SPEC_TAG),
        "manifest_sha256": tags.get(MANIFEST_TAG),
        "data": _json(tags.get(DATA_TAG)),
        "seed": int(tags[SEED_TAG]) if tags.get(SEED_TAG, "").isdigit() else None,
        "seed_drawn": tags.get(SEED_DRAWN_TAG) == "true",
        "reproducible": tags.get(REPRODUCIBLE_TAG) == "true",
        "overrides": _json(tags.get(OVERRIDES_TAG)) or [],
        "source": tags.get(SOURCE_TAG),
        "versions": _json(tags.get(VERSIONS_TAG)) or {},
        "notes": [line for line in (tags.get(NOTES_TAG) or "").split("\n") if line],
    }


def _json(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class LikeRun:
    """What `capc submit --like RUN_ID` repeats: the spec, its overrides with the seed, reproducible mode."""

    run_id: str
    source: Path
    overrides: list[str]  # the run's --set, plus seed=N when the run drew its seed and the source is a spec
    reproducible: bool
    seed: int | None = None  # a job folder takes no --set: the seed the run drew, given to the submit as it is

    def on_top(self, source: Path | None, overrides: tuple[str, ...], reproducible: bool) -> tuple:
        """(source, overrides, reproducible, seed) of a submit like this run, with what the command adds on top
        (a SPEC given instead, more --set), said on stderr."""
        import click

        again = [*(f"--set {o}" for o in self.overrides), *(["--reproducible"] if self.reproducible else [])]
        click.echo(f"note: like run {self.run_id}: {self.source} {' '.join(again)}", err=True)
        return source or self.source, (*self.overrides, *overrides), reproducible or self.reproducible, self.seed


def like(run_id: str) -> LikeRun:
    """The settings of an earlier submit run (a prefix of its id will do, as `capc runs` shows 8 characters)."""
    from capc.state.tracking import client

    mlflow_client = client()
    run = _find_run(mlflow_client, run_id)
    record = record_of(run.data.tags)
    if not record or record["seed"] is None or not record.get("source"):
        raise CapcError(
            f"run {run.info.run_id} recorded no settings to repeat (no seed or spec): it is not a local submit run of this capc.",
            "pick a submit run from `capc runs NAME`",
        )
    # A seed the run drew becomes an override; one from the spec or from --set is there already.
    source, drawn = Path(record["source"]), record["seed_drawn"]
    if source.is_dir():
        return LikeRun(run.info.run_id, source, list(record["overrides"]), record["reproducible"], record["seed"] if drawn else None)
    overrides = list(record["overrides"]) + ([f"seed={record['seed']}"] if drawn else [])
    return LikeRun(run.info.run_id, source, overrides, record["reproducible"])


def _find_run(mlflow_client, run_id: str):
    try:
        return mlflow_client.get_run(run_id)
    except Exception:  # not a full id: look for a submit run starting with it
        pass
    found = [r for e in mlflow_client.search_experiments() for r in mlflow_client.search_runs(
        [e.experiment_id], "tags.`capc.kind` = 'submit'", max_results=50000) if r.info.run_id.startswith(run_id)]
    if len(found) != 1:
        raise CapcError(f"{'no' if not found else 'more than one'} submit run {'has' if not found else 'have'} an id starting with `{run_id}`.",
                        "`capc runs NAME` lists the runs; give more characters of the id")
    return found[0]


def submit_settings(like_run: str | None, source: Path | None, overrides: tuple[str, ...], reproducible: bool) -> tuple:
    """`capc submit`'s (source, overrides, reproducible, seed): with `--like RUN_ID` that run's, with what the
    command gives on top; a CapcError when there is nothing to submit."""
    source, overrides, reproducible, seed = like(like_run).on_top(source, overrides, reproducible) if like_run else (source, overrides, reproducible, None)
    if source is None:
        raise CapcError("capc submit needs a SPEC, a JOB_FOLDER or a JOB.yml (or --like RUN_ID).", "e.g. capc submit specs/bankmarketing.yaml")
    return source, overrides, reproducible, seed
