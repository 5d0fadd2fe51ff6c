"""Backend, local: the embedded engine that runs a generated job folder on this machine, as Azure ML would.

    submit.py         orchestration of `capc submit`: AutoML and the sweep side by side, then the winner registered
    cores.py          the one core budget a submit splits between AutoML and the sweep
    pipeline.py       the one pipeline runner: a pipeline job's graph (hand-written, or `--only pipeline`'s
                      pipeline_job.yml), one process per step; pipeline_nodes.py says what each step runs,
                      pipeline_winner.py the compiled pipeline's registration and deploy rules
    pipeline_step.py  one engine step (sweep, AutoML) of that graph, as its own process
    outcome.py        what an engine hands back to be compared and registered
    selection.py      the model to register: the best within the spec's serving budget (capc.serving_cost's rule)
    automl/           engine: tabular AutoML on FLAML (settings, training_data, search, ensembles, model, run; names.py: Azure's names -> FLAML's)
    images.py         engine: AutoML for images (a keras_cnn search)
    sweep.py          engine: a sweep job on Optuna (samplers.py, policies.py); launch.py starts its trials
    data.py           reading a job's training data: its MLTable or uri_file, and image folders
    progress.py       the live display of a submit

Shared state (model registry, MLflow tracking) is capc.state. Outside this folder only capc.backends and the CLI import it;
the report reads training rows again through data.py.
"""
