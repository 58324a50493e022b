"""An experiment's files: ``<name>.json`` (the record), ``.png`` (its figure) and ``.md`` (its
tables), written atomically. Apart from :mod:`common` because the figures read each
experiment's own names (``plots`` imports the experiment modules, which import ``common``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text, clean_json
from polytask_lab.experiments.common import ExperimentResult, result_markdown
from polytask_lab.experiments.plots import plot


def write_artifacts(result: ExperimentResult, out: str | Path) -> dict[str, Path]:
    """``<out>/<name>.json``, ``<out>/<name>.png`` and ``<out>/<name>.md`` (the tables)."""
    return write_saved(clean_json(result.to_dict()), out)


def write_saved(saved: dict[str, Any], out: str | Path, stem: str | None = None) -> dict[str, Path]:
    """``<out>/<stem>.json``, ``.png`` and ``.md`` of a saved result (also after :func:`reanalyse`);
    ``stem`` defaults to the experiment's name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{stem or saved['experiment']}.{k}" for k in ("json", "png", "md")}
    atomic_write_json(paths["json"], saved)
    atomic_write_bytes(paths["png"], plot(saved))
    atomic_write_text(paths["md"], result_markdown(saved))
    return paths
