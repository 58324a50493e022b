"""From tables and arrays to tensors: reading, target encoding with label masks, feature
preprocessing fitted on training rows only, seeded splits, and the multi-input setting."""

from typing import TYPE_CHECKING

from polytask.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "from_task_column": "polytask.data.multi_input",
    "from_task_datasets": "polytask.data.multi_input",
    "FeaturePreprocessor": "polytask.data.preprocessing",
    "Split": "polytask.data.splits",
    "split_indices": "polytask.data.splits",
    "as_frame": "polytask.data.tables",
    "from_arrays": "polytask.data.tables",
    "read_table": "polytask.data.tables",
    "TargetEncoder": "polytask.data.targets",
    "infer_tasks": "polytask.data.targets",
    "validate_targets": "polytask.data.targets",
    "TaskTensors": "polytask.data.tensors",
    "to_tensors": "polytask.data.tensors",
})

if TYPE_CHECKING:
    from polytask.data.multi_input import from_task_column, from_task_datasets
    from polytask.data.preprocessing import FeaturePreprocessor
    from polytask.data.splits import Split, split_indices
    from polytask.data.tables import as_frame, from_arrays, read_table
    from polytask.data.targets import TargetEncoder, infer_tasks, validate_targets
    from polytask.data.tensors import TaskTensors, to_tensors

__all__ = [
    "FeaturePreprocessor",
    "Split",
    "TargetEncoder",
    "TaskTensors",
    "as_frame",
    "from_arrays",
    "from_task_column",
    "from_task_datasets",
    "infer_tasks",
    "read_table",
    "split_indices",
    "to_tensors",
    "validate_targets",
]
