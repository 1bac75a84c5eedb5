"""Shared pytest set-up: a headless matplotlib backend, the ``cuda`` marker and the MNIST data fixture."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch

# Select the non-interactive backend before any test imports pyplot.
matplotlib.use("Agg")

# Folders under EI_TUTORIAL_DATA where ei_tutorial.data looks for MNIST, and the test-split
# files it needs there (each may be gzip'd).
MNIST_FOLDERS = ("mnist", "MNIST/raw")
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``cuda`` when no CUDA device is available."""
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


def _has_mnist_test_split(root: Path) -> bool:
    for folder in MNIST_FOLDERS:
        files = [root / folder / name for name in MNIST_TEST_FILES]
        if all(path.is_file() or path.with_name(f"{path.name}.gz").is_file() for path in files):
            return True
    return False


@pytest.fixture(scope="session")
def mnist_data_root() -> Path:
    """Return the resolved ``EI_TUTORIAL_DATA`` folder, or skip when it contains no MNIST test split.

    Tests that train or evaluate on MNIST read this folder in place. When it contains only the
    test split, ``ei_tutorial.data`` divides its 10,000 images into 8,000 training and 2,000
    held-out images.
    """
    raw = os.environ.get("EI_TUTORIAL_DATA", "").strip()
    if not raw:
        pytest.skip(
            "EI_TUTORIAL_DATA is unset; point it at a folder with the MNIST IDX files in mnist/ "
            "(scripts/run-tests.sh sets it to ../shared/data when that exists)"
        )
    root = Path(raw).expanduser().resolve()
    if not _has_mnist_test_split(root):
        pytest.skip(
            f"EI_TUTORIAL_DATA={raw} has no MNIST test split: expected {' and '.join(MNIST_TEST_FILES)} "
            f"(optionally .gz) in {' or '.join(f'{folder}/' for folder in MNIST_FOLDERS)}"
        )
    return root
