"""Shared pytest set-up: a headless matplotlib backend and the ``cuda`` marker."""

from __future__ import annotations

import matplotlib
import pytest
import torch

# Select the non-interactive backend before any test imports pyplot.
matplotlib.use("Agg")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``cuda`` when no CUDA device is available."""
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
