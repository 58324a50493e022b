"""What :func:`polytask.data.prepare` made of a table, in one summary: the features and their
encodings, the columns dropped or kept and why, each task's kind and why it was inferred, and
the warnings (also issued as :class:`DataWarning`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from polytask.data.preprocessing import DataWarning

__all__ = ["ColumnReport", "DataWarning", "FeatureSummary", "TaskSummary", "capture_warnings", "issue"]


@dataclass
class FeatureSummary:
    """One feature column: its role, how many network inputs it became, and the detail."""

    name: str
    role: str
    inputs: int
    detail: str = ""


@dataclass
class TaskSummary:
    """One task: its kind, why (``given`` or the inference's reason), its columns and labels."""

    name: str
    kind: str
    reason: str
    columns: list[str]
    labelled: int
    classes: int | None = None
    auxiliary: bool = False


@dataclass
class ColumnReport:
    """The summary of a prepared table (``Prepared.columns``), printable and JSON-able."""

    features: list[FeatureSummary] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    tasks: list[TaskSummary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> int:
        return sum(f.inputs for f in self.features)

    def lines(self, width: int = 8) -> list[str]:
        """Human-readable lines, e.g. ``columns: 7 features -> 12 inputs`` then one line per role."""
        out = [f"columns: {len(self.features)} features -> {self.inputs} inputs"]
        by_role: dict[str, list[str]] = {}
        for f in self.features:
            by_role.setdefault(f.role, []).append(f.name if not f.detail else f"{f.name} ({f.detail})")
        for role in ("numeric", "boolean", "datetime", "categorical"):
            if role in by_role:
                out.append(f"  {role}: {_listing(by_role.pop(role), width)}")
        for role, names in by_role.items():
            out.append(f"  {role}: {_listing(names, width)}")
        if self.dropped:
            out.append("  dropped: " + _listing([f"{k} ({v})" for k, v in self.dropped.items()], width))
        if self.kept:
            out.append("  kept for predictions: " + _listing(self.kept, width))
        out.append("tasks:")
        for t in self.tasks:
            classes = f", {t.classes} classes" if t.classes is not None and t.kind == "multiclass" else ""
            aux = " [auxiliary]" if t.auxiliary else ""
            out.append(f"  {t.name}: {t.kind}{classes} ({t.reason}; {t.labelled} labelled rows){aux}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features], "inputs": self.inputs, "dropped": dict(self.dropped),
                "kept": list(self.kept), "tasks": [asdict(t) for t in self.tasks], "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ColumnReport":
        return cls([FeatureSummary(**f) for f in d.get("features", [])], dict(d.get("dropped", {})),
                   list(d.get("kept", [])), [TaskSummary(**t) for t in d.get("tasks", [])], list(d.get("warnings", [])))


def _listing(items: list[str], width: int) -> str:
    shown = ", ".join(items[:width])
    return shown + (f", ... ({len(items) - width} more)" if len(items) > width else "")


def issue(messages: list[str], stacklevel: int = 3) -> None:
    """Issue each message as a :class:`DataWarning`."""
    for message in messages:
        warnings.warn(message, DataWarning, stacklevel=stacklevel)


@contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """Collect the :class:`DataWarning` messages issued inside (for a command to print as
    ``warning: ...`` lines); other warnings pass through as usual."""
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always", DataWarning)
        yield caught
    for r in records:
        if issubclass(r.category, DataWarning):
            caught.append(str(r.message))
        else:
            warnings.warn_explicit(r.message, r.category, r.filename, r.lineno)
