"""Data settings: how a table is split and its features prepared (declared once, as
:class:`polytask.training.TrainConfig` is; the CLI options come from these fields)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from polytask.errors import PolytaskError
from polytask.settings import option

MISSING_POLICIES = ("impute", "error")
DATE_POLICIES = ("expand", "ordinal")
IDENTIFIER_POLICIES = ("drop", "error", "feature")


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
    drop: tuple[str, ...] | None = option(None, kind="names", help="Comma-separated columns to ignore (neither features "
                                   "nor targets).", in_sklearn=False)
    keep: tuple[str, ...] | None = option(None, kind="names", help="Comma-separated columns copied to predict's output "
                                   "(an identifier, say); never features.", in_sklearn=False)
    categorical: tuple[str, ...] | None = option(None, kind="names", help="Comma-separated columns one-hot encoded even "
                                          "though they hold numbers (codes such as zip codes).", in_sklearn=False)
    na_values: tuple[str, ...] | None = option(None, kind="names", help="Comma-separated cell texts read as missing "
                                        "values besides empty cells and NA (e.g. '?,-').", in_sklearn=False)
    max_categories: int = option(50, help="Most categories one-hot encoded per column; rarer ones share one "
                                 "'(other)' input.", in_sklearn=False)
    dates: Literal["expand", "ordinal"] = option(
        "expand", choices=DATE_POLICIES, in_sklearn=False,
        help="Date columns: expand (days since 1970 plus year, month, day, weekday, hour) or ordinal (days only).")
    identifiers: Literal["drop", "error", "feature"] = option(
        "drop", choices=IDENTIFIER_POLICIES, in_sklearn=False,
        help="Identifier-like columns (a distinct text per row, a row number): drop (with a warning), error, "
             "or feature (one-hot the most frequent values).")

    def __post_init__(self) -> None:
        v, t = self.val_fraction, self.test_fraction
        if not (0 <= v < 1 and 0 <= t < 1 and v + t < 1):
            raise PolytaskError(f"split fractions must be in [0, 1) and sum below 1, got val={v}, test={t}")
        if self.missing not in MISSING_POLICIES:
            raise PolytaskError(f"unknown missing-value policy '{self.missing}' (choose from impute, error)")
        seed = self.split_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise PolytaskError(f"split seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")
        if self.features is not None:
            self.features = tuple(self.features)
        if self.bounded_outputs is not None:
            self.bounded_outputs = (self.bounded_outputs,) if isinstance(self.bounded_outputs, str) else tuple(
                self.bounded_outputs)
        for name in ("drop", "keep", "categorical", "na_values"):  # None (the option's default) is none
            setattr(self, name, tuple(str(c) for c in getattr(self, name) or ()))
        for name, allowed in (("dates", DATE_POLICIES), ("identifiers", IDENTIFIER_POLICIES)):
            if getattr(self, name) not in allowed:
                raise PolytaskError(f"unknown {name} policy '{getattr(self, name)}' (choose from {', '.join(allowed)})")
        if isinstance(self.max_categories, bool) or not isinstance(self.max_categories, int) or self.max_categories < 2:
            raise PolytaskError(f"max_categories must be a whole number of at least 2, got {self.max_categories!r}")
        both = sorted(set(self.drop) & set(self.keep))
        if both:
            raise PolytaskError(f"column '{both[0]}' is given both to drop and to keep")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}
