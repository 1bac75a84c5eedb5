"""Shared pytest set-up: a headless matplotlib backend, the ``cuda`` marker and the MNIST data fixture."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import torch

# Select the non-interactive backend before any test imports pyplot.
matplotlib.use("Agg")

from ei_tutorial.data import _IDX_FILES, _find_file, candidate_folders, data_dir  # noqa: E402

# The test-split files that ei_tutorial.data reads (each may be gzip'd).
MNIST_TEST_FILES = _IDX_FILES["test"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``cuda`` when no CUDA device is available."""
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


def _local_mnist_folders(root: Path) -> list[Path]:
    """Return the folders under ``root`` where ``ei_tutorial.data`` looks for MNIST."""
    return [folder for folder in candidate_folders("mnist") if folder.is_relative_to(root)]


def _has_mnist_test_split(root: Path) -> bool:
    """Return True if a folder under ``root`` that ``ei_tutorial.data`` searches has both test-split files."""
    for folder in _local_mnist_folders(root):
        if all(_find_file(folder, name) is not None for name in MNIST_TEST_FILES):
            return True
    return False


@pytest.fixture(scope="session")
def mnist_data_root() -> Path:
    """Return the resolved ``EI_TUTORIAL_DATA`` folder, or skip when it contains no MNIST test split.

    Tests that train or evaluate on MNIST read this folder in place. When it contains only the
    test split, ``ei_tutorial.data`` divides its 10,000 images into 8,000 training and 2,000
    held-out images.
    """
    root = data_dir()
    if root is None:
        pytest.skip(
            "EI_TUTORIAL_DATA is unset; point it at a folder with the MNIST IDX files in mnist/ "
            "(scripts/run-tests.sh sets it to ../shared/data when that exists)"
        )
    if not _has_mnist_test_split(root):
        folders = " or ".join(f"{folder}/" for folder in _local_mnist_folders(root))
        pytest.skip(
            f"EI_TUTORIAL_DATA={root} has no MNIST test split: expected {' and '.join(MNIST_TEST_FILES)} "
            f"(optionally .gz) in {folders}"
        )
    return root
