r"""Fused forward and backward passes of the E-I layers for the default configuration.

:class:`~ei_tutorial.circuit.EILinear` and :class:`~ei_tutorial.circuit.EIConv2d` compute,
for a non-negative input :math:`x` (see :mod:`ei_tutorial.circuit` for the symbols),

.. math::

    I = g_E \odot \frac{W_{EE}\, x - W_{EI} W_{IE}\, x}
        {\mathrm{stab}\big(W_{div} W_{IE}\, x\big)} + b_E,
    \qquad W_{div} = W_{EI} \operatorname{diag}(g_I),

where :math:`\mathrm{stab}` replaces each exact zero by the smallest non-zero value of its
sample and is the identity in the backward pass (E-I Prop, :mod:`ei_tutorial.ei_prop`).
:class:`EICircuitFunction` computes the values of the plain PyTorch reference path
(``fused=False``) in one autograd node, equal up to float rounding. Matrix products are
associative, so it can apply the mixes with :math:`W_{EI}` to the activity or fold them
into the weights; the orders round differently, so a current within rounding of a
neuron's threshold can spike on one path and not on the other. It uses one of three
orders:

- **mixed**: one linear map or convolution with the stacked weights
  :math:`[W_{EE}; W_{IE}]` gives :math:`[I_{EE}; r_I]`; two matrix products with
  :math:`W_{EI}` and :math:`W_{div}` then mix :math:`r_I` into every E output, the first
  accumulated in place into :math:`I_{EE}`.
- **partial**: the subtractive mix and :math:`g_E` are folded into the weights, so one
  linear map or convolution with :math:`[\operatorname{diag}(g_E)(W_{EE} - W_{EI} W_{IE});\;
  W_{IE}]` gives the scaled numerator and :math:`r_I`, and only the divisor is mixed
  (:math:`W_{div}\, r_I`).
- **folded**: both mixes are folded: two linear maps or convolutions, with
  :math:`\operatorname{diag}(g_E)(W_{EE} - W_{EI} W_{IE})` and :math:`W_{div} W_{IE}`,
  give the scaled numerator and the divisor, each in a buffer of the layer's output size.

A mix costs :math:`n_E n_I` multiply-adds per output position (per *row*); folding it
costs :math:`n_E n_I d` per step for the fan-in :math:`d`, and the folded order drives
:math:`2 n_E` rather than :math:`n_E + n_I` outputs. :func:`choose_order` counts the
multiply-adds of a whole training step (forward and backward) and takes the cheapest:
folded for a small fan-in with many rows (a first convolution on images), partial when
the rows outnumber the fan-in (early convolutions, large batches), mixed otherwise.
With :math:`g_E` in the weights, the division makes two passes over the current in the
forward pass and three in the backward pass (one of them the bias gradient's sum),
against three and five on the mixed order.

The products act on rows of channels (:mod:`ei_tutorial.fused_ops`), so a convolution's
channels-last output is used without a permuted copy. The stabilisation and the quotient
are computed in place, and the backward pass writes the gradient of the drive into the
buffer that the drive's own backward pass consumes.

Memory kept for the backward pass: per E output, the quotient and one more value
(``g_E / divisor`` on the mixed order, the stabilised divisor otherwise), and on the mixed
and partial orders :math:`r_I` as well (a quarter of a value per E output when
``ei_ratio`` is 4). Like a linear layer or convolution, the function also keeps the input
and the weights of the drive.

Cost: the drive has :math:`n_E + n_I` outputs where a layer with batch normalization has
:math:`n_E`, so an E-I convolution's training step does at least 1.25 times the
multiply-adds of the convolution it replaces when ``ei_ratio`` is 4; the mixes and the
division add to that.

Host-device synchronisation: none on a GPU. On the CPU the stabilisation first reads the
divisor's minimum on the host and skips its remaining passes when no value is zero.

Under autocast the drive runs in the autocast dtype and everything after it in the
parameters' dtype (float32), as on the reference path. Double backward is not supported.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ei_tutorial.fused_ops import (
    ConvGeometry,
    as_matrix,
    current_shape,
    divide_backward,
    divide_forward,
    divide_scaled_backward,
    divide_scaled_forward,
    drive,
    drive_backward,
    from_matrix,
    output_rows,
    rows_of,
    stacked_view,
)

__all__ = ["ORDERS", "EICircuitFunction", "choose_order", "ei_circuit", "order_costs"]

#: The orders of :class:`EICircuitFunction`, from least to most folded.
ORDERS = ("mixed", "partial", "folded")


def order_costs(
    n_e: int, n_i: int, fan_in: int, rows: int, input_grad: bool = True, backward: bool = True
) -> dict[str, int]:
    """Return the multiply-adds of one step in each order: forward, and backward when ``backward``.

    The drive costs ``rows * outputs * fan_in`` in the forward pass and as much again for
    each of its two gradients (the input's only when ``input_grad``). A mix applied to the
    rows costs ``rows * n_e * n_i`` in the forward pass and twice that in the backward
    pass. A mix folded into the weights costs ``fan_in * n_e * n_i`` instead, also once
    forward and twice backward.
    """
    drive_passes = 1 + backward + (backward and input_grad)
    mix_passes = 1 + 2 * backward
    narrow = drive_passes * rows * (n_e + n_i) * fan_in
    mix_rows = mix_passes * rows * n_e * n_i
    mix_weights = mix_passes * fan_in * n_e * n_i
    return {
        "mixed": narrow + 2 * mix_rows,
        "partial": narrow + mix_rows + mix_weights,
        "folded": drive_passes * rows * 2 * n_e * fan_in + 2 * mix_weights,
    }


def choose_order(
    n_e: int, n_i: int, fan_in: int, rows: int, input_grad: bool = True, backward: bool = True
) -> str:
    """Return the order with the fewest multiply-adds (:func:`order_costs`); ties go to the less folded."""
    costs = order_costs(n_e, n_i, fan_in, rows, input_grad, backward)
    return min(ORDERS, key=costs.__getitem__)


# --- composite weights of the partial and folded orders --------------------------------


def _composite(
    order: str, weight_ee: Tensor, weight_ie: Tensor, weight_ei: Tensor, weight_div: Tensor, gain_e: Tensor,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Return the drive's stacked weights of the partial or folded order, and ``W_num``.

    ``W_num = W_EE - W_EI W_IE`` as a matrix (:func:`~ei_tutorial.fused_ops.as_matrix`),
    and the drive's weights ``[diag(g_E) W_num; W_IE]`` (partial) or
    ``[diag(g_E) W_num; W_div W_IE]`` (folded) in ``dtype``, kernels channels-last. Both
    are computed in the parameters' dtype.
    """
    n_e, n_i = weight_ei.shape
    flat_ie = as_matrix(weight_ie).to(weight_ei.dtype)
    weight_num = torch.addmm(as_matrix(weight_ee).to(weight_ei.dtype), weight_ei, flat_ie, alpha=-1.0)
    lower = n_i if order == "partial" else n_e
    flat = flat_ie.new_empty(n_e + lower, flat_ie.shape[1])
    torch.mul(weight_num, gain_e[:, None], out=flat[:n_e])
    if order == "partial":
        flat[n_e:].copy_(flat_ie)
    else:
        torch.mm(weight_div, flat_ie, out=flat[n_e:])
    return from_matrix(flat.to(dtype), torch.Size((n_e + lower, *weight_ee.shape[1:]))), weight_num


def _unscale_numerator(
    grad_upper: Tensor, weight_num: Tensor, gain_e: Tensor, needs_gain_e: bool
) -> tuple[Tensor, Optional[Tensor]]:
    """Split the gradient of the drive's block ``diag(g_E) W_num`` into the gradients of ``W_num`` and ``g_E``."""
    grad_scaled = as_matrix(grad_upper).to(weight_num.dtype)
    grad_gain_e = (grad_scaled * weight_num).sum(1) if needs_gain_e else None
    return grad_scaled * gain_e[:, None], grad_gain_e


def _mix_grads(
    grad_sub: Optional[Tensor], outer_div: Tensor, weight_ei: Tensor, gain_i: Tensor, needs: tuple[bool, ...]
) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """Return the gradients of ``W_EI`` and ``g_I`` (None where not needed) from those of the two mixes.

    ``grad_sub`` is ``-dL/dW_EI`` through the subtractive mix (used only when ``W_EI``
    needs a gradient) and ``outer_div`` is ``-dL/dW_div`` with ``W_div = W_EI diag(g_I)``.
    """
    grad_weight_ei = grad_sub.add_(outer_div * gain_i).neg_() if needs[3] else None
    grad_gain_i = (outer_div * weight_ei).sum(0).neg_() if needs[4] else None
    return grad_weight_ei, grad_gain_i


def _partial_weight_grads(
    grad_num: Tensor, grad_lower: Tensor, weight_ee: Tensor, weight_ie: Tensor, weight_ei: Tensor,
    gain_i: Tensor, outer_div: Optional[Tensor], needs: tuple[bool, ...],
) -> tuple[Optional[Tensor], ...]:
    """Chain the gradients of ``W_num = W_EE - W_EI W_IE``, of the drive's ``W_IE`` block and of the divisor's mix.

    ``grad_num`` is ``dL/dW_num`` as a matrix, ``grad_lower`` the gradient of the drive's
    ``W_IE`` block, and ``outer_div`` is ``-dL/dW_div`` with ``W_div = W_EI diag(g_I)``.
    Returns the gradients of ``W_EE``, ``W_IE``, ``W_EI`` and ``g_I``.
    """
    grad_w_ee = from_matrix(grad_num, weight_ee.shape) if needs[1] else None
    grad_w_ie = None
    if needs[2]:
        grad_direct = as_matrix(grad_lower).to(weight_ei.dtype)
        grad_w_ie = from_matrix(torch.addmm(grad_direct, weight_ei.t(), grad_num, alpha=-1.0), weight_ie.shape)
    grad_sub = torch.mm(grad_num, as_matrix(weight_ie).to(weight_ei.dtype).t()) if needs[3] else None
    return grad_w_ee, grad_w_ie, *_mix_grads(grad_sub, outer_div, weight_ei, gain_i, needs)


def _folded_weight_grads(
    grad_num: Tensor, grad_lower: Tensor, weight_ee: Tensor, weight_ie: Tensor, weight_ei: Tensor,
    gain_i: Tensor, weight_div: Tensor, needs: tuple[bool, ...],
) -> tuple[Optional[Tensor], ...]:
    """Chain the gradients of the folded drive's weights to ``W_EE``, ``W_IE``, ``W_EI`` and ``g_I``.

    The drive used ``[diag(g_E) W_num; -W_div W_IE]`` with ``W_num = W_EE - W_EI W_IE``
    and received ``[dL/dnumerator, -dL/ddivisor]``, so its lower block's gradient
    ``grad_lower`` is ``-dL/d(W_div W_IE)``; ``grad_num`` is ``dL/dW_num`` as a matrix.
    """
    neg_grad_div = as_matrix(grad_lower).to(weight_ei.dtype)
    flat_ie = as_matrix(weight_ie).to(weight_ei.dtype)
    grad_w_ee = from_matrix(grad_num, weight_ee.shape) if needs[1] else None
    grad_w_ie = None
    if needs[2]:
        grad_w_ie = torch.mm(weight_ei.t(), grad_num).addmm_(weight_div.t(), neg_grad_div).neg_()
        grad_w_ie = from_matrix(grad_w_ie, weight_ie.shape)
    outer_div = neg_grad_div @ flat_ie.t()
    grad_sub = torch.mm(grad_num, flat_ie.t()) if needs[3] else None
    return grad_w_ee, grad_w_ie, *_mix_grads(grad_sub, outer_div, weight_ei, gain_i, needs)


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
    grad_sub = torch.mm(grad_numerator.t(), rate_i) if needs[3] else None
    return _mix_grads(grad_sub, outer_div, weight_ei, gain_i, needs)


# --- the autograd function -----------------------------------------------------------


class EICircuitFunction(torch.autograd.Function):
    """Fused divisive E-I layer (subtractive and divisive, stabilised, straight-through).

    Inputs:

    - ``x``: ``[..., d]`` for a linear layer, ``[N, C, H, W]`` for a convolution;
    - ``weight_ee`` ``[n_E, ...]`` and ``weight_ie`` ``[n_I, ...]``: matrices or kernels;
    - ``weight_ei`` ``[n_E, n_I]``, already multiplied by the inhibition scale;
    - ``gain_i`` ``[n_I]``, ``gain_e`` ``[n_E]`` and ``bias`` ``[n_E]`` or None;
    - ``conv``: ``(stride, padding)`` of a convolution, or None for a linear layer;
    - ``order``: one of :data:`ORDERS` (see the module docstring);
    - ``stacked``: ``[W_EE; W_IE]`` as one tensor that aliases both kernels (see
      :func:`~ei_tutorial.fused_ops.stacked_view`), or None to stack them by copying.
      Only the mixed order of a convolution uses it.

    A sample for the stabilisation is a row of ``x`` for a linear layer and an image for
    a convolution.

    Outputs: the current (``[..., n_E]``, or ``[N, n_E, H', W']`` in channels-last memory
    order), then tensors kept for the backward pass and marked non-differentiable (the
    last is None on the mixed order).
    """

    @staticmethod
    def forward(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, order, stacked):
        n_e = weight_ee.shape[0]
        weight_div = weight_ei * gain_i
        if order == "mixed":
            composite = weight_num = None
            rows, shape = drive(x, (weight_ee, weight_ie), conv, stacked)
        elif order == "partial":
            composite, weight_num = _composite(order, weight_ee, weight_ie, weight_ei, weight_div, gain_e, x.dtype)
            rows, shape = drive(x, (composite,), conv, composite)
        else:
            # Two drives of n_E outputs each, so that no buffer is wider than the layer's output.
            composite, weight_num = _composite(order, weight_ee, weight_ie, weight_ei, weight_div, gain_e, x.dtype)
            upper, lower = composite[:n_e], composite[n_e:]
            rows, shape = drive(x, (upper,), conv, upper)
            divisor = drive(x, (lower,), conv, lower)[0].to(weight_ei.dtype)
            # The backward pass feeds the drive -dL/ddivisor, so it needs -W_div W_IE there.
            lower.neg_()
        rows = rows.to(weight_ei.dtype)
        numerator = rows[:, :n_e]
        if order != "folded":
            rate_i = rows[:, n_e:]
            if order == "mixed":
                numerator.addmm_(rate_i, weight_ei.t(), alpha=-1.0)
            divisor = torch.mm(rate_i, weight_div.t())
        rows_per_sample = 1 if conv is None else shape[1] * shape[2]
        if order == "mixed":
            current = divide_forward(numerator, divisor, gain_e, bias, rows_per_sample)
        else:
            # The drive's numerator already carries g_E.
            current = divide_scaled_forward(numerator, divisor, bias, rows_per_sample)
        # rows now contains [quotient | r_I] (mixed, partial) or the quotient (folded), and
        # divisor contains g_E / divisor (mixed) or the stabilised divisor (partial, folded).
        return current_shape(shape, conv, n_e)(current), rows, divisor, composite, weight_num

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, _, conv, order, stacked = inputs
        current, rows, divisor, composite, weight_num = output
        # The mixed order keeps its parameters rather than a stacked copy of them; the
        # others keep their composite weights.
        stacked = stacked if order == "mixed" else None
        ctx.save_for_backward(
            x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, rows, divisor, composite, weight_num, stacked
        )
        ctx.mark_non_differentiable(rows, divisor, *(t for t in (composite, weight_num) if t is not None))
        # The extra outputs get no gradient, so autograd need not fill zero tensors for them.
        ctx.set_materialize_grads(False)
        ctx.conv, ctx.order = conv, order
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
        x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, rows, divisor, composite, weight_num, stacked = (
            ctx.saved_tensors
        )
        n_e, needs = weight_ei.shape[0], ctx.needs_input_grad
        weight_div = weight_ei * gain_i
        if ctx.order == "mixed":
            grad_rows = torch.empty_like(rows)
            grad_numerator, neg_grad_divisor, grad_gain_e, grad_bias = divide_backward(
                rows_of(grad_out, ctx.conv), rows[:, :n_e], divisor, grad_rows[:, :n_e], needs[5], needs[6]
            )
            grad_weight_ei, grad_gain_i = _mixed_mix_grads(
                grad_rows, grad_numerator, neg_grad_divisor, rows[:, n_e:], weight_ei, gain_i, weight_div, needs
            )
            grad_x, (grad_w_ee, grad_w_ie) = drive_backward(
                grad_rows, x, (weight_ee, weight_ie), ctx.conv, ctx.drive_shape, needs[0], needs[1] or needs[2],
                stacked,
            )
            return grad_x, grad_w_ee, grad_w_ie, grad_weight_ei, grad_gain_i, grad_gain_e, grad_bias, None, None, None
        return _backward_through_composite(
            ctx, grad_out, x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, rows, divisor, composite,
            weight_num, weight_div,
        )


def _backward_through_composite(
    ctx, grad_out, x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, rows, divisor, composite, weight_num,
    weight_div,
) -> tuple[Optional[Tensor], ...]:
    """Backward pass of :class:`EICircuitFunction` on the partial and folded orders."""
    n_e, needs, partial = weight_ei.shape[0], ctx.needs_input_grad, ctx.order == "partial"
    # The partial order's drive gets [dL/dnumerator | dL/dr_I] in one buffer.
    grad_rows = torch.empty_like(rows) if partial else None
    grad_numerator, neg_grad_divisor, grad_bias = divide_scaled_backward(
        rows_of(grad_out, ctx.conv), rows[:, :n_e], divisor, None if grad_rows is None else grad_rows[:, :n_e],
        needs[6],
    )
    outer_div = None
    if partial:
        # dL/dr_I = (dL/ddivisor) W_div, written where the drive's backward pass reads it.
        torch.mm(neg_grad_divisor, -weight_div, out=grad_rows[:, n_e:])
        if needs[3] or needs[4]:
            outer_div = torch.mm(neg_grad_divisor.t(), rows[:, n_e:])
        needs_weights = any(needs[1:4]) or needs[5]
        grad_x, (grad_composite,) = drive_backward(
            grad_rows, x, (composite,), ctx.conv, ctx.drive_shape, needs[0], needs_weights, composite
        )
        grad_upper = grad_lower = None
        if grad_composite is not None:
            grad_upper, grad_lower = grad_composite[:n_e], grad_composite[n_e:]
    else:
        needs_weights = any(needs[1:6])
        upper, lower = composite[:n_e], composite[n_e:]
        grad_x, (grad_upper,) = drive_backward(
            grad_numerator, x, (upper,), ctx.conv, ctx.drive_shape, needs[0], needs_weights, upper
        )
        grad_x_lower, (grad_lower,) = drive_backward(
            neg_grad_divisor, x, (lower,), ctx.conv, ctx.drive_shape, needs[0], needs_weights, lower
        )
        grad_x = None if grad_x is None else grad_x.add_(grad_x_lower)
    grads, grad_gain_e = (None,) * 4, None
    if grad_upper is not None:
        grad_num, grad_gain_e = _unscale_numerator(grad_upper, weight_num, gain_e, needs[5])
        weights = (weight_ee, weight_ie, weight_ei, gain_i)
        if partial:
            grads = _partial_weight_grads(grad_num, grad_lower, *weights, outer_div, needs)
        else:
            grads = _folded_weight_grads(grad_num, grad_lower, *weights, weight_div, needs)
    elif outer_div is not None:
        # Only g_I needs a gradient, and the divisor's mix gives it without the drive.
        grads = (None, None, *_mix_grads(None, outer_div, weight_ei, gain_i, needs))
    return grad_x, *grads, grad_gain_e, grad_bias, None, None, None


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
    order: Optional[str] = None,
) -> Tensor:
    """Compute the current of a divisive E-I layer with :class:`EICircuitFunction`.

    Args:
        x: Input ``[..., d]`` (linear) or ``[N, C, H, W]`` (convolution, converted to
            channels-last memory order first, which is free when it already is).
        weight_ee: ``W_EE``, a matrix ``[n_E, d]`` or kernels ``[n_E, C, kh, kw]``.
        weight_ie: ``W_IE``, a matrix ``[n_I, d]`` or kernels ``[n_I, C, kh, kw]``.
        weight_ei: ``W_EI`` ``[n_E, n_I]``, already multiplied by the inhibition scale.
        gain_i: ``g_I`` ``[n_I]``.
        gain_e: ``g_E`` ``[n_E]``.
        bias: ``b_E`` ``[n_E]``, or None.
        conv: ``(stride, padding)`` pairs for a convolution; None for a linear layer.
        order: ``"mixed"``, ``"partial"`` or ``"folded"``; None picks the one with the
            fewest multiply-adds for this input (:func:`choose_order`), so the order, and
            with it the rounding, can differ between batch sizes and between training
            and inference.

    Returns:
        The current into the E neurons.

    Raises:
        ValueError: If ``order`` is neither None nor one of :data:`ORDERS`.
    """
    n_e, n_i = weight_ee.shape[0], weight_ie.shape[0]
    if order is None:
        params = (weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias)
        backward = torch.is_grad_enabled() and (
            x.requires_grad or any(p is not None and p.requires_grad for p in params)
        )
        rows = output_rows(x, weight_ee.shape[1:], conv)
        order = choose_order(n_e, n_i, weight_ee[0].numel(), rows, x.requires_grad, backward)
    elif order not in ORDERS:
        raise ValueError(f"order must be None or one of {', '.join(map(repr, ORDERS))}, got {order!r}")
    if conv is not None:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = _drive_dtype(x)
    if dtype is None:
        stacked = stacked_view(weight_ee, weight_ie) if conv is not None and order == "mixed" else None
        return EICircuitFunction.apply(
            x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, order, stacked
        )[0]
    # Autocast: the drive in the autocast dtype, the division in the parameters' dtype.
    # The partial and folded orders build their drive's weights in the parameters' dtype
    # and cast them.
    x = x.to(dtype)
    if order == "mixed":
        weight_ee, weight_ie = weight_ee.to(dtype), weight_ie.to(dtype)
    with torch.autocast(x.device.type, enabled=False):
        return EICircuitFunction.apply(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, order, None)[0]
