r"""Fused forward and backward passes of the E-I layers for the default configuration.

:class:`~ei_tutorial.circuit.EILinear` and :class:`~ei_tutorial.circuit.EIConv2d` compute,
for a non-negative input :math:`x` (see :mod:`ei_tutorial.circuit` for the symbols),

.. math::

    I = g_E \odot \frac{W_{EE}\, x - W_{EI} W_{IE}\, x}
        {\mathrm{stab}\big(W_{EI} \operatorname{diag}(g_I)\, W_{IE}\, x\big)} + b_E,

where :math:`\mathrm{stab}` replaces each exact zero by the smallest non-zero value of its
sample and is the identity in the backward pass (E-I Prop, :mod:`ei_tutorial.ei_prop`).
:class:`EICircuitFunction` computes the same numbers as the plain PyTorch reference path
(``fused=False``) in one autograd node, in one of two orders:

- **mixed** (the general case): one linear map or convolution with the stacked weights
  :math:`[W_{EE}; W_{IE}]` gives :math:`[I_{EE}; r_I]`; then two matrix products with
  :math:`W_{EI}` and :math:`W_{EI} \operatorname{diag}(g_I)` mix :math:`r_I` into every
  E output, the first accumulated in place into :math:`I_{EE}`.
- **folded**, when it costs fewer multiply-adds: the mixes are applied to the weights,
  and one linear map or convolution with :math:`[W_{EE} - W_{EI} W_{IE};\;
  W_{EI} \operatorname{diag}(g_I) W_{IE}]` gives numerator and divisor directly. Per
  output position it costs :math:`2 n_E d` multiply-adds against
  :math:`(n_E + n_I) d + 2 n_E n_I`, so it wins when the fan-in :math:`d` is small, as
  in a first convolution on images (:math:`d = 27` for 3x3 kernels on RGB).

Either way the products act on rows of channels, ``[rows, channels]``: a convolution
writes its output channels-last (NHWC), so its rows are pixels and no permuted copy is
made. The stabilisation, the quotient and ``g_E / divisor`` are computed in place, and
the backward pass writes the gradient of the drive into one buffer that the drive's own
backward pass consumes.

Memory kept for the backward pass: per E output, the quotient and ``g_E / divisor``, and
on the mixed order :math:`r_I` as well (a quarter of a value per E output when
``ei_ratio`` is 4). Like a linear layer or convolution, the function also keeps the
input and the weights of the drive.

Host-device synchronisation: none on a GPU. On the CPU the stabilisation first reads the
divisor's minimum on the host and skips its remaining passes when no value is zero.

Under autocast the drive runs in the autocast dtype and everything after it in the
parameters' dtype (float32), as on the reference path. Double backward is not supported.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F

# (stride, padding) of a convolution, or None for a linear map.
ConvGeometry = Optional[tuple[tuple[int, int], tuple[int, int]]]


def prefers_folded(n_e: int, n_i: int, fan_in: int) -> bool:
    """Return True if the folded order needs no more multiply-adds per output position than the mixed one."""
    return 2 * n_e * fan_in <= (n_e + n_i) * fan_in + 2 * n_e * n_i


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


# --- the division, shared by both orders ---------------------------------------------


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


def _stabilise_(divisor: Tensor, rows_per_sample: int) -> None:
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


def _divide_forward(
    numerator: Tensor, divisor: Tensor, gain_e: Tensor, bias: Optional[Tensor], rows_per_sample: int
) -> Tensor:
    """Return the current ``g_E * numerator / stab(divisor) + b_E`` ``[rows, n_E]``.

    Overwrites ``numerator`` with the quotient and ``divisor`` with ``g_E / stab(divisor)``,
    the two tensors that the backward pass needs.
    """
    _stabilise_(divisor, rows_per_sample)
    quotient = numerator.div_(divisor)
    current = torch.mul(quotient, gain_e) if bias is None else torch.addcmul(bias, quotient, gain_e)
    torch.div(gain_e, divisor, out=divisor)
    return current


def _divide_backward(
    grad_current: Tensor,
    quotient: Tensor,
    gain_over_divisor: Tensor,
    grad_numerator_out: Tensor,
    neg_grad_divisor_out: Optional[Tensor],
    needs_gain_e: bool,
    needs_bias: bool,
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Backward pass of :func:`_divide_forward`, straight-through at the stabilisation.

    With ``G`` the gradient of the current, ``q`` the quotient and ``a = g_E / divisor``:
    ``dL/dnumerator = G a``, ``dL/ddivisor = -G q a``, ``dL/dg_E = sum(G q)`` and
    ``dL/db_E = sum(G)``, the sums running over the rows.

    Returns:
        ``(dL/dnumerator, -dL/ddivisor, dL/dg_E, dL/db_E)``, the first two written into
        the given buffers (a new tensor for the second when its buffer is None).
    """
    grad_numerator = torch.mul(grad_current, gain_over_divisor, out=grad_numerator_out)
    weighted = torch.mul(grad_current, quotient, out=neg_grad_divisor_out)
    grad_gain_e = weighted.sum(0) if needs_gain_e else None
    grad_bias = grad_current.sum(0) if needs_bias else None
    return grad_numerator, weighted.mul_(gain_over_divisor), grad_gain_e, grad_bias


