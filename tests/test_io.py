"""The model directory: round trip, no pickles, atomic replacement, damaged directories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import polytask as pt
from polytask.io import META_FILE, WEIGHTS_FILE


@pytest.fixture
def trained(mixed_frame: pd.DataFrame) -> pt.FittedModel:
    return pt.fit(mixed_frame, pt.Targets(["task0", "label", "grade"], aux=["task1"]), config=pt.TrainConfig(epochs=6, seed=2)).mtl


def test_round_trip_predictions_are_bit_identical(trained: pt.FittedModel, mixed_frame: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    trained.save(tmp_path / "m")
    loaded = pt.load(tmp_path / "m")
    before, after = trained.raw_outputs(mixed_frame), loaded.raw_outputs(mixed_frame)
    for task in before:
        assert np.array_equal(before[task], after[task])
    pd.testing.assert_frame_equal(trained.predict(mixed_frame), loaded.predict(mixed_frame))
    assert loaded.tasks == trained.tasks and loaded.best_epoch == trained.best_epoch


def test_predictions_hold_main_tasks_only(trained: pt.FittedModel, mixed_frame: pd.DataFrame) -> None:
    preds = trained.predict(mixed_frame.drop(columns=["task1", "task0", "label", "grade"]))
    assert "task1" not in preds.columns
    assert {"task0", "label", "label:proba_no", "label:proba_yes", "grade"} <= set(preds.columns)
    probs = preds[[c for c in preds.columns if c.startswith("grade:proba_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_directory_holds_no_pickle(trained: pt.FittedModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = trained.save(tmp_path / "m")
    assert sorted(p.name for p in d.iterdir()) == [META_FILE, WEIGHTS_FILE]
    meta = json.loads((d / META_FILE).read_text())
    assert meta["versions"]["torch"] == torch.__version__ and meta["arch"] == "hps"
    assert b"\x80\x04" not in (d / WEIGHTS_FILE).read_bytes()[:8]  # not a pickle protocol header


def test_save_replaces_atomically_and_refuses_foreign_directories(trained: pt.FittedModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "m"
    trained.save(d)
    trained.save(d)  # replacing a model directory is fine
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(pt.PolytaskError, match="is not a polytask model directory"):
        trained.save(other)
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / WEIGHTS_FILE).unlink(), "incomplete: 'weights.safetensors' is missing"),
        (lambda d: (d / META_FILE).unlink(), "incomplete: 'model.json' is missing"),
        (lambda d: (d / META_FILE).write_text("{not json"), "'model.json' is not valid JSON"),
        (lambda d: (d / WEIGHTS_FILE).write_bytes(b"garbage" * 10), "'weights.safetensors' cannot be read"),
        (lambda d: (d / META_FILE).write_text(json.dumps({"format": "polytask-model", "format_version": 1})), "lacks 'arch'"),
    ],
)
def test_damaged_directories_give_clear_errors(trained: pt.FittedModel, tmp_path, damage, message) -> None:  # type: ignore[no-untyped-def]
    d = trained.save(tmp_path / "m")
    damage(d)
    with pytest.raises(pt.PolytaskError, match=message):
        pt.load(d)


def test_truncated_weights_are_reported(trained: pt.FittedModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = trained.save(tmp_path / "m")
    data = (d / WEIGHTS_FILE).read_bytes()
    (d / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(pt.PolytaskError, match="model directory .* is (corrupted|incomplete)"):
        pt.load(d)


def test_missing_feature_column_at_predict_time(trained: pt.FittedModel, mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(pt.PolytaskError, match="feature column 'colour' used in training is missing"):
        trained.predict(mixed_frame.drop(columns=["colour"]))


def test_columns_that_change_type_or_gain_new_values_at_predict_time(trained: pt.FittedModel, mixed_frame: pd.DataFrame) -> None:
    changed = mixed_frame.astype({"x1": object})
    changed.loc[4, "x1"] = "twelve"
    with pytest.raises(pt.PolytaskError, match="feature column 'x1' is numeric in training but holds 'twelve'"):
        trained.predict(changed)
    # an unseen category encodes as all zeros (with a warning counting it) and an extra column is
    # ignored: both still predict
    extra = mixed_frame.assign(colour="purple", unrelated_column=1.0)
    with pytest.warns(pt.data.DataWarning, match="'colour' 300 rows"):
        assert len(trained.predict(extra)) == len(mixed_frame)
