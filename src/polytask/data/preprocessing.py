"""Feature preprocessing, fitted on training rows only and saved with the model as JSON.

- numeric columns: ``z = (x - mean) / std`` with the training mean and standard deviation
  (std 0 becomes 1); with ``standardize=False`` they pass through unchanged (mean 0 and std 1
  are stored, so a saved preprocessor reads the same either way);
- categorical columns (strings, categories, booleans): one-hot over the categories seen in
  training; an unseen category encodes as all zeros;
- missing values, by ``missing``:
  ``"impute"`` (default) fills a numeric NaN with the training median and adds a 0/1
  ``<col>__missing`` indicator for every column that had a NaN in training; a missing category
  encodes as all zeros. ``"error"`` rejects any NaN. Infinite values are always rejected: they
  are a data error, not a missing value.

It is written by hand rather than with scikit-learn's transformers so that the fitted state is
a few plain numbers that save to JSON and load without unpickling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError

MissingPolicy = Literal["impute", "error"]


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


@dataclass
class FeaturePreprocessor:
    """Standardizes numeric columns and one-hot encodes categorical ones."""

    missing: MissingPolicy = "impute"
    standardize: bool = True
    columns_: list[str] = field(default_factory=list)
    numeric_: dict[str, dict[str, float]] = field(default_factory=dict)
    categorical_: dict[str, list[str]] = field(default_factory=dict)
    indicators_: list[str] = field(default_factory=list)

    def fit(self, frame: pd.DataFrame) -> "FeaturePreprocessor":
        if self.missing not in ("impute", "error"):
            raise PolytaskError(f"unknown missing-value policy '{self.missing}' (choose impute or error)")
        if frame.shape[1] == 0:
            raise PolytaskError("no feature columns are left once the targets are removed")
        self.columns_ = [str(c) for c in frame.columns]
        self.numeric_, self.categorical_, self.indicators_ = {}, {}, []
        for col in self.columns_:
            s = frame[col]
            if _is_categorical(s):
                values = s.dropna().astype(str)
                self.categorical_[col] = sorted(values.unique().tolist())
                continue
            x = s.to_numpy(dtype=float)
            self._check_finite(col, x)
            observed = x[~np.isnan(x)]
            if observed.size == 0:
                raise PolytaskError(f"feature column '{col}' has no values in the training rows")
            std = float(observed.std())
            self.numeric_[col] = {
                "mean": float(observed.mean()) if self.standardize else 0.0,
                "std": (std if std > 0 else 1.0) if self.standardize else 1.0,
                "median": float(np.median(observed)),
            }
            if np.isnan(x).any():
                self.indicators_.append(col)
        return self

    def _check_finite(self, col: str, x: np.ndarray) -> None:
        if np.isinf(x).any():
            row = int(np.flatnonzero(np.isinf(x))[0])
            raise PolytaskError(f"feature column '{col}' has an infinite value (row {row})")
        if self.missing == "error" and np.isnan(x).any():
            row = int(np.flatnonzero(np.isnan(x))[0])
            raise PolytaskError(
                f"feature column '{col}' has a missing value (row {row}) and the missing-value policy is 'error'"
            )

    @property
    def output_names(self) -> list[str]:
        names: list[str] = []
        for col in self.columns_:
            if col in self.numeric_:
                names.append(col)
            else:
                names.extend(f"{col}={v}" for v in self.categorical_[col])
        names.extend(f"{c}__missing" for c in self.indicators_)
        return names

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode ``frame`` (which must hold every training feature column) as float32."""
        if not self.columns_:
            raise RuntimeError("FeaturePreprocessor is not fitted")
        missing_cols = [c for c in self.columns_ if c not in frame.columns]
        if missing_cols:
            raise PolytaskError(
                f"feature column '{missing_cols[0]}' seen in training is missing from the data"
            )
        blocks: list[np.ndarray] = []
        for col in self.columns_:
            s = frame[col]
            if col in self.numeric_:
                try:
                    x = pd.to_numeric(s, errors="raise").to_numpy(dtype=float)
                except (ValueError, TypeError):
                    bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()].iloc[0]
                    raise PolytaskError(f"feature column '{col}' is numeric in training but holds '{bad}'") from None
                self._check_finite(col, x)
                st = self.numeric_[col]
                x = np.where(np.isnan(x), st["median"], x)
                blocks.append(((x - st["mean"]) / st["std"])[:, None])
            else:
                cats = self.categorical_[col]
                lookup = {c: i for i, c in enumerate(cats)}
                codes = s.astype(str).map(lookup).where(s.notna(), -1).fillna(-1).to_numpy(dtype=np.int64)
                onehot = np.zeros((len(s), len(cats)))
                known = codes >= 0
                onehot[np.flatnonzero(known), codes[known]] = 1.0
                blocks.append(onehot)
        for col in self.indicators_:
            blocks.append(frame[col].isna().to_numpy(dtype=float)[:, None])
        out = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return out.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "columns": self.columns_,
            "numeric": self.numeric_,
            "categorical": self.categorical_,
            "indicators": self.indicators_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeaturePreprocessor":
        return cls(
            missing=d["missing"],
            columns_=list(d["columns"]),
            numeric_={k: dict(v) for k, v in d["numeric"].items()},
            categorical_={k: list(v) for k, v in d["categorical"].items()},
            indicators_=list(d["indicators"]),
        )