# --- the drive: a linear map or a convolution on rows of channels --------------------

# NOTE: most of the remaining cost of an E-I layer sits in this drive. With oneDNN on a
# 2-core CPU (PyTorch 2.14) the convolution with n_E + n_I outputs takes 1.2 to 1.35 times
# the n_E-output convolution of a batch-norm layer, and the mixes with W_EI add about a
# tenth. benchmarks/step_time.py measures E-I VGG-8 and VGG-11 training steps at about 1.4
# times their batch-norm twins there, above the 1.3 that the multiply-add count suggests.


def _drive(
    x: Tensor, blocks: tuple[Tensor, ...], conv: ConvGeometry, stacked: Optional[Tensor] = None
) -> tuple[Tensor, tuple[int, ...]]:
    """Apply the stacked weight blocks to ``x``, returning rows ``[rows, out_channels]`` and the output shape.

    A linear map writes each block's product into its own columns, so its weights are
    never copied. A convolution runs once with the kernels stacked (``stacked`` when
    given, else a copy), and its rows are a view of its channels-last output (the reshape
    copies for any other memory format).
    """
    if conv is None:
        inputs = x.reshape(-1, x.shape[-1])
        rows = inputs.new_empty(inputs.shape[0], sum(block.shape[0] for block in blocks))
        for block, columns in zip(blocks, rows.split([block.shape[0] for block in blocks], dim=1)):
            torch.mm(inputs, block.t(), out=columns)
        return rows, (*x.shape[:-1], rows.shape[1])
    weight = torch.cat(blocks) if stacked is None else stacked
    out = F.conv2d(x, weight, stride=conv[0], padding=conv[1])
    batch, channels, height, width = out.shape
    return out.permute(0, 2, 3, 1).reshape(-1, channels), (batch, height, width, channels)


def _drive_backward(
    grad_rows: Tensor, x: Tensor, blocks: tuple[Tensor, ...], conv: ConvGeometry, shape: tuple[int, ...],
    needs_x: bool, needs_weights: bool, stacked: Optional[Tensor] = None,
) -> tuple[Optional[Tensor], list[Optional[Tensor]]]:
    """Return the gradients of :func:`_drive`'s ``x`` and of each weight block (None where not needed)."""
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
    grad_out = grad_rows.view(shape).permute(0, 3, 1, 2)
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_out, x, torch.cat(blocks) if stacked is None else stacked, None, conv[0], conv[1], (1, 1), False,
        (0, 0), 1,
        (needs_x, needs_weights, False),
    )
    return grad_x, list(grad_weight.split(sizes)) if needs_weights else [None] * len(blocks)


