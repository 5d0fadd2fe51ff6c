"""Backend, local AutoML: the served model's fast prediction path gives exactly what FLAML's own path gives.

AutoMLModel featurizes plain tabular members itself (model.FastTabularMember) instead of through FLAML's per-call
pandas work; every case here compares it with the member's own flaml predict / predict_proba, on the whole bank
training file and on hand-made rows (gaps, unseen categories, numbers as text, columns reordered, an extra column).
score.py's column path (AutoMLModel.predict_columns / predict_proba_columns: a request's typed columns, no DataFrame)
is compared the same way, on columns typed by the generated score.py itself from JSON records, and through its run().
Members are fitted with a couple of FLAML iterations on a sample, so the module takes seconds.
"""

from __future__ import annotations

import functools
import json
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from capc import serving_cost
from capc.local.automl.model import AutoMLModel, FastTabularMember, save_mlflow_model, stack_features, with_ensemble
from capc.local.automl.search import new_automl
from repo import DATA, REPO

BANK = DATA / "bankmarketing" / "bankmarketing_train.csv"
HOUSING = DATA / "housing" / "housing.csv"
# FLAML learner -> what the fast path hands its model (FastTabularMember.call)
CLASSIFIERS = {"lgbm": "lightgbm", "xgboost": "xgboost", "xgb_limitdepth": "xgboost", "rf": "codes",
               "extra_tree": "codes", "lrl1": "codes"}
REGRESSORS = {"lgbm": "lightgbm", "xgboost": "xgboost", "rf": "codes", "extra_tree": "codes"}
EXACT = dict(rtol=0, atol=1e-12)


def fit_member(X: pd.DataFrame, y, task: str, learner: str):
    member = new_automl()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        member.fit(X, y, task=task, estimator_list=[learner], max_iter=2, eval_method="holdout", retrain_full=True,
                   n_jobs=1, seed=1, verbose=0)
    return member


