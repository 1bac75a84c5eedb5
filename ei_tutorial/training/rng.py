"""Seeding and saving every random number generator that a training run draws from.

A resumed run must draw the same numbers as an uninterrupted one, so a checkpoint
stores the states of Python's :mod:`random`, NumPy's global generator, torch's CPU and
CUDA generators, and the data loader's shuffling generator. The states are converted
to tensors and builtins so that checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng_state(loader_generator: Optional[torch.Generator] = None) -> dict[str, Any]:
    """Return the states of all global generators and of ``loader_generator``."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def _python_state(state: Any) -> tuple:
    # random.setstate needs tuples; weights_only loading may return lists.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def restore_rng_state(state: dict[str, Any], loader_generator: Optional[torch.Generator] = None) -> None:
    """Set all global generators, and ``loader_generator``, to a state from :func:`capture_rng_state`.

    CUDA states are restored only when the number of CUDA devices matches the saved one.
    """
    random.setstate(_python_state(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"].cpu())
