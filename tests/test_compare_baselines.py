"""scikit-learn baselines: masked labels are never used, selection is on validation rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from polytask.compare import baselines as bl
from polytask.synthetic import related_tasks
from polytask.workflow import prepare


@pytest.fixture
def prepared_with_gaps():  # type: ignore[no-untyped-def]
    frame, names = related_tasks(n_rows=300, n_features=6, n_tasks=3, binary_tasks=1, seed=2)
    frame.loc[frame.index % 3 == 0, "task1"] = np.nan
    return prepare(frame, names, seed=0)


def test_masked_labels_never_reach_a_per_task_baseline(prepared_with_gaps) -> None:  # type: ignore[no-untyped-def]
    p = prepared_with_gaps
    train, val, test = (bl.Arrays.of(d) for d in (p.train, p.val, p.test))
    poisoned = bl.Arrays(train.x, {k: v.copy() for k, v in train.targets.items()}, train.masks)
    poisoned.targets["task1"][~train.masks["task1"]] = 1e6  # would wreck any fit that used them
    for name in ("linear", "hgb"):
        (clean,), _ = bl.per_task_outputs(name, p.encoders, train, val, [test], seed=0, **({"max_iter": 20} if name == "hgb" else {}))
        (dirty,), _ = bl.per_task_outputs(name, p.encoders, poisoned, val, [test], seed=0, **({"max_iter": 20} if name == "hgb" else {}))
        np.testing.assert_allclose(clean["task1"], dirty["task1"])
    # the ridge baseline is scikit-learn's ridge fitted on the labelled rows with the alpha that
    # minimizes the validation error
    m = train.masks["task1"][:, 0]
    errors = {}
    for alpha in bl.RIDGE_ALPHAS:
        model = Ridge(alpha=alpha).fit(train.x[m], train.targets["task1"][m, 0])
        mv = val.masks["task1"][:, 0]
        errors[alpha] = np.mean((model.predict(val.x[mv]) - val.targets["task1"][mv, 0]) ** 2)
    best = min(errors, key=errors.get)
    (out,), params = bl.per_task_outputs("linear", p.encoders, train, val, [test], seed=0)
    expected = Ridge(alpha=best).fit(train.x[m], train.targets["task1"][m, 0]).predict(test.x)
    np.testing.assert_allclose(out["task1"][:, 0], expected, rtol=1e-6)
    assert params == 3 * (train.x.shape[1] + 1)


def test_boosting_stops_at_the_best_validation_iteration(prepared_with_gaps) -> None:  # type: ignore[no-untyped-def]
    p = prepared_with_gaps
    train, val = bl.Arrays.of(p.train), bl.Arrays.of(p.val)
    enc = p.encoders[0]
    (_, col), = list(bl._columns(enc, train, val))
    model = bl._fit_hgb(col, seed=0, max_iter=60)
    xv, yv = col.val
    losses = [np.mean((s - yv) ** 2) for s in model.model.staged_predict(xv)]
    assert model.n_iter == int(np.argmin(losses)) + 1
    assert np.mean((model.predict(xv) - yv) ** 2) == pytest.approx(min(losses))


def test_multi_output_mlp_runs_only_where_the_tasks_allow(prepared_with_gaps) -> None:  # type: ignore[no-untyped-def]
    p = prepared_with_gaps
    train, val = bl.Arrays.of(p.train), bl.Arrays.of(p.val)
    assert "multi-output MLP needs" in bl.mlp_unsupported_reason(p.encoders, train, val)
    regs = [e for e in p.encoders if e.task.kind == "regression"]
    assert "missing labels" in bl.mlp_unsupported_reason(regs, train, val)
    frame, names = related_tasks(n_rows=200, n_features=4, n_tasks=2, seed=4)
    q = prepare(frame, names, seed=0)
    tr, va, te = (bl.Arrays.of(d) for d in (q.train, q.val, q.test))
    assert bl.mlp_unsupported_reason(q.encoders, tr, va) is None
    (out,), params = bl.mlp_outputs(q.encoders, tr, va, [te], seed=0, hidden=(8,), max_iter=50)
    assert set(out) == set(names) and out["task0"].shape == (len(te.x), 1)
    assert params == (4 * 8 + 8) + (8 * 2 + 2)


def test_mlp_baseline_runs_on_missing_labels_and_mixed_kinds(prepared_with_gaps) -> None:  # type: ignore[no-untyped-def]
    """Where one multi-output MLP cannot (mixed kinds, a missing label), the ``mlp`` baseline is
    one scikit-learn MLP per task on that task's labelled rows (before: skipped)."""
    from sklearn.neural_network import MLPRegressor

    from polytask.evaluate import task_metrics

    p = prepared_with_gaps
    train, val, test = (bl.Arrays.of(d) for d in (p.train, p.val, p.test))
    assert bl.mlp_unsupported_reason(p.encoders, train, val) is not None
    (out,), params = bl.mlp_baseline_outputs(p.encoders, train, val, [test], seed=0, hidden=(8,), max_iter=60)
    assert set(out) == {e.task.name for e in p.encoders} and params is not None and params > 0
    for e in p.encoders:
        metrics = task_metrics(e, out[e.task.name], test.targets[e.task.name], test.masks[e.task.name])
        assert all(np.isfinite(v) for v in metrics.values())
    # the masked task's MLP is scikit-learn's, fitted on the labelled rows with the alpha that
    # minimizes the validation error; masked labels never reach it
    m, mv = train.masks["task1"][:, 0], val.masks["task1"][:, 0]
    fits = {a: MLPRegressor(hidden_layer_sizes=(8,), alpha=a, max_iter=60, random_state=0).fit(
        train.x[m], train.targets["task1"][m, 0]) for a in bl.MLP_ALPHAS}
    errors = {a: np.mean((f.predict(val.x[mv]) - val.targets["task1"][mv, 0]) ** 2) for a, f in fits.items()}
    expected = fits[min(errors, key=errors.get)].predict(test.x)
    np.testing.assert_allclose(out["task1"][:, 0], expected, rtol=1e-6)
    poisoned = bl.Arrays(train.x, {k: v.copy() for k, v in train.targets.items()}, train.masks)
    poisoned.targets["task1"][~train.masks["task1"]] = 1e6
    (dirty,), _ = bl.mlp_baseline_outputs(p.encoders, poisoned, val, [test], seed=0, hidden=(8,), max_iter=60)
    np.testing.assert_allclose(dirty["task1"], out["task1"])
