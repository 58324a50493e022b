"""From tables and arrays to tensors: reading (pyarrow, float32), column roles, target encoding
with label masks, feature preprocessing fitted on training rows only, seeded splits, the column
report, and the multi-input setting."""

from typing import TYPE_CHECKING

from polytask.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "ColumnRole": "polytask.data.columns",
    "infer_roles": "polytask.data.columns",
    "LongFormat": "polytask.data.multi_input",
    "from_task_column": "polytask.data.multi_input",
    "from_task_datasets": "polytask.data.multi_input",
    "DataWarning": "polytask.data.preprocessing",
    "FeaturePreprocessor": "polytask.data.preprocessing",
    "ColumnReport": "polytask.data.report",
    "capture_warnings": "polytask.data.report",
    "RowOrigin": "polytask.data.rows",
    "Split": "polytask.data.splits",
    "split_indices": "polytask.data.splits",
    "as_frame": "polytask.data.tables",
    "from_arrays": "polytask.data.tables",
    "read_table": "polytask.data.tables",
    "TargetEncoder": "polytask.data.targets",
    "explain_kind": "polytask.data.targets",
    "infer_tasks": "polytask.data.targets",
    "validate_targets": "polytask.data.targets",
    "TaskTensors": "polytask.data.tensors",
    "to_tensors": "polytask.data.tensors",
})

if TYPE_CHECKING:
    from polytask.data.columns import ColumnRole, infer_roles
    from polytask.data.multi_input import LongFormat, from_task_column, from_task_datasets
    from polytask.data.preprocessing import DataWarning, FeaturePreprocessor
    from polytask.data.report import ColumnReport, capture_warnings
    from polytask.data.rows import RowOrigin
    from polytask.data.splits import Split, split_indices
    from polytask.data.tables import as_frame, from_arrays, read_table
    from polytask.data.targets import TargetEncoder, explain_kind, infer_tasks, validate_targets
    from polytask.data.tensors import TaskTensors, to_tensors

__all__ = [
    "ColumnReport",
    "ColumnRole",
    "DataWarning",
    "FeaturePreprocessor",
    "LongFormat",
    "RowOrigin",
    "Split",
    "TargetEncoder",
    "TaskTensors",
    "as_frame",
    "capture_warnings",
    "explain_kind",
    "from_arrays",
    "from_task_column",
    "from_task_datasets",
    "infer_roles",
    "infer_tasks",
    "read_table",
    "split_indices",
    "to_tensors",
    "validate_targets",
]