def single(member, X: pd.DataFrame, task: str, classes=None) -> AutoMLModel:
    numeric = [str(c) for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    return AutoMLModel(task=task, feature_columns=[str(c) for c in X.columns], numeric_columns=numeric,
                       members=[member], weights=[1.0], classes=classes, kind="single")


def flaml_path(model: AutoMLModel) -> AutoMLModel:
    """The same model with every member on FLAML's own path."""
    slow = with_ensemble(model, dict(members=model.members, weights=model.weights, stacker=model.stacker,
                                     kind=model.kind))
    slow._fast_members = [None] * len(model.members)
    if "fill_values" in model.__dict__:  # the job's imputer values travel with the model
        slow.fill_values = model.fill_values
    return slow


def assert_same(model: AutoMLModel, rows: pd.DataFrame) -> None:
    """Predictions equal FLAML's own for `rows`, and the fast path (not a fallback) produced them."""
    features = model._features(rows)
    for member, fast in zip(model.members, model._fast_paths()):
        assert fast is not None and fast._model_input(features) is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if model.task == "classification":
                np.testing.assert_allclose(fast.output(features, True), member.predict_proba(features), **EXACT)
            else:
                np.testing.assert_allclose(fast.output(features, False), member.predict(features), **EXACT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = flaml_path(model).predict(rows)
        got = model.predict(rows)
    if model.task == "classification":
        assert list(got) == list(expected)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_allclose(model.predict_proba(rows), flaml_path(model).predict_proba(rows), **EXACT)
    else:
        np.testing.assert_allclose(got, expected, **EXACT)


def awkward_bank_rows(X: pd.DataFrame) -> pd.DataFrame:
    rows = X.head(12).astype({"age": float, "pdays": float, "job": object, "education": object, "day_of_week": object})
    rows.loc[0, "job"] = None  # missing text
    rows.loc[1, "job"] = np.nan
    rows.loc[2, "job"] = "astronaut"  # unseen: FLAML's "__NAN__"
    rows.loc[3, "marital"] = "__NAN__"  # the sentinel itself
    rows.loc[4, "age"] = np.nan  # numeric gap: the training median
    rows.loc[5, "euribor3m"] = None
    rows["campaign"] = rows["campaign"].astype(str)  # numbers arriving as text
    rows.loc[6, "campaign"] = "not a number"  # parsed as missing
    rows.loc[7, "day_of_week"] = 5  # a number in a text column: its text, an unseen category
    rows.loc[8, ["job", "education", "euribor3m", "pdays"]] = [None, None, None, None]
    rows["extra"] = "ignored"
    return rows[list(reversed(rows.columns))]


# ------------------------------------------------------------------ score.py's column path


@functools.cache  # once per process: inference-schema registers run()'s schema under the module's name
def generated_score_py(job: str):
    """generated/<job>/score.py imported, not init()-ed: its own request parsing and typing, for the column path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"score_of_{job}", REPO / "generated" / job / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def json_records(rows: pd.DataFrame) -> list[dict]:
    """Rows as a client sends them (plain JSON values, gaps null), as sample_request.json holds them."""
    return serving_cost.request_records(rows, limit=len(rows))


def typed_by_score_py(score, records: list[dict]) -> dict:
    """The typed columns score.py's run() gives the model for a request of `records`."""
    return score._typed_columns(score._columns(records, None))


def assert_columns_path_same(model: AutoMLModel, score, records: list[dict]) -> None:
    """The column path answers what the DataFrame path does (bit for bit) and what FLAML's own path does."""
    typed = typed_by_score_py(score, records)
    frame = score._frame(typed)  # what score.py gave the model before the column path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flaml = flaml_path(model)
        if model.task == "classification":
            got = model.predict_proba_columns(typed)
            assert got is not None, "the column path declined"
            assert np.array_equal(got, model.predict_proba(frame))
            np.testing.assert_allclose(got, flaml.predict_proba(frame), **EXACT)
            assert list(model.predict_columns(typed)) == list(flaml.predict(frame))
        else:
            got = model.predict_columns(typed)
            assert got is not None, "the column path declined"
            assert np.array_equal(got, model.predict(frame))
            np.testing.assert_allclose(got, flaml.predict(frame), **EXACT)


def awkward_bank_records(X: pd.DataFrame) -> list[dict]:
    records = json_records(X.head(12))
    records[0]["job"] = None  # missing text
    records[1]["job"] = "astronaut"  # unseen: FLAML's "__NAN__"
    records[2]["marital"] = "__NAN__"  # the sentinel itself
    records[3]["age"] = None  # numeric gaps: the training medians
    records[4]["euribor3m"] = None
    records[5]["day_of_week"] = 5  # a number in a text column: score.py sends its text, an unseen category
    records[6]["age"] = 41.5  # a fraction in an integer column: the column arrives as float64
    records[7] = {name: None for name in records[7]}  # every cell missing
    records[8]["education"] = ""  # empty text: unseen
    records[9].update(job=None, education=None, euribor3m=None, pdays=None)
    return records


@pytest.fixture(scope="module")
def bank_score():
    return generated_score_py("bankmarketing")


@pytest.fixture(scope="module")
def bank():
    frame = pd.read_csv(BANK)
    X, y = frame.drop(columns=["y"]), (frame["y"] == "yes").astype(int)
    sample = X.sample(2000, random_state=0)
    members = {name: fit_member(sample, y[sample.index], "classification", name) for name in CLASSIFIERS}
    # LightGBM trained on text gaps: "__NAN__" is one of its own categories, not only FLAML's appended one
    gappy = sample.copy()
    gappy.loc[gappy.index[:50], ["job", "month"]] = None
    members["lgbm_gaps"] = fit_member(gappy, y[sample.index], "classification", "lgbm")
    return X, members


@pytest.fixture(scope="module")
def housing():
    frame = pd.read_csv(HOUSING)
    X, y = frame.drop(columns=["median_house_value"]), frame["median_house_value"]
    members = {name: fit_member(X, y, "regression", name) for name in REGRESSORS}
    return X, members


@pytest.mark.parametrize("learner", [*CLASSIFIERS, "lgbm_gaps"])
def test_classifier_equals_flaml_on_the_bank_file_and_awkward_rows(bank, learner):
    X, members = bank
    model = single(members[learner], X, "classification", np.array(["no", "yes"]))
    assert model._fast_paths()[0].call == CLASSIFIERS.get(learner, "lightgbm")
    assert_same(model, X)
    assert_same(model, awkward_bank_rows(X))
    assert_same(model, X.iloc[[3]])


@pytest.mark.parametrize("learner", [*CLASSIFIERS, "lgbm_gaps"])
def test_columns_path_equals_flaml_on_bank_records_with_gaps_and_unseen_text(bank, bank_score, learner):
    X, members = bank
    model = single(members[learner], X, "classification", np.array(["no", "yes"]))
    assert_columns_path_same(model, bank_score, json_records(X.head(2000)))
    assert_columns_path_same(model, bank_score, awkward_bank_records(X))
    assert_columns_path_same(model, bank_score, json_records(X.iloc[[3]]))  # one row, as most requests are


@pytest.mark.parametrize("learner", list(REGRESSORS))
def test_regressor_equals_flaml_on_housing_with_its_gaps_and_text(housing, learner):
    X, members = housing
    model = single(members[learner], X, "regression")
    assert model._fast_paths()[0].call == REGRESSORS[learner]
    assert X["total_bedrooms"].isna().any()
    assert_same(model, X)
    rows = X.head(8).copy().astype({"ocean_proximity": object})
    rows.loc[0, "ocean_proximity"] = None
    rows.loc[1, "ocean_proximity"] = "ON THE MOON"
    rows.loc[2, ["total_bedrooms", "median_income"]] = [np.nan, np.nan]
    rows["median_income"] = rows["median_income"].astype(str)
    assert_same(model, rows[list(reversed(rows.columns))])
    records = json_records(X.head(300))
    records[0]["ocean_proximity"] = None
    records[1]["ocean_proximity"] = "ON THE MOON"
    records[2].update(total_bedrooms=None, median_income=None)
    records[3]["housing_median_age"] = 30  # a whole number in a number column
    assert_columns_path_same(model, generated_score_py("housing"), records)


@pytest.mark.parametrize("learner", ["lgbm", "xgboost", "extra_tree"])
def test_multiclass_on_numbers_only_equals_flaml_with_numbers_as_text(learner):
    frame = pd.read_csv(DATA / "digits" / "digits_train.csv").sample(600, random_state=0)
    X, y = frame.drop(columns=["label"]), frame["label"]
    model = single(fit_member(X, y, "classification", learner), X, "classification", np.sort(y.unique()))
    assert model._fast_paths()[0].cat_columns == []
    assert_same(model, X)
    assert_same(model, X.head(30).astype(str))  # JSON clients send strings sometimes
    records = json_records(X.head(200))
    records[0]["pixel5"] = None
    assert_columns_path_same(model, generated_score_py("mnist"), records)  # numbers only: no text column


def test_vote_and_stack_ensembles_equal_flaml(bank):
    X, members = bank
    base = single(members["lgbm"], X, "classification", np.array(["no", "yes"]))
    picked = [members["lgbm"], members["xgboost"], members["extra_tree"]]
    vote = with_ensemble(base, dict(members=picked, weights=[0.5, 0.3, 0.2], stacker=None, kind="vote"))
    assert_same(vote, X)
    assert_same(vote, awkward_bank_rows(X))
    sample = X.head(500)
    outputs = [np.asarray(m.predict_proba(vote._features(sample))) for m in picked]
    stacker = LogisticRegression().fit(stack_features(outputs), (np.arange(500) % 3 == 0).astype(int))
    stack = with_ensemble(base, dict(members=picked, weights=None, stacker=stacker, kind="stack"))
    assert_same(stack, X)
    assert_same(stack, awkward_bank_rows(X))
    score = generated_score_py("bankmarketing")
    for model in (vote, stack):
        assert_columns_path_same(model, score, json_records(X.head(1000)))
        assert_columns_path_same(model, score, awkward_bank_records(X))
        assert_columns_path_same(model, score, json_records(X.tail(1)))


def test_unseen_categories_warn_as_flaml_does(bank):
    X, members = bank
    model = single(members["lgbm"], X, "classification", np.array(["no", "yes"]))
    rows = X.head(2).astype({"job": object})
    rows.loc[0, "job"] = "astronaut"
    with pytest.warns(UserWarning, match=r"Column 'job' contains values unseen at fit time \(e.g. \['astronaut'\]\)"):
        model.predict_proba(rows)


def test_inputs_the_fast_path_cannot_copy_exactly_go_through_flaml(bank):
    X, members = bank
    model = single(members["xgboost"], X, "classification", np.array(["no", "yes"]))
    fast = model._fast_paths()[0]
    rows = X.head(20)
    as_float32 = rows.astype({"euribor3m": np.float32, "age": np.float32, "duration": np.float32})
    categorical = rows.astype({"job": "category"})
    for odd in (as_float32, categorical):
        assert fast._model_input(model._features(odd)) is None
        np.testing.assert_allclose(model.predict_proba(odd), members["xgboost"].predict_proba(model._features(odd)), **EXACT)
    infinite = rows.copy()
    infinite.loc[infinite.index[0], "euribor3m"] = np.inf
    with pytest.raises(ValueError):  # scikit-learn's own refusal, as before
        model.predict_proba(infinite)


def test_members_without_pinned_categories_or_not_flaml_are_left_to_flaml(bank):
    X, members = bank
    member = members["lgbm"]
    transformer = member._transformer
    saved = transformer._cat_categories
    try:
        transformer._cat_categories = None  # a pickle from a FLAML that did not pin the categories
        assert FastTabularMember.build(member) is None
    finally:
        transformer._cat_categories = saved
    assert FastTabularMember.build(object()) is None


def test_fast_paths_are_not_pickled_and_rebuild_after_loading(bank):
    X, members = bank
    model = single(members["lgbm"], X, "classification", np.array(["no", "yes"]))
    expected = model.predict_proba(X.head(50))
    assert "_fast_members" in model.__dict__
    loaded = pickle.loads(cloudpickle.dumps(model))
    assert "_fast_members" not in loaded.__dict__
    np.testing.assert_allclose(loaded.predict_proba(X.head(50)), expected, **EXACT)
    assert loaded._fast_paths()[0].call == "lightgbm"


def _run_without_capc(script: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_saved_model_loads_without_capc_and_predicts_as_flaml(bank, tmp_path):
    X, members = bank
    model = single(members["lgbm"], X, "classification", np.array(["no", "yes"]))
    save_mlflow_model(model, tmp_path / "model", X.head(20))
    rows = awkward_bank_rows(X)
    rows.to_pickle(tmp_path / "rows.pkl")
    printed = _run_without_capc(f"""
        import sys, warnings
        sys.modules["capc"] = None
        warnings.simplefilter("ignore")
        import mlflow.sklearn, pandas as pd
        model = mlflow.sklearn.load_model({str(tmp_path / "model")!r})
        rows = pd.read_pickle({str(tmp_path / "rows.pkl")!r})
        print(model._fast_paths()[0].call, model.predict_proba(rows).tolist())
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = flaml_path(model).predict_proba(rows)
    call, values = printed.split(" ", 1)
    assert call == "lightgbm"
    np.testing.assert_allclose(np.array(eval(values)), expected, **EXACT)


def test_model_saved_by_the_code_before_the_fast_path_still_loads_and_predicts(bank, tmp_path):
    """A registered model carries its AutoMLModel code by value: one saved before this change keeps its own."""
    import importlib.util

    # compiler/local/automl/model.py as of commit cd12876, kept beside the tests so the check needs no git history.
    path = Path(__file__).parent / "saved_code" / "model_before_fast_path.py"
    spec = importlib.util.spec_from_file_location("model_before_fast_path", path)
    before = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = before
    try:
        spec.loader.exec_module(before)
        X, members = bank
        numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
        old = before.AutoMLModel(task="classification", feature_columns=list(X.columns), numeric_columns=numeric,
                                 members=[members["xgboost"]], weights=[1.0], classes=np.array(["no", "yes"]))
        before.save_mlflow_model(old, tmp_path / "model", X.head(20))
    finally:
        del sys.modules[spec.name]
    X.head(200).to_csv(tmp_path / "rows.csv", index=False)
    printed = _run_without_capc(f"""
        import sys, warnings
        sys.modules["capc"] = None
        import mlflow.sklearn, pandas as pd
        model = mlflow.sklearn.load_model({str(tmp_path / "model")!r})
        print(hasattr(model, "_fast_paths"), model.predict_proba(pd.read_csv({str(tmp_path / "rows.csv")!r})).tolist())
    """)
    has_fast, values = printed.split(" ", 1)
    assert has_fast == "False"  # its own, older code
    new = single(members["xgboost"], X, "classification", np.array(["no", "yes"]))
    np.testing.assert_allclose(np.array(eval(values)), new.predict_proba(X.head(200)), **EXACT)


def test_columns_path_declines_what_only_the_frame_path_reproduces(bank, bank_score):
    X, members = bank
    model = single(members["xgboost"], X, "classification", np.array(["no", "yes"]))
    typed = typed_by_score_py(bank_score, json_records(X.head(5)))
    assert model.predict_proba_columns(typed) is not None

    def changed(**columns):
        return {**typed, **columns}

    declined = {
        "numbers as text": changed(campaign=np.array(["1", "2", "3", "x", None], dtype=object)),  # _features parses them
        "float32 numbers": changed(age=typed["age"].astype(np.float32)),
        "an infinite number": changed(euribor3m=np.array([np.inf, 1.0, 1.0, 1.0, 1.0])),
        "a bool in a text column": changed(job=np.array([True, "admin.", "admin.", None, "admin."], dtype=object)),
        "a number in a text column": changed(job=np.array([5, "admin.", "admin.", None, "admin."], dtype=object)),
        "text as numpy str": changed(job=typed["job"].astype(str)),
        "a list, not an array": changed(job=list(typed["job"])),
        "columns of different lengths": changed(age=typed["age"][:3]),
        "a missing column": {k: v for k, v in typed.items() if k != "month"},
    }
    for case, columns in declined.items():
        assert model.predict_proba_columns(columns) is None, case
        assert model.predict_columns(columns) is None, case
    on_flaml = flaml_path(model)  # a member FLAML's own path serves: the frame decides
    assert on_flaml.predict_proba_columns(typed) is None


def test_columns_path_fills_the_jobs_imputer_values_as_the_frame_does(bank, bank_score):
    X, members = bank
    model = single(members["lgbm"], X, "classification", np.array(["no", "yes"]))
    model.fill_values = {"age": 40, "euribor3m": 1.25, "job": "unemployed", "month": "unseen-month"}
    records = awkward_bank_records(X)
    assert_columns_path_same(model, bank_score, records)
    typed = typed_by_score_py(bank_score, records)
    filled = typed["job"].copy()
    filled[[0, 7, 9]] = "unemployed"
    assert list(model._column_features(typed)["job"]) == list(filled)
    assert all(v != v for v in typed["job"][[0, 7, 9]])  # the caller's arrays keep their gaps (score.py: NaN)
    for odd in ({"age": "forty"}, {"age": True}, {"age": 2**60 + 1}, {"job": 3}):
        model.fill_values = odd  # pandas' own casting decides these: the frame
        assert model.predict_proba_columns(typed) is None, odd


def _reply(reply) -> tuple[int, dict]:
    if hasattr(reply, "get_data"):
        return reply.status_code, json.loads(reply.get_data(as_text=True))
    return 200, reply


def test_score_py_answers_through_the_column_path_as_flaml_does(bank, bank_score, tmp_path):
    X, members = bank
    base = single(members["lgbm"], X, "classification", np.array(["no", "yes"]))
    vote = with_ensemble(base, dict(members=[members["lgbm"], members["xgboost"]], weights=[0.6, 0.4], stacker=None,
                                    kind="vote"))
    save_mlflow_model(vote, tmp_path / "model", X.head(20))
    records = awkward_bank_records(X)
    typed = typed_by_score_py(bank_score, records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = flaml_path(vote).predict_proba(bank_score._frame(typed))
    score_py = str(REPO / "generated" / "bankmarketing" / "score.py")
    with serving_cost.loaded_score_module(score_py, str(tmp_path / "model")) as (score, _):
        assert score._predict_proba_columns is not None  # init() checked it against the frame and kept it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            status, answer = _reply(score.run(data=records))
            assert status == 200
            got = np.array([[row["no"], row["yes"]] for row in answer["probabilities"]])
            np.testing.assert_allclose(got, expected, **EXACT)
            assert answer["result"] == list(np.array(["no", "yes"])[expected.argmax(axis=1)])
            status, answer = _reply(score.run(data=[{**records[0], "campaign": "3"}]))  # text for a number: 400 as ever
            assert status == 400 and "expected a number" in answer["message"]


def test_score_py_keeps_the_frame_for_a_model_saved_before_the_column_path(bank, tmp_path):
    import importlib.util

    path = Path(__file__).parent / "saved_code" / "model_before_fast_path.py"
    spec = importlib.util.spec_from_file_location("model_before_fast_path", path)
    before = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = before
    try:
        spec.loader.exec_module(before)
        X, members = bank
        numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
        old = before.AutoMLModel(task="classification", feature_columns=list(X.columns), numeric_columns=numeric,
                                 members=[members["xgboost"]], weights=[1.0], classes=np.array(["no", "yes"]))
        before.save_mlflow_model(old, tmp_path / "model", X.head(20))
    finally:
        del sys.modules[spec.name]
    records = json_records(X.head(3))
    score_py = str(REPO / "generated" / "bankmarketing" / "score.py")
    with serving_cost.loaded_score_module(score_py, str(tmp_path / "model")) as (score, _):
        assert score._predict_columns is None and score._predict_proba_columns is None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            status, answer = _reply(score.run(data=records))
    new = single(members["xgboost"], X, "classification", np.array(["no", "yes"]))
    got = np.array([[row["no"], row["yes"]] for row in answer["probabilities"]])
    np.testing.assert_allclose(got, new.predict_proba(X.head(3)), **EXACT)
