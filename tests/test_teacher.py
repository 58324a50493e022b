"""Teacher labels: a fitted model's outputs become auxiliary targets (sequential transfer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from polytask import DataConfig, PolytaskError, Targets
from polytask.auxiliary import teacher_labels
from polytask.synthetic import related_tasks
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, fit

FEATURES = [f"x{i}" for i in range(5)]


@pytest.fixture
def frame() -> pd.DataFrame:
    data, _ = related_tasks(n_rows=200, n_features=5, n_tasks=2, binary_tasks=1, seed=6)
    return data


def test_round_trip_with_scikit_learn_teachers(frame: pd.DataFrame) -> None:
    clf = LogisticRegression().fit(frame[FEATURES], frame["task1"])
    reg = Ridge().fit(frame[FEATURES].to_numpy(), frame["task0"])  # no recorded feature names
    labelled = teacher_labels(clf, frame, prefix="clf:")
    assert labelled.aux == ["clf:proba_1"]
    np.testing.assert_allclose(labelled.frame["clf:proba_1"], clf.predict_proba(frame[FEATURES])[:, 1])
    with pytest.raises(PolytaskError, match="features"):
        teacher_labels(reg, frame)
    both = teacher_labels(reg, labelled.frame, features=FEATURES, prefix="reg:")
    np.testing.assert_allclose(both.frame["reg:value"], reg.predict(frame[FEATURES].to_numpy()))
    # the student trains on the main labels it has plus the teacher outputs on every row
    student = both.frame.copy()
    student.loc[100:, "task0"] = np.nan  # half the rows are unlabelled for the main task
    aux = labelled.aux + both.aux
    report = fit(student, Targets(["task0"], aux=aux, kinds=both.kinds), NetworkSpec(trunk=(8,)),
                 TrainConfig(epochs=3, seed=0), data_config=DataConfig(features=tuple(FEATURES)))
    preds = report.mtl.predict(frame[FEATURES])  # teacher columns are not needed to predict
    assert list(preds.columns) == ["task0"]
    assert set(aux) <= set(report.mtl.summary["val_metrics"])


def test_polytask_model_as_teacher(frame: pd.DataFrame) -> None:
    teacher = fit(frame, ["task0", "task1"], spec=NetworkSpec(trunk=(8,)), config=TrainConfig(epochs=3, seed=0)).mtl
    out = teacher_labels(teacher, frame)
    expected = teacher.predict(frame)
    assert out.aux == ["teacher:task0", "teacher:task1:proba_0", "teacher:task1:proba_1"]
    np.testing.assert_allclose(out.frame["teacher:task0"], expected["task0"])
    np.testing.assert_allclose(out.frame["teacher:task1:proba_1"], expected["task1:proba_1"])
    with pytest.raises(PolytaskError, match="already exists"):
        teacher_labels(teacher, out.frame)
