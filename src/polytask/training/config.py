"""Training settings, as one JSON-able dataclass (no global configuration object)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from polytask.errors import PolytaskError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
EARLY_STOPPING = ("per_task", "joint", "none")


@dataclass
class TrainConfig:
    """How to train.

    The joint objective is ``sum_t alpha_t L_t + l2 * sum_W ||W||^2`` (``W`` ranging over weight
    matrices, not biases), with the combination of the ``L_t`` decided by ``balancer``.

    Early stopping: ``per_task`` keeps, for each task, the parameters of the epoch with its own
    lowest validation loss and predicts that task with them (Caruana 1997); ``joint`` keeps the
    epoch with the lowest summed validation loss of the main tasks; ``none`` keeps the last epoch.
    Training stops once no monitored task has improved for ``patience`` epochs.
    """

    epochs: int = 100
    batch_size: int = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    l2: float = 0.0
    lr_schedule: Literal["none", "cosine", "step"] = "none"
    step_size: int = 30
    gamma: float = 0.1
    grad_clip: float | None = None
    early_stopping: Literal["per_task", "joint", "none"] = "per_task"
    patience: int = 20
    seed: int = 0
    device: str = "cpu"
    balancer: str = "ew"
    balancer_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.lr_schedule in SCHEDULES, f"unknown lr schedule '{self.lr_schedule}' (choose from {', '.join(SCHEDULES)})"),
            (self.early_stopping in EARLY_STOPPING, f"unknown early stopping '{self.early_stopping}' (choose from {', '.join(EARLY_STOPPING)})"),
            (self.l2 >= 0 and self.weight_decay >= 0, "l2 and weight decay must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, f"gradient clipping must be > 0, got {self.grad_clip}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
        ]
        for ok, message in checks:
            if not ok:
                raise PolytaskError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
