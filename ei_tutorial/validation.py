"""Input checks shared by the E-I layers.

The checks read tensor values, which on a GPU would force the host to wait for the
device in every forward pass. They therefore run on CPU tensors only, unless
:func:`set_input_checks` says otherwise.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

# None: check CPU tensors only. True/False: check every tensor / none.
_CHECK_MODE: Optional[bool] = None


def set_input_checks(enabled: Optional[bool]) -> None:
    """Set whether E-I layers check their inputs for negative, NaN and inf values.

    Args:
        enabled: True checks tensors on every device (one host-device synchronisation
            per layer call on a GPU), False checks none, None (the default) checks CPU
            tensors only.
    """
    global _CHECK_MODE
    _CHECK_MODE = enabled


@contextlib.contextmanager
def input_checks(enabled: Optional[bool]) -> Iterator[None]:
    """Context manager form of :func:`set_input_checks` that restores the old mode."""
    previous = _CHECK_MODE
    set_input_checks(enabled)
    try:
        yield
    finally:
        set_input_checks(previous)


def _should_check(x: Tensor) -> bool:
    if _CHECK_MODE is None:
        return x.device.type == "cpu" and not torch.compiler.is_compiling()
    return _CHECK_MODE


def check_ei_input(x: object, layer: nn.Module) -> None:
    """Raise if ``x`` is not a valid input of the E-I ``layer``.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor.
        ValueError: If ``x`` holds negative, NaN or infinite values.
    """
    name = type(layer).__name__
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} expects a floating-point tensor, got dtype {x.dtype}; "
            "convert spikes or images with .float()"
        )
    if not _should_check(x):
        return
    x = x.detach()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{name} received NaN or infinite input values; check the previous layer "
            "or the data pipeline for overflow or division by zero"
        )
    if x.numel() and float(x.min()) < 0:
        raise ValueError(
            f"{name} received a negative input value ({float(x.min()):.4g}); E-I layers need "
            "non-negative inputs (spikes or pixel intensities in [0, 1]), so do not "
            "normalise images to zero mean"
        )
