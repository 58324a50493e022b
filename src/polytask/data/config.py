"""Data settings: how a table is split and its features prepared (declared once, as
:class:`polytask.training.TrainConfig` is; the CLI options come from these fields)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from polytask.errors import PolytaskError
from polytask.settings import option

MISSING_POLICIES = ("impute", "error")


@dataclass
class DataConfig:
    """How rows are split into train / validation / test and how features are prepared.

    ``split_seed`` None uses the training seed, so one ``--seed`` fixes the whole run.
    ``shuffle_split=False`` keeps row order (train first, then validation, then test), as time
    series need. ``features`` None uses every column that is not a target.
    """

    val_fraction: float = option(0.15, help="Fraction of rows held out for validation (early stopping).",
                                 sklearn="validation_fraction")
    test_fraction: float = option(0.15, help="Fraction of rows held out for the test metrics.", in_sklearn=False)
    missing: Literal["impute", "error"] = option(
        "impute", help="Missing feature values: impute (median + indicator) or error.", choices=MISSING_POLICIES)
    split_seed: int | None = option(None, help="Seed of the split (default: --seed).", in_sklearn=False)
    shuffle_split: bool = option(True, kind="flag", help="Shuffle rows before splitting (off: keep row order, "
                                 "as time series need).", in_sklearn=False)
    features: tuple[str, ...] | None = option(None, kind="names", help="Comma-separated feature columns "
                                              "(default: every non-target column).", in_sklearn=False)
    standardize_inputs: bool = option(True, kind="flag", help="Standardize numeric features with the training mean "
                                      "and sd (off: use them as they are, e.g. 0/1 codes).")
    standardize_targets: bool = option(True, kind="flag", help="Standardize regression targets with the training "
                                       "mean and sd (off: train on the raw values).")
    bounded_outputs: tuple[str, ...] | None = option(
        None, kind="names", cli="--bounded-output", in_sklearn=False,
        help="Comma-separated regression tasks with a sigmoid output bounded to (0, 1) (targets in [0, 1], "
             "not standardized).")

    def __post_init__(self) -> None:
        v, t = self.val_fraction, self.test_fraction
        if not (0 <= v < 1 and 0 <= t < 1 and v + t < 1):
            raise PolytaskError(f"split fractions must be in [0, 1) and sum below 1, got val={v}, test={t}")
        if self.missing not in MISSING_POLICIES:
            raise PolytaskError(f"unknown missing-value policy '{self.missing}' (choose from impute, error)")
        if self.features is not None:
            self.features = tuple(self.features)
        if self.bounded_outputs is not None:
            self.bounded_outputs = (self.bounded_outputs,) if isinstance(self.bounded_outputs, str) else tuple(
                self.bounded_outputs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}
