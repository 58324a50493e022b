"""What an auxiliary-task transform returns: the new table and how to train on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class AuxiliaryColumns:
    """A table with auxiliary target columns added (or moved), ready for ``polytask.fit``.

    ``aux`` are the auxiliary columns (pass as ``aux=``), ``kinds`` their task kinds (pass as
    ``kinds=``), and ``removed_inputs`` the input columns no longer used as features (they are
    not needed at prediction time).
    """

    frame: pd.DataFrame
    aux: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    removed_inputs: list[str] = field(default_factory=list)

    def features(self, exclude: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Every column that is neither an auxiliary target, a removed input nor in ``exclude``."""
        drop = set(self.aux) | set(self.removed_inputs) | set(exclude)
        return [c for c in self.frame.columns if c not in drop]