def _current_shape(shape: tuple[int, ...], conv: ConvGeometry, n_e: int):
    """Return how to turn rows ``[rows, n_E]`` back into the layer's output layout."""
    if conv is None:
        return lambda rows: rows.view(*shape[:-1], n_e)
    batch, height, width, _ = shape
    return lambda rows: rows.view(batch, height, width, n_e).permute(0, 3, 1, 2)


def _rows_of(grad: Tensor, conv: ConvGeometry) -> Tensor:
    """Return the gradient of the current as rows ``[rows, n_E]`` (a view when the layout allows)."""
    if conv is None:
        return grad.reshape(-1, grad.shape[-1])
    return grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])


# --- the two orders ------------------------------------------------------------------


def _folded_blocks(
    weight_ee: Tensor,
    weight_ie: Tensor,
    weight_ei: Tensor,
    weight_div: Tensor,
    dtype: torch.dtype,
    conv: ConvGeometry,
) -> tuple[Tensor, Tensor]:
    """Return the drive's weights of the folded order: ``W_EE - W_EI W_IE`` and ``W_div W_IE``."""
    n_e, n_i = weight_ee.shape[0], weight_ie.shape[0]
    flat_ie = weight_ie.reshape(n_i, -1).to(weight_ei.dtype)
    numerator = torch.addmm(weight_ee.reshape(n_e, -1).to(weight_ei.dtype), weight_ei, flat_ie, alpha=-1.0)
    divisor = weight_div @ flat_ie
    memory_format = torch.contiguous_format if conv is None else torch.channels_last
    return tuple(block.view(weight_ee.shape).to(dtype, memory_format=memory_format) for block in (numerator, divisor))


def _folded_weight_grads(
    grad_blocks: list[Optional[Tensor]], weight_ie: Tensor, weight_ei: Tensor, gain_i: Tensor,
    weight_div: Tensor, needs: tuple[bool, ...],
) -> tuple[Optional[Tensor], ...]:
    """Chain the gradients of the folded drive's weights to ``W_EE``, ``W_IE``, ``W_EI`` and ``g_I``.

    The drive used ``[W_num; -W_div W_IE]`` with ``W_num = W_EE - W_EI W_IE`` and received
    ``[dL/dnumerator, -dL/ddivisor]``, so its second block's gradient is
    ``-dL/d(W_div W_IE)``.
    """
    if grad_blocks[0] is None:
        return None, None, None, None
    n_e, n_i = weight_ei.shape
    grad_num, neg_grad_div = (grad.reshape(n_e, -1).to(weight_ei.dtype) for grad in grad_blocks)
    flat_ie = weight_ie.reshape(n_i, -1).to(weight_ei.dtype)
    grad_w_ee = grad_num.view(n_e, *weight_ie.shape[1:]) if needs[1] else None
    grad_w_ie = None
    if needs[2]:
        grad_w_ie = torch.mm(weight_ei.t(), grad_num).addmm_(weight_div.t(), neg_grad_div).neg_().view(weight_ie.shape)
    outer_div = neg_grad_div @ flat_ie.t()
    grad_weight_ei = torch.mm(grad_num, flat_ie.t()).add_(outer_div * gain_i).neg_() if needs[3] else None
    grad_gain_i = (outer_div * weight_ei).sum(0).neg_() if needs[4] else None
    return grad_w_ee, grad_w_ie, grad_weight_ei, grad_gain_i


def _mixed_mix_grads(
    grad_rows: Tensor, grad_numerator: Tensor, neg_grad_divisor: Tensor, rate_i: Tensor, weight_ei: Tensor,
    gain_i: Tensor, weight_div: Tensor, needs: tuple[bool, ...],
) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """Backward pass of the mixes ``I_sub = W_EI r_I`` and ``I_div = W_div r_I`` of the mixed order.

    Writes ``dL/dr_I`` into the ``r_I`` columns of ``grad_rows`` and returns the gradients
    of ``W_EI`` and ``g_I``.
    """
    n_e = weight_ei.shape[0]
    grad_rate_i = torch.mm(grad_numerator, -weight_ei, out=grad_rows[:, n_e:])
    grad_rate_i.addmm_(neg_grad_divisor, weight_div, alpha=-1.0)
    if not (needs[3] or needs[4]):
        return None, None
    # Each product's weight gradient is (gradient of its output)^T r_I over the rows.
    outer_div = torch.mm(neg_grad_divisor.t(), rate_i)
    grad_weight_ei = torch.mm(grad_numerator.t(), rate_i).add_(outer_div * gain_i).neg_() if needs[3] else None
    grad_gain_i = (outer_div * weight_ei).sum(0).neg_() if needs[4] else None
    return grad_weight_ei, grad_gain_i


