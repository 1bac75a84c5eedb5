"""Choice of the torch device that the chapters and the training loop run on."""

from __future__ import annotations

import logging
import os
import sys

import torch

logger = logging.getLogger(__name__)

COLAB_GPU_HINT = (
    "Running on Colab without a GPU, so the chapters fall back to the CPU. "
    "To switch one on, open Runtime > Change runtime type, choose a GPU "
    "accelerator, save, and run the notebook again."
)


def running_on_colab() -> bool:
    """Return whether the code runs inside a Google Colab kernel.

    Colab is detected by the ``google.colab`` module being imported or by any
    environment variable whose name starts with ``COLAB_`` (Colab sets several,
    for example ``COLAB_RELEASE_TAG``).
    """
    if "google.colab" in sys.modules:
        return True
    return any(name.startswith("COLAB_") for name in os.environ)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def get_device() -> torch.device:
    """Pick the fastest available device: CUDA, then Apple MPS, then the CPU.

    On Colab without a GPU, a WARNING on the ``ei_tutorial.device`` logger
    explains how to switch one on.

    Returns:
        ``torch.device("cuda")``, ``torch.device("mps")`` or
        ``torch.device("cpu")``.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    if running_on_colab():
        logger.warning(COLAB_GPU_HINT)
    return torch.device("cpu")
