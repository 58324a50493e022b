"""The scikit-learn estimators: the estimator checks, masking, auxiliary targets, Pipeline,
GridSearchCV and clone."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_classifiers_train, check_estimator, check_regressors_train

from polytask.errors import PolytaskError
from polytask.sklearn import MultiTaskClassifier, MultiTaskRegressor
from polytask.synthetic import related_tasks

#: A small configuration keeps the ~110 estimator checks fast; at 5 epochs the network is not
#: yet accurate, so the two checks that assert a minimum training score are exempted here and
#: run again below with the default settings (docs/DEFAULTS.md), where they must pass.
QUICK = dict(epochs=5, trunk=(16,))
SCORE_CHECKS = {
    "check_regressors_train": "score threshold needs a trained network; run with default settings in test_training_score_checks_pass_with_default_settings",
    "check_classifiers_train": "accuracy threshold needs a trained network; run with default settings in test_training_score_checks_pass_with_default_settings",
}


@pytest.mark.parametrize("estimator", [MultiTaskRegressor(**QUICK), MultiTaskClassifier(**QUICK)], ids=lambda e: type(e).__name__)
def test_scikit_learn_estimator_checks(estimator) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, expected_failed_checks=SCORE_CHECKS, on_fail=None, on_skip=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    # only checks that do not apply are skipped: array-API input (needs SCIPY_ARRAY_API) and the
    # decision_function format check (the classifier has predict_proba, not decision_function)
    assert skipped <= {"check_array_api_input", "check_classifiers_multilabel_output_format_decision_function"}


def test_training_score_checks_pass_with_default_settings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_regressors_train("MultiTaskRegressor", MultiTaskRegressor())
        check_classifiers_train("MultiTaskClassifier", MultiTaskClassifier())


@pytest.fixture
def related() -> tuple[np.ndarray, np.ndarray]:
    frame, names = related_tasks(n_rows=400, n_features=8, n_tasks=3, noise=0.2, seed=5)
    return frame.drop(columns=names).to_numpy(), frame[names].to_numpy()


def test_missing_labels_are_masked_and_scored_on_observed_rows(related) -> None:  # type: ignore[no-untyped-def]
    x, y = related
    y = y.copy()
    rng = np.random.default_rng(0)
    y[rng.random(len(y)) < 0.6, 1] = np.nan
    model = MultiTaskRegressor(epochs=60, random_state=0).fit(x, y)
    pred = model.predict(x)
    assert pred.shape == y.shape and np.isfinite(pred).all()
    seen = ~np.isnan(y[:, 1])
    r2_task1 = 1 - np.sum((y[seen, 1] - pred[seen, 1]) ** 2) / np.sum((y[seen, 1] - y[seen, 1].mean()) ** 2)
    r2_others = [1 - np.sum((y[:, j] - pred[:, j]) ** 2) / np.sum((y[:, j] - y[:, j].mean()) ** 2) for j in (0, 2)]
    assert model.score(x, y) == pytest.approx(np.mean([r2_others[0], r2_task1, r2_others[1]]), rel=1e-6)
    assert r2_task1 > 0.5  # learned from its 40% of labels


def test_auxiliary_targets_are_trained_but_never_predicted(related) -> None:  # type: ignore[no-untyped-def]
    x, y = related
    main, aux = y[:, :1], y[:, 1:]
    model = MultiTaskRegressor(epochs=10, random_state=0).fit(x, main, aux=aux)
    assert model.predict(x).shape == (len(x), 1)
    assert [t.name for t in model.model_.tasks if t.auxiliary] == ["aux0", "aux1"]
    assert set(model.model_.predict(pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])).columns) == {"y0"}


def test_grid_search_slices_aux_per_fold_and_pipeline_and_clone_work(related) -> None:  # type: ignore[no-untyped-def]
    x, y = related
    pipe = make_pipeline(StandardScaler(), MultiTaskRegressor(epochs=8, trunk=(16,), random_state=0))
    search = GridSearchCV(pipe, {"multitaskregressor__lr": [1e-3, 1e-2]}, cv=KFold(2))
    search.fit(x, y[:, 0], multitaskregressor__aux=y[:, 1:])
    assert search.best_params_["multitaskregressor__lr"] in (1e-3, 1e-2)
    assert search.predict(x).shape == (len(x),)
    est = MultiTaskRegressor(trunk=(8, 4), lr=0.01, balancer_options={"weights": [1, 2]})
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    assert not hasattr(copy, "model_")


def test_classifier_with_string_labels_missing_values_and_probabilities() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    colour = np.where(x[:, 0] > 0.3, "red", np.where(x[:, 0] < -0.3, "blue", "green")).astype(object)
    flag = (x[:, 1] + x[:, 0] > 0).astype(float)
    colour[rng.random(300) < 0.3] = None
    y = pd.DataFrame({"colour": colour, "flag": flag})
    model = MultiTaskClassifier(epochs=60, random_state=0).fit(x, y)
    assert [list(c) for c in model.classes_] == [["blue", "green", "red"], [0.0, 1.0]]
    proba = model.predict_proba(x)
    assert proba[0].shape == (300, 3) and proba[1].shape == (300, 2)
    np.testing.assert_allclose(proba[0].sum(axis=1), 1.0, rtol=1e-5)
    pred = model.predict(x)
    assert pred.shape == (300, 2) and set(pred[:, 0]) <= {"red", "green", "blue"}
    assert model.score(x, y) > 0.8
    assert model.task_names_ == ["colour", "flag"]


def test_clear_errors_for_bad_targets() -> None:
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="continuous"):
        MultiTaskClassifier(epochs=1).fit(x, np.linspace(0, 1, 20) + 0.01)
    with pytest.raises(PolytaskError, match="only one class 'a'"):
        MultiTaskClassifier(epochs=1).fit(x, np.array(["a"] * 19 + [None], dtype=object))
    with pytest.raises(PolytaskError, match="regression target 'y0' holds non-numeric value 'x'"):
        MultiTaskRegressor(epochs=1).fit(x, np.array(["x"] * 20, dtype=object))
    with pytest.raises(PolytaskError, match="task_weights has 1 values for 2 targets"):
        MultiTaskRegressor(epochs=1, task_weights=[1.0]).fit(x, np.ones((20, 2)))