# --- the autograd function -----------------------------------------------------------


class EICircuitFunction(torch.autograd.Function):
    """Fused divisive E-I layer (subtractive and divisive, stabilised, straight-through).

    Inputs:

    - ``x``: ``[..., d]`` for a linear layer, ``[N, C, H, W]`` for a convolution;
    - ``weight_ee`` ``[n_E, ...]`` and ``weight_ie`` ``[n_I, ...]``: matrices or kernels;
    - ``weight_ei`` ``[n_E, n_I]``, already multiplied by the inhibition scale;
    - ``gain_i`` ``[n_I]``, ``gain_e`` ``[n_E]`` and ``bias`` ``[n_E]`` or None;
    - ``conv``: ``(stride, padding)`` of a convolution, or None for a linear layer;
    - ``folded``: the order of the computation (see the module docstring);
    - ``stacked``: ``[W_EE; W_IE]`` as one tensor that aliases both kernels (see
      :func:`stacked_view`), or None to stack them by copying. The folded order ignores it.

    A sample for the stabilisation is a row of ``x`` for a linear layer and an image for
    a convolution.

    Outputs: the current (``[..., n_E]``, or ``[N, n_E, H', W']`` in channels-last memory
    order), then tensors kept for the backward pass and marked non-differentiable (the
    last two are None on the mixed order).
    """

    @staticmethod
    def forward(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, folded, stacked):
        n_e = weight_ee.shape[0]
        weight_div = weight_ei * gain_i
        if folded:
            blocks = _folded_blocks(weight_ee, weight_ie, weight_ei, weight_div, x.dtype, conv)
        else:
            blocks = (weight_ee, weight_ie)
        rows, shape = _drive(x, blocks, conv, None if folded else stacked)
        rows = rows.to(weight_ei.dtype)
        numerator = rows[:, :n_e]
        if folded:
            divisor = rows[:, n_e:]
            # The backward pass feeds the drive -dL/ddivisor, so it needs -W_div W_IE there.
            blocks[1].neg_()
        else:
            rate_i = rows[:, n_e:]
            numerator.addmm_(rate_i, weight_ei.t(), alpha=-1.0)
            divisor = torch.mm(rate_i, weight_div.t())
        rows_per_sample = 1 if conv is None else shape[1] * shape[2]
        current = _divide_forward(numerator, divisor, gain_e, bias, rows_per_sample)
        # Folded order: rows contains [quotient | g_E / divisor]. Mixed order: rows contains
        # [quotient | r_I], and divisor contains g_E / divisor.
        folded_blocks = blocks if folded else (None, None)
        return _current_shape(shape, conv, n_e)(current), rows, divisor, *folded_blocks

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight_ee, weight_ie, weight_ei, gain_i, _, _, conv, folded, stacked = inputs
        current, rows, gain_over_divisor, *folded_blocks = output
        # The mixed order keeps its parameters rather than a stacked copy of them. The
        # folded order keeps its composite weights, which are small because its fan-in is.
        blocks = folded_blocks if folded else (weight_ee, weight_ie)
        stacked = None if folded else stacked
        ctx.save_for_backward(x, *blocks, weight_ie, weight_ei, gain_i, rows, gain_over_divisor, stacked)
        ctx.mark_non_differentiable(rows, gain_over_divisor, *(t for t in folded_blocks if t is not None))
        # The extra outputs get no gradient, so autograd need not fill zero tensors for them.
        ctx.set_materialize_grads(False)
        ctx.conv, ctx.folded = conv, folded
        drive_channels = rows.shape[1]
        if conv is None:
            ctx.drive_shape = (*x.shape[:-1], drive_channels)
        else:
            batch, _, height, width = current.shape
            ctx.drive_shape = (batch, height, width, drive_channels)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, *_unused_grads):
        if grad_out is None:
            return (None,) * 10
        x, block_e, block_i, weight_ie, weight_ei, gain_i, rows, gain_over_divisor, stacked = ctx.saved_tensors
        n_e = weight_ei.shape[0]
        needs = ctx.needs_input_grad
        grad_rows = torch.empty_like(rows)
        grad_numerator, neg_grad_divisor, grad_gain_e, grad_bias = _divide_backward(
            _rows_of(grad_out, ctx.conv), rows[:, :n_e], gain_over_divisor, grad_rows[:, :n_e],
            grad_rows[:, n_e:] if ctx.folded else None, needs[5], needs[6],
        )
        weight_div = weight_ei * gain_i
        if ctx.folded:
            grad_x, grad_blocks = _drive_backward(
                grad_rows, x, (block_e, block_i), ctx.conv, ctx.drive_shape, needs[0], any(needs[1:5])
            )
            grads_weights = _folded_weight_grads(grad_blocks, weight_ie, weight_ei, gain_i, weight_div, needs)
            return grad_x, *grads_weights, grad_gain_e, grad_bias, None, None, None

        grad_weight_ei, grad_gain_i = _mixed_mix_grads(
            grad_rows, grad_numerator, neg_grad_divisor, rows[:, n_e:], weight_ei, gain_i, weight_div, needs
        )
        grad_x, (grad_w_ee, grad_w_ie) = _drive_backward(
            grad_rows, x, (block_e, block_i), ctx.conv, ctx.drive_shape, needs[0], needs[1] or needs[2], stacked
        )
        return grad_x, grad_w_ee, grad_w_ie, grad_weight_ei, grad_gain_i, grad_gain_e, grad_bias, None, None, None


