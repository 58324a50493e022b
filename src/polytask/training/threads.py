"""How many CPU threads torch uses while training.

torch's default is one thread per core. For the networks polytask trains on tables (dense
layers of tens to hundreds of units, batches of tens to hundreds of rows) the work per
operation is too small to split: on the 2-core machine of docs/PERFORMANCE.md a second thread
never shortened an epoch (widths 64 to 1024, batches 64 to 512), and under load it made it
several times longer while burning more CPU. So the default is one thread for table networks
whose widest layer has at most :data:`MAX_SINGLE_THREAD_WIDTH` units; image networks
(convolutions) and wider ones keep torch's default. ``TrainConfig.threads`` (``--threads N``)
overrides the choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

MAX_SINGLE_THREAD_WIDTH = 1024


def default_threads(network: nn.Module) -> int | None:
    """1 for a table network no wider than :data:`MAX_SINGLE_THREAD_WIDTH`, else None (torch's default)."""
    widths = []
    for p in network.parameters():
        if p.ndim >= 4:  # a convolution kernel: image networks keep torch's threads
            return None
        if p.ndim >= 2:
            widths.append(max(p.shape[-2:]))
    return 1 if not widths or max(widths) <= MAX_SINGLE_THREAD_WIDTH else None


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the body with ``count`` torch threads (None: unchanged), restoring the count after."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)
