"""Input checks shared by the E-I layers.

The checks read tensor values, which on a GPU would force the host to wait for the
device in every forward pass. They therefore run on CPU tensors only, unless
:func:`set_input_checks` says otherwise.
"""

from __future__ import annotations

import contextlib
import math
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


def _memory_order_view(x: Tensor) -> Tensor:
    """Return ``x`` with its dimensions permuted into memory order, a view when possible.

    ``torch.aminmax`` copies a non-contiguous input first; a channels-last tensor is
    contiguous once its dimensions are put in the order of decreasing stride.
    """
    if x.is_contiguous():
        return x
    order = sorted(range(x.dim()), key=lambda dim: (x.stride(dim), x.shape[dim]), reverse=True)
    return x.permute(order)


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
    if x.numel() == 0:
        return
    # One pass for both checks: the minimum and maximum are NaN if any value is NaN,
    # and an infinite value shows as an infinite extreme.
    smallest, largest = (float(value) for value in torch.aminmax(_memory_order_view(x.detach())))
    if not (math.isfinite(smallest) and math.isfinite(largest)):
        raise ValueError(
            f"{name} received NaN or infinite input values; check the previous layer "
            "or the data pipeline for overflow or division by zero"
        )
    if smallest < 0:
        raise ValueError(
            f"{name} received a negative input value ({smallest:.4g}); E-I layers need "
            "non-negative inputs (spikes or pixel intensities in [0, 1]), so do not "
            "normalise images to zero mean"
        )
