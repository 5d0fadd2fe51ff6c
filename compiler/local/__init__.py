"""Backend, local: the embedded engine that runs a generated job folder on this machine, as Azure ML would.

    submit.py         orchestration of `capc submit`: AutoML and the sweep side by side, then the winner registered
    cores.py          the one core budget a submit splits between AutoML and the sweep
    pipeline.py       orchestration of `--only pipeline`: pipeline_job.yml's graph, one process per step
    pipeline_step.py  one engine step of that graph, as its own process
    outcome.py        what an engine hands back to be compared and registered
    winner.py         the candidates a submit weighs, handed to capc.selection (the rule both backends share)
    automl/           engine: tabular AutoML on FLAML (settings, training_data, search, ensembles, model, run; names.py: Azure's names -> FLAML's)
    images.py         engine: AutoML for images (a keras_cnn search)
    automl_run.py     the AutoML job's run (start, interrupted, failed), shared by both AutoML kinds
    sweep.py          engine: a sweep job on Optuna (sweep_plan.py reads it; samplers.py; capc.policies); launch.py starts its trials
    image_folder.py   the image folder an image job trains on, scanned and checked
    progress.py       the live display of a submit

Shared state (model registry, MLflow tracking) is capc.state; a job's training data is read by capc.jobfolder.data.
Outside this folder only capc.backends and the CLI import it (tests/layout checks the other stages do not).
"""
