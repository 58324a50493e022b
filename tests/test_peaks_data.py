"""The Peaks generator: shapes, task order, targets against a hand computation, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from polytask.errors import PolytaskError
from polytask_lab.experiments.peaks import (
    encode_variable,
    input_columns,
    peaks_data,
    peaks_raw,
    peaks_task_names,
    peaks_variables,
)


def test_shapes_names_and_order() -> None:
    frame, names = peaks_data(50, seed=3)
    assert frame.shape == (50, 180)
    assert names == peaks_task_names() and len(names) == 120
    assert list(frame.columns[:60]) == input_columns()
    assert peaks_variables(0) == ("A", "B", "C")
    assert peaks_variables(1) == ("A", "B", "D")
    assert peaks_variables(119) == ("F", "E", "D")
    assert peaks_variables("P120") == ("F", "E", "D")
    triples = [peaks_variables(i) for i in range(120)]
    assert triples == sorted(triples) and len(set(triples)) == 120
    assert all(len(set(t)) == 3 for t in triples)


def test_targets_match_the_rule_and_are_seeded() -> None:
    frame, names = peaks_data(200, seed=7)
    raw = peaks_raw(200, seed=7)
    for index in (0, 57, 119):
        x1, x2, x3 = peaks_variables(index)
        expected = [b if a > 0.5 else c for a, b, c in zip(raw[x1], raw[x2], raw[x3])]
        np.testing.assert_allclose(frame[names[index]], expected)
    again, _ = peaks_data(200, seed=7)
    assert again.equals(frame)
    other, _ = peaks_data(200, seed=8)
    assert not other.equals(frame)


def test_encoding_peaks_at_the_nearest_centre() -> None:
    code = encode_variable(np.array([0.05, 0.55, 0.97]))
    assert code.argmax(axis=1).tolist() == [0, 5, 9]
    assert np.allclose(code.max(axis=1)[:2], 1.0)


def test_bad_index() -> None:
    with pytest.raises(PolytaskError, match="P999"):
        peaks_variables("P999")
    with pytest.raises(PolytaskError, match="120"):
        peaks_variables(120)
