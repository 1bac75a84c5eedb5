"""Building blocks of the fused E-I layer function (:mod:`ei_tutorial.fused`).

Every operation here works on *rows of channels*: a tensor ``[rows, channels]`` whose
rows are the samples of a linear layer or the output pixels of a convolution. A
convolution writes its output channels-last (NHWC), so those rows are a view of it and no
permuted copy is made.

- the drive: one linear map or convolution with stacked weights, and its backward pass;
- the stabilised division ``g_E * numerator / stab(divisor) + b_E`` (E-I Prop) and its
  backward pass, computed in place where the autograd function allows it, and a shorter
  form for a numerator that already carries ``g_E``;
- layout helpers: weights as matrices, the shared storage of ``W_EE`` and ``W_IE``, and
  the conversions between rows and the layer's output layout.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor
from torch.nn import functional as F

from ei_tutorial.taps import embed_tap, pointwise_input, pointwise_input_backward, single_tap, tap_matrices

# (stride, padding) of a convolution, or None for a linear map.
ConvGeometry = Optional[tuple[tuple[int, int], tuple[int, int]]]


# --- weights as matrices ---------------------------------------------------------------


def as_matrix(weight: Tensor) -> Tensor:
    """Return ``weight`` as a matrix ``[out, fan_in]``.

    A kernel ``[out, C, kh, kw]`` is flattened in ``(kh, kw, C)`` order, which is a view
    of a channels-last kernel (the layout of :class:`~ei_tutorial.EIConv2d`'s kernels).
    Products over the fan-in need only one consistent order for all kernels.
    """
    if weight.dim() == 2:
        return weight
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def from_matrix(matrix: Tensor, like: torch.Size) -> Tensor:
    """Invert :func:`as_matrix`: a view of ``matrix`` with shape ``like``, channels-last for a kernel."""
    if len(like) == 2:
        return matrix.view(like)
    out, channels, height, width = like
    return matrix.view(out, height, width, channels).permute(0, 3, 1, 2)


def stacked_view(first: Tensor, second: Tensor) -> Optional[Tensor]:
    """Return one tensor over ``first`` and ``second`` if they are adjacent blocks of one storage, else None.

    The blocks must be dense, have equal strides and trailing shapes, and ``second`` must
    start where ``first`` ends along dimension 0. The result is a detached view that
    aliases both, so stacking them costs no copy.
    """
    if (
        first.dtype != second.dtype
        or first.device != second.device
        or first.shape[1:] != second.shape[1:]
        or first.stride() != second.stride()
        or first.stride(0) != first[0].numel()
        or first.untyped_storage().data_ptr() != second.untyped_storage().data_ptr()
        or second.storage_offset() != first.storage_offset() + first.shape[0] * first.stride(0)
    ):
        return None
    return first.detach().as_strided((first.shape[0] + second.shape[0], *first.shape[1:]), first.stride())


# --- the division ----------------------------------------------------------------------


def _all_positive_on_host(values: Tensor) -> bool:
    """Return True if ``values`` is a CPU tensor whose values are all > 0.

    One read-only pass, which spares the four passes of the stabilisation when no value
    is zero. Past the first layers that is usual, because a divisor is zero only where a
    whole receptive field is silent. Reading the minimum on the host
    would stall a GPU, and a traced graph cannot branch on it, so on other devices and
    under ``torch.compile`` this returns False and the stabilisation always runs.
    """
    if values.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    return bool(values.amin() > 0)


def stabilise_(divisor: Tensor, rows_per_sample: int) -> None:
    """Replace each exact zero of ``divisor`` ``[rows, n_E]`` by its sample's smallest non-zero value, in place.

    A sample is ``rows_per_sample`` consecutive rows, and ``divisor`` may be a column
    slice of a wider buffer. A sample without a non-zero value gets ``+inf``, so its
    quotient is zero and its current is the bias.
    """
    if divisor.numel() == 0 or _all_positive_on_host(divisor):
        return
    per_sample = divisor.unflatten(0, (-1, rows_per_sample))
    zero = per_sample == 0
    per_sample.masked_fill_(zero, float("inf"))
    smallest = per_sample.amin(dim=(1, 2), keepdim=True)
    torch.where(zero, smallest, per_sample, out=per_sample)


def divide_forward(
    numerator: Tensor, divisor: Tensor, gain_e: Tensor, bias: Optional[Tensor], rows_per_sample: int
) -> Tensor:
    """Return the current ``g_E * numerator / stab(divisor) + b_E`` ``[rows, n_E]``.

    Overwrites ``numerator`` with the quotient and ``divisor`` with ``g_E / stab(divisor)``,
    the two tensors that the backward pass needs.
    """
    stabilise_(divisor, rows_per_sample)
    quotient = numerator.div_(divisor)
    current = torch.mul(quotient, gain_e) if bias is None else torch.addcmul(bias, quotient, gain_e)
    torch.div(gain_e, divisor, out=divisor)
    return current


def divide_backward(
    grad_current: Tensor,
    quotient: Tensor,
    gain_over_divisor: Tensor,
    grad_numerator_out: Tensor,
    needs_gain_e: bool,
    needs_bias: bool,
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Backward pass of :func:`divide_forward`, straight-through at the stabilisation.

    With ``G`` the gradient of the current, ``q`` the quotient and ``a = g_E / divisor``:
    ``dL/dnumerator = G a``, ``dL/ddivisor = -G q a``, ``dL/dg_E = sum(G q)`` and
    ``dL/db_E = sum(G)``, the sums running over the rows.

    Returns:
        ``(dL/dnumerator, -dL/ddivisor, dL/dg_E, dL/db_E)``, the first written into
        ``grad_numerator_out``.
    """
    grad_numerator = torch.mul(grad_current, gain_over_divisor, out=grad_numerator_out)
    weighted = torch.mul(grad_current, quotient)
    grad_gain_e = weighted.sum(0) if needs_gain_e else None
    grad_bias = grad_current.sum(0) if needs_bias else None
    return grad_numerator, weighted.mul_(gain_over_divisor), grad_gain_e, grad_bias


def divide_scaled_forward(
    numerator: Tensor, divisor: Tensor, bias: Optional[Tensor], rows_per_sample: int
) -> Tensor:
    """Return ``numerator / stab(divisor) + b_E`` for a numerator already multiplied by ``g_E``.

    Two passes where :func:`divide_forward` needs three. Stabilises ``divisor`` in place
    and overwrites ``numerator`` with the quotient, the two tensors that
    :func:`divide_scaled_backward` needs.
    """
    stabilise_(divisor, rows_per_sample)
    quotient = numerator.div_(divisor)
    return quotient.clone() if bias is None else torch.add(quotient, bias)


def divide_scaled_backward(
    grad_current: Tensor,
    quotient: Tensor,
    divisor: Tensor,
    grad_numerator_out: Optional[Tensor],
    needs_bias: bool,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Backward pass of :func:`divide_scaled_forward`, straight-through at the stabilisation.

    With ``G`` the gradient of the current and ``q`` the quotient:
    ``dL/dnumerator = G / divisor``, ``dL/ddivisor = -(G / divisor) q`` and
    ``dL/db_E = sum(G)`` over the rows.

    Returns:
        ``(dL/dnumerator, -dL/ddivisor, dL/db_E)``, the first written into
        ``grad_numerator_out`` when it is given.
    """
    grad_numerator = torch.div(grad_current, divisor, out=grad_numerator_out)
    neg_grad_divisor = torch.mul(grad_numerator, quotient)
    grad_bias = grad_current.sum(0) if needs_bias else None
    return grad_numerator, neg_grad_divisor, grad_bias


# --- the drive: a linear map or a convolution on rows of channels --------------------


def drive(
    x: Tensor, blocks: tuple[Tensor, ...], conv: ConvGeometry, stacked: Optional[Tensor] = None
) -> tuple[Tensor, tuple[int, ...]]:
    """Apply the stacked weight blocks to ``x``, returning rows ``[rows, out_channels]`` and the output shape.

    A linear map writes each block's product into its own columns, so its weights are
    never copied. A convolution runs once with the kernels stacked (``stacked`` when
    given, else a copy), and its rows are a view of its channels-last output (the reshape
    copies for any other memory format). A convolution over a single pixel is the linear
    map of its one kernel tap (:func:`~ei_tutorial.taps.single_tap`), and a 1x1 kernel the
    linear map of the pixels it reads (:func:`~ei_tutorial.taps.pointwise_input`).
    """
    if conv is None:
        inputs = x.reshape(-1, x.shape[-1])
        rows = inputs.new_empty(inputs.shape[0], sum(block.shape[0] for block in blocks))
        for block, columns in zip(blocks, rows.split([block.shape[0] for block in blocks], dim=1)):
            torch.mm(inputs, block.t(), out=columns)
        return rows, (*x.shape[:-1], rows.shape[1])
    tap = single_tap(x.shape[-2:], blocks[0].shape[-2:], *conv)
    if tap is not None:
        rows, _ = drive(x.flatten(1), tap_matrices(blocks, tap), None)
        return rows, (x.shape[0], 1, 1, rows.shape[1])
    if blocks[0].shape[-2:] == (1, 1):
        pixels = pointwise_input(x, *conv).permute(0, 2, 3, 1)
        rows, _ = drive(pixels, tap_matrices(blocks, (0, 0)), None)
        return rows, (*pixels.shape[:3], rows.shape[1])
    weight = torch.cat(blocks) if stacked is None else stacked
    out = F.conv2d(x, weight, stride=conv[0], padding=conv[1])
    batch, channels, height, width = out.shape
    return out.permute(0, 2, 3, 1).reshape(-1, channels), (batch, height, width, channels)


def drive_backward(
    grad_rows: Tensor, x: Tensor, blocks: tuple[Tensor, ...], conv: ConvGeometry, shape: tuple[int, ...],
    needs_x: bool, needs_weights: bool, stacked: Optional[Tensor] = None,
) -> tuple[Optional[Tensor], list[Optional[Tensor]]]:
    """Return the gradients of :func:`drive`'s ``x`` and of each weight block (None where not needed)."""
    grad_rows = grad_rows.to(x.dtype)
    sizes = [block.shape[0] for block in blocks]
    if conv is None:
        inputs = x.reshape(-1, x.shape[-1])
        grad_x, grad_blocks = None, []
        for block, grad_block in zip(blocks, grad_rows.split(sizes, dim=1)):
            if needs_x:
                grad_x = torch.mm(grad_block, block) if grad_x is None else grad_x.addmm_(grad_block, block)
            grad_blocks.append(torch.mm(grad_block.t(), inputs) if needs_weights else None)
        return (None if grad_x is None else grad_x.view(x.shape)), grad_blocks
    tap = single_tap(x.shape[-2:], blocks[0].shape[-2:], *conv)
    if tap is not None:
        grad_x, grad_taps = drive_backward(
            grad_rows, x.flatten(1), tap_matrices(blocks, tap), None, shape, needs_x, needs_weights
        )
        grad_blocks = [None if g is None else embed_tap(g, block, tap) for g, block in zip(grad_taps, blocks)]
        return (None if grad_x is None else grad_x.view(x.shape)), grad_blocks
    if blocks[0].shape[-2:] == (1, 1):
        pixels = pointwise_input(x, *conv).permute(0, 2, 3, 1)
        grad_pixels, grad_taps = drive_backward(
            grad_rows, pixels, tap_matrices(blocks, (0, 0)), None, shape, needs_x, needs_weights
        )
        if grad_pixels is not None:
            grad_pixels = pointwise_input_backward(grad_pixels.permute(0, 3, 1, 2), x, *conv)
        return grad_pixels, [None if g is None else g.view(block.shape) for g, block in zip(grad_taps, blocks)]
    grad_out = grad_rows.view(shape).permute(0, 3, 1, 2)
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_out, x, torch.cat(blocks) if stacked is None else stacked, None, conv[0], conv[1], (1, 1), False,
        (0, 0), 1,
        (needs_x, needs_weights, False),
    )
    return grad_x, list(grad_weight.split(sizes)) if needs_weights else [None] * len(blocks)


def output_rows(x: Tensor, fan_in_shape: torch.Size, conv: ConvGeometry) -> int:
    """Return how many rows :func:`drive` produces for input ``x`` and weights of trailing shape ``fan_in_shape``."""
    if conv is None:
        return x.numel() // max(x.shape[-1], 1)
    (stride_h, stride_w), (pad_h, pad_w) = conv
    _, kernel_h, kernel_w = fan_in_shape
    height = (x.shape[2] + 2 * pad_h - kernel_h) // stride_h + 1
    width = (x.shape[3] + 2 * pad_w - kernel_w) // stride_w + 1
    return x.shape[0] * max(height, 0) * max(width, 0)


def current_shape(shape: tuple[int, ...], conv: ConvGeometry, n_e: int) -> Callable[[Tensor], Tensor]:
    """Return how to turn rows ``[rows, n_E]`` back into the layer's output layout."""
    if conv is None:
        return lambda rows: rows.view(*shape[:-1], n_e)
    batch, height, width, _ = shape
    return lambda rows: rows.view(batch, height, width, n_e).permute(0, 3, 1, 2)


def rows_of(grad: Tensor, conv: ConvGeometry) -> Tensor:
    """Return the gradient of the current as rows ``[rows, n_E]`` (a view when the layout allows)."""
    if conv is None:
        return grad.reshape(-1, grad.shape[-1])
    return grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])
