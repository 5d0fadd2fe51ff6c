"""Backend, local AutoML: run an Azure `type: automl` tabular job (automl_job.yml) on FLAML, on this machine.

Modules, in the order a run uses them: `settings` (automl_job.yml -> AutoMLSettings), `training_data` (the
checks no model gets past), `search` (FLAML, the one place that touches its private parts), `learners` (capc's
own FLAML learners, for Azure algorithms FLAML lacks: SVM), `ensembles`, `model` (the served model; it and
`learners` import nothing of capc), `results`, and `run` (run_automl, the steps in order); `names` holds the
Azure -> FLAML tables and Azure's metric definitions. `task: forecasting` takes its own path from run_automl:
`forecast_search` (a rolling-origin search over capc.forecasting's learners) and `forecast_model` (the pyfunc model).

Stage: reads the settings of the generated job (`AutoMLSettings.from_job_yaml`), searches with FLAML under the
job's limits, reports every candidate as it finishes (`on_candidate`; the caller turns it into a child run),
builds Azure's two ensembles from the candidates' validation predictions, and returns the best model wrapped so
that it predicts from the raw feature columns and saves as an MLflow model.

How Azure's settings map (what FLAML cannot do is said here, and at run time in `AutoMLResult.notes`):
- primary_metric: scored by capc with Azure's definition (names.SCORERS), given to FLAML as a custom
  metric; every candidate carries all its task's Azure metrics, in Azure's direction.
- n_cross_validations -> FLAML `eval_method="cv"` (stratified for classification); validation_data_size ->
  holdout; neither -> Azure's rule: over 20,000 rows a 10% holdout, else 3 folds (10 below 1,000 rows).
- timeout_minutes -> FLAML `time_budget` (the search; ensembles and the final refit come out of what is left:
  FLAML lifts every limit for its refit, so a LightGBM or XGBoost winner's refit is held to half of what the
  search left, at least one validation fold's training time - search._bounded_refit);
  trial_timeout_minutes -> `train_time_limit`; max_trials and exit_score end the search after the trial that
  reaches them; enable_early_termination -> FLAML `early_stop` (its convergence test: FLAML's trials are many
  and small, so Azure's "no gain in 20 iterations" would stop it long before its search has converged).
- Warm start: each learner's first trial is FLAML's zero-shot configuration for this data (`starting_points=
  "data"`: a portfolio meta-learned offline and shipped inside FLAML, picked by the data's size and shape), as
  Azure's first trials are its recommender's configurations. FLAML's own cold start (4 trees, 4 leaves, growing
  from there) spends a trial cap like Azure's 30-40 on toy models within seconds: housing (2-minute budget,
  40 trials) stopped after 8 s at a 31,342 holdout MAE; warm-started, it used the budget and reached 28,991.
  Unless the timeout cannot train those big configurations on the data (rows x folds per minute, see
  search.ZERO_SHOT_ROW_FITS_PER_MINUTE): a trial FLAML cuts off is a broken model, so large data starts cold.
- max_concurrent_trials: not honoured; FLAML runs trials one after another (parallel trials need Ray or
  Spark), each on AutoMLSettings.threads threads (capc.local.cores: all cores but one alone, its share beside the sweep).
- normalized_mean_absolute_error: LightGBM also searches its absolute-error objective, so it trains on the
  loss the job is judged by (names.TRAINING_OBJECTIVES).
- enable_vote_ensemble / enable_stack_ensemble: Azure's VotingEnsemble (greedy ensemble selection with
  replacement over the candidates' out-of-fold predictions) and StackEnsemble (a logistic / elastic-net
  meta-learner over them), each scored on the same validation rows as the candidates and out of fold (the
  vote's selection and the stack's meta-learner are fitted without the rows that judge them), so the best is
  chosen fairly. FLAML's own `ensemble=True` is not used: it stacks blindly and its result has no score.
- Held-out predictions: the winner's predictions on its validation rows (out of fold under cross-validation,
  the holdout split otherwise; an ensemble's from its members' on the same rows) are kept as the search
  evaluates it and returned as `AutoMLResult.held_out`, which the caller stores with the run for `capc report`
  (see search). FLAML's auto_augment (copies of rare classes' rows) is off: a copy would be trained on and
  validated on at once.
- allowed/blocked algorithms: each Azure name runs as the FLAML learners in names.ALGORITHM_ESTIMATORS; SVM as
  capc's kernel SVC (learners.py), left out above names.ROW_LIMITS' 10,000 rows (its time grows with the square of
  the rows, and a FLAML trial cannot be stopped inside a fit); algorithms with no learner are skipped. Both say so
  in the notes.
- featurization auto: FLAML's DataTransformer (strings -> categories with an "unseen" slot, median imputation,
  constant and ID-like string columns dropped); off: columns used as they are, which must then be numeric
  without missing values.
"""


from capc.local.automl.model import AutoMLModel
from capc.local.automl.results import AutoMLResult, Candidate
from capc.local.automl.run import run_automl
from capc.local.automl.settings import AutoMLSettings, algorithm_name, resolve_estimators

__all__ = ["AutoMLModel", "AutoMLResult", "AutoMLSettings", "Candidate", "algorithm_name", "resolve_estimators", "run_automl"]