def _drive_dtype(x: Tensor) -> Optional[torch.dtype]:
    """Return the autocast dtype for ``x``'s device, or None when autocast is off there."""
    device_type = x.device.type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def ei_circuit(
    x: Tensor,
    weight_ee: Tensor,
    weight_ie: Tensor,
    weight_ei: Tensor,
    gain_i: Tensor,
    gain_e: Tensor,
    bias: Optional[Tensor],
    conv: ConvGeometry = None,
    folded: Optional[bool] = None,
) -> Tensor:
    """Compute the current of a divisive E-I layer with :class:`EICircuitFunction`.

    Args:
        x: Input ``[..., d]`` (linear) or ``[N, C, H, W]`` (convolution, converted to
            channels-last memory order first, which is free when it already is).
        weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias: The layer's parameters,
            ``weight_ei`` multiplied by the inhibition scale.
        conv: ``(stride, padding)`` pairs for a convolution; None for a linear layer.
        folded: Force the folded (True) or mixed (False) order; None picks the one with
            fewer multiply-adds (:func:`prefers_folded`).

    Returns:
        The current into the E neurons.
    """
    n_e, n_i = weight_ee.shape[0], weight_ie.shape[0]
    if folded is None:
        folded = prefers_folded(n_e, n_i, weight_ee[0].numel())
    if conv is not None:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = _drive_dtype(x)
    if dtype is None:
        stacked = None if conv is None or folded else stacked_view(weight_ee, weight_ie)
        return EICircuitFunction.apply(
            x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, folded, stacked
        )[0]
    # Autocast: the drive in the autocast dtype, the division in the parameters' dtype.
    # The folded order builds its drive's weights in the parameters' dtype and casts them.
    x = x.to(dtype)
    if not folded:
        weight_ee, weight_ie = weight_ee.to(dtype), weight_ie.to(dtype)
    with torch.autocast(x.device.type, enabled=False):
        return EICircuitFunction.apply(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, folded, None)[0]
