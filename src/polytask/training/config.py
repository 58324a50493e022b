"""Training settings: the single declaration of every training option.

Each field is declared once with :func:`polytask.settings.option`; the ``polytask`` command's
options, the scikit-learn estimators' parameters and ``--config FILE`` are generated from these
declarations (no global configuration object, no second list of defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from dataclasses import replace as _replace
from typing import Any, Literal

from polytask.errors import PolytaskError
from polytask.settings import option

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
SCHEDULER_STEPS = ("epoch", "step")
EARLY_STOPPING = ("per_task", "joint", "none")
PRECISIONS = ("fp32", "bf16", "fp16")

#: ``factory(parameter_groups) -> torch.optim.Optimizer``, each group a dict with ``params``
#: and possibly ``lr`` (see :class:`polytask.training.Trainer`).
OptimizerFactory = Callable[[list[dict[str, Any]]], Any]
#: ``factory(optimizer) -> a torch learning-rate scheduler``.
SchedulerFactory = Callable[[Any], Any]


@dataclass
class TrainConfig:
    """How to train.

    The joint objective is ``sum_t alpha_t L_t + l2 * sum_W ||W||^2`` (``W`` ranging over weight
    matrices, not biases), with the combination of the ``L_t`` decided by ``balancer``.

    Early stopping: ``per_task`` keeps, for each task, the parameters of the epoch with its own
    lowest validation loss and predicts that task with them (Caruana 1997); ``joint`` keeps the
    epoch with the lowest summed validation loss of the main tasks; ``none`` keeps the last epoch.
    Training stops once no monitored task has improved for ``patience`` epochs.

    ``optimizer_factory`` and ``scheduler_factory`` (Python only) replace the named optimizer and
    schedule with the user's own.
    """

    epochs: int = option(500, help="Maximum number of epochs (docs/DEFAULTS.md: why 500).")
    batch_size: int = option(64, help="Rows per training step.")
    optimizer: Literal["adam", "adamw", "sgd"] = option("adam", help="Optimizer.", choices=OPTIMIZERS)
    lr: float = option(1e-3, help="Learning rate.")
    momentum: float = option(0.9, help="SGD momentum.")
    weight_decay: float = option(0.0, help="Optimizer weight decay.")
    l2: float = option(0.0, help="L2 penalty lambda on weight matrices.")
    lr_schedule: Literal["none", "cosine", "step"] = option("none", help="Learning-rate schedule.", choices=SCHEDULES)
    step_size: int = option(30, help="With --lr-schedule step: epochs between decays.")
    gamma: float = option(0.1, help="With --lr-schedule step: decay factor.")
    scheduler_step: Literal["epoch", "step"] = option(
        "epoch", help="Advance the learning-rate schedule after every epoch or every step.", choices=SCHEDULER_STEPS)
    grad_clip: float | None = option(None, help="Clip the gradient norm to this value (default: no clipping).")
    early_stopping: Literal["per_task", "joint", "none"] = option(
        "per_task", help="Early stopping on validation loss: per task, joint or none.", choices=EARLY_STOPPING)
    patience: int = option(50, help="Epochs without improvement before training stops (docs/DEFAULTS.md).")
    val_metrics: bool = option(True, kind="flag", help="Compute validation metrics every epoch (losses alone suffice for early stopping).")
    seed: int = option(0, help="Seed of initialisation, batch order and dropout.", sklearn="random_state")
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto.")
    threads: int | None = option(
        None, help="CPU threads torch uses while training (default: 1 for table networks up to 1024 units wide, "
                   "where more threads were measured not to pay; torch's default otherwise).")
    precision: Literal["fp32", "bf16", "fp16"] = option(
        "fp32", help="Arithmetic of the forward pass: fp32, bf16 (autocast, CPU or CUDA) or fp16 (autocast with a "
                     "gradient scaler, CUDA only); parameters, losses, Gramians and weights stay float32 or wider.",
        choices=PRECISIONS)
    compile: bool = option(False, kind="flag", help="torch.compile the network's forward pass (gradient aggregation then "
                                                    "takes the engine's exact generic path).")
    balancer: str = option("ew", help="Task balancing method (see 'polytask balancers').")
    balancer_options: dict[str, Any] = option(
        default_factory=dict, kind="mapping", cli="--balancer-option", help="Balancer option KEY=VALUE (repeatable).")
    optimizer_factory: OptimizerFactory | None = option(None, expose=False, help="factory(parameter_groups) -> optimizer.")
    scheduler_factory: SchedulerFactory | None = option(None, expose=False, help="factory(optimizer) -> scheduler.")

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.lr_schedule in SCHEDULES, f"unknown lr schedule '{self.lr_schedule}' (choose from {', '.join(SCHEDULES)})"),
            (self.scheduler_step in SCHEDULER_STEPS, f"unknown scheduler step '{self.scheduler_step}' (choose from epoch, step)"),
            (self.early_stopping in EARLY_STOPPING, f"unknown early stopping '{self.early_stopping}' (choose from {', '.join(EARLY_STOPPING)})"),
            (self.l2 >= 0 and self.weight_decay >= 0, "l2 and weight decay must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, f"gradient clipping must be > 0, got {self.grad_clip}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.step_size >= 1, f"step size must be >= 1, got {self.step_size}"),
            (self.gamma > 0, f"gamma must be > 0, got {self.gamma}"),
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.precision in PRECISIONS, f"unknown precision '{self.precision}' (choose from {', '.join(PRECISIONS)})"),
            (_is_seed(self.seed), f"seed must be a whole number from 0 to 2**32 - 1, got {self.seed!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise PolytaskError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings; a user factory is recorded by its qualified name."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, dict) else _callable_name(value) if callable(value) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Settings from :meth:`to_dict` output (unknown keys and recorded factories ignored)."""
        known = {f.name for f in fields(cls)} - {"optimizer_factory", "scheduler_factory"}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some settings changed (validated again)."""
        return _replace(self, **changes)


def _callable_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", type(fn).__qualname__)
    return f"user:{getattr(fn, '__module__', '?')}.{name}"


def _is_seed(value: Any) -> bool:
    """A seed numpy, torch and Python's ``random`` all accept: an integer in [0, 2**32)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32
