"""A learnable stand-in for MNIST, written as IDX files, for tests that train end to end.

10,000 images of 28x28 pixels (the size of the MNIST test split, which
``ei_tutorial.data`` splits into 8,000 training and 2,000 held-out images). An image of
class ``k`` has a bright horizontal bar on rows ``2k + 4`` and ``2k + 5`` over uniform
noise, so a small network learns it within an epoch.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

NUM_IMAGES = 10_000


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_synthetic_mnist(root: Path, seed: int = 0) -> Path:
    """Write ``root/mnist/t10k-*-ubyte`` and return ``root`` (a value for ``EI_TUTORIAL_DATA``)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=NUM_IMAGES)
    images = rng.integers(0, 96, size=(NUM_IMAGES, 28, 28))
    rows = 2 * labels + 4
    images[np.arange(NUM_IMAGES), rows, 4:24] = 255
    images[np.arange(NUM_IMAGES), rows + 1, 4:24] = 255
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / "t10k-images-idx3-ubyte", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    return root
