"""From tables and arrays to tensors: reading (pyarrow, float32), column roles, target encoding
with label masks, feature preprocessing fitted on training rows only, seeded splits, the column
report, and the multi-input setting."""

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
