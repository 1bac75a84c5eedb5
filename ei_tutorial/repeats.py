"""Inputs that repeat one tensor along their first dimension, computed once.

Direct encoding (:func:`ei_tutorial.data.direct_encode`) feeds a network the same images
at every time step as a view ``[T, B, ...]`` whose time dimension has stride 0. A layer
that acts on each sample alone gives the same output at every step, so it can run once
on ``x[:1]`` and repeat the result as a view. The output is equal, and the layer's work
and memory shrink ``T`` times. Autograd sums the steps' gradients through the view, as
it would sum them over ``T`` separate copies.
"""

from __future__ import annotations

from torch import Tensor


def repeats_first_dim(x: object) -> bool:
    """Return True if ``x`` is a tensor of two or more dimensions whose first has size > 1 and stride 0."""
    return isinstance(x, Tensor) and x.dim() >= 2 and x.shape[0] > 1 and x.stride(0) == 0


def repeat_first_dim(out: Tensor, size: int) -> Tensor:
    """Return ``out`` ``[1, ...]`` repeated ``size`` times along its first dimension, as a view."""
    return out.expand(size, *out.shape[1:])
