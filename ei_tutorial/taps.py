r"""Convolutions over a single pixel, and 1x1 convolutions, computed as matrix products.

Deep VGG layers on 28x28 MNIST images receive feature maps of one pixel: after four 2x2
poolings, 28 -> 14 -> 7 -> 3 -> 1. A 3x3 convolution with padding 1 on a 1x1 input has
one output pixel, and eight of its nine kernel taps multiply the zero padding. The output
is then the centre tap's matrix times the input channels,

.. math::

    y[n, o] = \sum_c W[o, c, p_h, p_w]\, x[n, c, 0, 0] + b[o],

with ``(p_h, p_w)`` the padding, and the gradient of every other tap is exactly zero. A
matrix product does a ninth of the convolution's multiply-adds, forward and backward,
with the same result up to float rounding.

A convolution with a 1x1 kernel is a matrix product too, over the input pixels that its
stride and padding select (:func:`pointwise_input`). With PyTorch 2.14 (oneDNN 3.12) on
an AVX2 CPU, the weight gradient of a strided 1x1 convolution on channels-last tensors
with 2 to 5 input channels wrote past the end of its buffer under valgrind. That
corrupts the heap, and the process aborts later. The matrix product avoids that kernel.

:class:`Conv2d` is ``nn.Conv2d`` with both shortcuts; :func:`single_tap` returns the tap
where the first applies. The fused E-I path (:func:`ei_tutorial.fused_ops.drive`) uses
the same tests.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.modules.utils import _pair


def single_tap(
    input_size: tuple[int, int], kernel_size, stride, padding, dilation=1
) -> Optional[tuple[int, int]]:
    """Return the only kernel tap that meets the input, or None when more than one does.

    That tap exists when the input is one pixel (``input_size == (1, 1)``), the output is
    one pixel, and the padding is smaller than the kernel along both axes: the output
    pixel then receives the input through tap ``(padding_h, padding_w)`` alone.

    Args:
        input_size: ``(H, W)`` of the input feature map.
        kernel_size, stride, padding, dilation: As in ``nn.Conv2d`` (integer or pair;
            padding as numbers, not as a string).

    Returns:
        ``(row, column)`` of the tap, or None.
    """
    if tuple(input_size) != (1, 1) or isinstance(padding, str):
        return None
    kernels, strides, paddings, dilations = map(_pair, (kernel_size, stride, padding, dilation))
    if dilations != (1, 1):
        return None
    for k, s, p in zip(kernels, strides, paddings):
        # One output pixel needs (1 + 2p - k) // s == 0, and the tap p must lie inside the kernel.
        if not (0 <= p < k and 0 <= 1 + 2 * p - k < s):
            return None
    return paddings


def pointwise_input(x: Tensor, stride: tuple[int, int], padding: tuple[int, int]) -> Tensor:
    """Return the pixels of ``x`` ``[N, C, H, W]`` that a 1x1 kernel with this stride and padding reads.

    The result ``[N, C, H', W']`` has the output's height and width, so the convolution is
    the kernel's matrix times each of its pixels. It is a view of ``x`` when the padding
    is zero, else of a zero-padded copy.
    """
    if any(padding):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    return x[:, :, :: stride[0], :: stride[1]]


def pointwise_input_backward(grad: Tensor, like: Tensor, stride: tuple[int, int], padding: tuple[int, int]) -> Tensor:
    """Return the gradient with respect to ``like`` (the ``x`` of :func:`pointwise_input`) given that of its result."""
    batch, channels, height, width = like.shape
    size = (batch, channels, height + 2 * padding[0], width + 2 * padding[1])
    full = torch.empty(size, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last).zero_()
    full[:, :, :: stride[0], :: stride[1]] = grad
    if not any(padding):
        return full
    cropped = full[:, :, padding[0] : padding[0] + height, padding[1] : padding[1] + width]
    return cropped.contiguous(memory_format=torch.channels_last)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes a convolution over a single pixel, or with a 1x1 kernel, as a matrix product.

    Takes the same arguments and has the same parameters as ``nn.Conv2d``, so state
    dicts and ``isinstance(m, nn.Conv2d)`` checks are unchanged. Both shortcuts need
    zero padding mode and one group. Where :func:`single_tap` finds one tap for the input
    (a 1x1 feature map), the output is that tap's matrix times the input, and the other
    taps get zero gradients. A 1x1 kernel multiplies the pixels of
    :func:`pointwise_input`. Every other convolution calls ``nn.Conv2d``'s.

    Shape:
        - Input: ``[N, C_in, H, W]``.
        - Output: ``[N, C_out, H', W']`` as for ``nn.Conv2d``.
    """

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        # nn.Conv2d computes unbatched inputs, groups and other padding modes, and its
        # error on a wrong channel count names both counts.
        if input.dim() != 4 or self.groups != 1 or self.padding_mode != "zeros" or input.shape[1] != self.in_channels:
            return super()._conv_forward(input, weight, bias)
        tap = single_tap(input.shape[-2:], self.kernel_size, self.stride, self.padding, self.dilation)
        if tap is not None:
            out = F.linear(input.flatten(1), weight[:, :, tap[0], tap[1]], bias)
            return out[:, :, None, None]
        if self.kernel_size == (1, 1) and not isinstance(self.padding, str):
            pixels = pointwise_input(input, self.stride, self.padding).permute(0, 2, 3, 1)
            return F.linear(pixels, weight[:, :, 0, 0], bias).permute(0, 3, 1, 2)
        return super()._conv_forward(input, weight, bias)


def tap_matrices(blocks: tuple[Tensor, ...], tap: tuple[int, int]) -> tuple[Tensor, ...]:
    """Return the ``[out, C]`` matrix of tap ``tap`` of each kernel ``[out, C, kh, kw]`` (views)."""
    return tuple(block[:, :, tap[0], tap[1]] for block in blocks)


def embed_tap(grad: Tensor, like: Tensor, tap: tuple[int, int]) -> Tensor:
    """Return a zero gradient shaped and laid out like kernel ``like``, with ``grad`` at tap ``tap``."""
    full = torch.zeros_like(like, memory_format=torch.preserve_format)
    full[:, :, tap[0], tap[1]] = grad
    return full
