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

Memory saved for the backward pass, per E output: the quotient and ``g_E / divisor``,
plus :math:`r_I` on the mixed order (a quarter of a value when ``ei_ratio`` is 4), and the
input and weights of the drive, as a linear layer or convolution saves them.

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

# (stride, padding) of a convolution; None for a linear map.
ConvGeometry = Optional[tuple[tuple[int, int], tuple[int, int]]]


def prefers_folded(n_e: int, n_i: int, fan_in: int) -> bool:
    """Return True if the folded order needs no more multiply-adds per output position than the mixed one."""
    return 2 * n_e * fan_in <= (n_e + n_i) * fan_in + 2 * n_e * n_i


# --- the division, shared by both orders ---------------------------------------------


def _all_positive_on_host(values: Tensor) -> bool:
    """Return True if ``values`` is a CPU tensor whose values are all > 0.

    One read-only pass, which spares the four passes of the stabilisation when no value
    is zero (the common case past the first layers). Reading the minimum on the host
    would stall a GPU, and a traced graph cannot branch on it, so on other devices and
    under ``torch.compile`` this returns False and the stabilisation always runs.
    """
    if values.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    return bool(values.amin() > 0)


def _stabilise_(divisor: Tensor, rows_per_sample: int) -> None:
    """Replace each exact zero of ``divisor`` ``[rows, n_E]`` by its sample's smallest non-zero value, in place.

    A sample is ``rows_per_sample`` consecutive rows; ``divisor`` may be a column slice
    of a wider buffer. A sample without a non-zero value gets ``+inf``, so its quotient
    is zero and its current is the bias.
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


def _drive(x: Tensor, weight: Tensor, conv: ConvGeometry) -> tuple[Tensor, tuple[int, ...]]:
    """Apply ``weight`` to ``x``; return the output as rows ``[rows, out_channels]`` and its shape.

    The rows are a view of a channels-last convolution output; for any other memory
    format the reshape copies.
    """
    if conv is None:
        rows = torch.mm(x.reshape(-1, x.shape[-1]), weight.t())
        return rows, (*x.shape[:-1], weight.shape[0])
    out = F.conv2d(x, weight, stride=conv[0], padding=conv[1])
    batch, channels, height, width = out.shape
    return out.permute(0, 2, 3, 1).reshape(-1, channels), (batch, height, width, channels)


def _drive_backward(
    grad_rows: Tensor, x: Tensor, weight: Tensor, conv: ConvGeometry, shape: tuple[int, ...],
    needs_x: bool, needs_weight: bool,
) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """Return the gradients of :func:`_drive`'s ``x`` and ``weight`` (None where not needed)."""
    grad_rows = grad_rows.to(x.dtype)
    if conv is None:
        grad_x = torch.mm(grad_rows, weight).view(x.shape) if needs_x else None
        grad_weight = torch.mm(grad_rows.t(), x.reshape(-1, x.shape[-1])) if needs_weight else None
        return grad_x, grad_weight
    grad_out = grad_rows.view(shape).permute(0, 3, 1, 2)
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, conv[0], conv[1], (1, 1), False, (0, 0), 1, (needs_x, needs_weight, False)
    )
    return grad_x, grad_weight


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


# --- the autograd function -----------------------------------------------------------


class EICircuitFunction(torch.autograd.Function):
    """Fused divisive E-I layer (subtractive and divisive, stabilised, straight-through).

    Inputs: ``x`` (``[..., d]`` for a linear layer, ``[N, C, H, W]`` for a convolution),
    ``weight_ee`` ``[n_E, ...]`` and ``weight_ie`` ``[n_I, ...]`` (matrices or kernels),
    ``weight_ei`` ``[n_E, n_I]`` (already multiplied by the inhibition scale), ``gain_i``
    ``[n_I]``, ``gain_e`` ``[n_E]``, ``bias`` ``[n_E]`` or None, ``conv`` (``(stride,
    padding)`` of a convolution, or None for a linear layer) and ``folded`` (the order;
    see the module docstring). A sample for the stabilisation is a row of ``x`` for a
    linear layer and an image for a convolution.

    Outputs: the current (``[..., n_E]``, or ``[N, n_E, H', W']`` in channels-last memory
    order), then three tensors kept for the backward pass and marked non-differentiable.
    """

    @staticmethod
    def forward(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, folded):
        n_e = weight_ee.shape[0]
        weight_div = weight_ei * gain_i
        if folded:
            shape_ie = weight_ie.reshape(weight_ie.shape[0], -1)
            numerator_weight = torch.addmm(weight_ee.reshape(n_e, -1), weight_ei, shape_ie, alpha=-1.0)
            weight = torch.cat([numerator_weight, weight_div @ shape_ie]).view(2 * n_e, *weight_ee.shape[1:])
            memory_format = torch.contiguous_format if conv is None else torch.channels_last
            weight = weight.to(x.dtype, memory_format=memory_format)
        else:
            weight = torch.cat([weight_ee, weight_ie])
        rows, shape = _drive(x, weight, conv)
        rows = rows.to(weight_ei.dtype)
        numerator = rows[:, :n_e]
        if folded:
            divisor = rows[:, n_e:]
            # The backward pass feeds the drive -dL/ddivisor, so it needs -W_div there.
            weight[n_e:].neg_()
        else:
            rate_i = rows[:, n_e:]
            numerator.addmm_(rate_i, weight_ei.t(), alpha=-1.0)
            divisor = torch.mm(rate_i, weight_div.t())
        rows_per_sample = 1 if conv is None else shape[1] * shape[2]
        current = _divide_forward(numerator, divisor, gain_e, bias, rows_per_sample)
        # folded: rows holds [quotient | g_E / divisor]; mixed: [quotient | r_I] and divisor.
        return _current_shape(shape, conv, n_e)(current), rows, divisor, weight

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight_ee, weight_ie, weight_ei, gain_i, _, _, conv, folded = inputs
        current, rows, gain_over_divisor, weight = output
        extra = (weight_ie,) if folded else ()
        ctx.save_for_backward(x, weight, weight_ei, gain_i, rows, gain_over_divisor, *extra)
        ctx.mark_non_differentiable(rows, gain_over_divisor, weight)
        # The extra outputs get no gradient; do not fill zero tensors for them.
        ctx.set_materialize_grads(False)
        ctx.conv, ctx.folded = conv, folded
        ctx.weight_shapes = (weight_ee.shape, weight_ie.shape)
        if conv is None:
            ctx.drive_shape = (*x.shape[:-1], weight.shape[0])
        else:
            batch, _, height, width = current.shape
            ctx.drive_shape = (batch, height, width, weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, _grad_rows, _grad_gain_over_divisor, _grad_weight):
        if grad_out is None:
            return (None,) * 9
        x, weight, weight_ei, gain_i, rows, gain_over_divisor, *extra = ctx.saved_tensors
        shape_ee, shape_ie = ctx.weight_shapes
        n_e, n_i = shape_ee[0], shape_ie[0]
        needs = ctx.needs_input_grad
        grad_current = _rows_of(grad_out, ctx.conv)
        grad_rows = torch.empty_like(rows)
        grad_numerator, neg_grad_divisor, grad_gain_e, grad_bias = _divide_backward(
            grad_current, rows[:, :n_e], gain_over_divisor, grad_rows[:, :n_e],
            grad_rows[:, n_e:] if ctx.folded else None, needs[5], needs[6],
        )
        weight_div = weight_ei * gain_i
        needs_weight = needs[1] or needs[2] or needs[3] or needs[4] if ctx.folded else needs[1] or needs[2]

        if ctx.folded:
            # The drive's weight is [W_EE - W_EI W_IE; -W_div W_IE] and it received
            # [dL/dnumerator, -dL/ddivisor], so its gradient is [dL/dW_num, dL/dW_divisor_rows].
            grad_x, grad_weight = _drive_backward(
                grad_rows, x, weight, ctx.conv, ctx.drive_shape, needs[0], needs_weight
            )
            grad_w_ee = grad_w_ie = grad_weight_ei = grad_gain_i = None
            if needs_weight:
                (weight_ie,) = extra
                flat_ie = weight_ie.reshape(n_i, -1)
                # grad_div_w is minus the gradient of W_div W_IE, because the drive used
                # -W_div W_IE and received -dL/ddivisor.
                grad_weight = grad_weight.reshape(2 * n_e, -1).to(weight_ei.dtype)
                grad_num_w, grad_div_w = grad_weight.split(n_e)
                if needs[1]:
                    grad_w_ee = grad_num_w.reshape(shape_ee)
                if needs[2]:
                    grad_w_ie = torch.mm(weight_ei.t(), grad_num_w).addmm_(weight_div.t(), grad_div_w).neg_()
                    grad_w_ie = grad_w_ie.reshape(shape_ie)
                outer_div = grad_div_w @ flat_ie.t()
                if needs[3]:
                    grad_weight_ei = torch.mm(grad_num_w, flat_ie.t()).add_(outer_div * gain_i).neg_()
                if needs[4]:
                    grad_gain_i = (outer_div * weight_ei).sum(0).neg_()
            return grad_x, grad_w_ee, grad_w_ie, grad_weight_ei, grad_gain_i, grad_gain_e, grad_bias, None, None

        # Mixed order: I_sub = W_EI r_I and I_div = W_div r_I, with r_I kept in rows.
        rate_i = rows[:, n_e:]
        grad_rate_i = torch.mm(grad_numerator, -weight_ei, out=grad_rows[:, n_e:])
        grad_rate_i.addmm_(neg_grad_divisor, weight_div, alpha=-1.0)
        grad_weight_ei = grad_gain_i = None
        if needs[3] or needs[4]:
            # Each product's weight gradient is (gradient of its output)^T r_I over the rows.
            outer_div = torch.mm(neg_grad_divisor.t(), rate_i)
            if needs[3]:
                grad_weight_ei = torch.mm(grad_numerator.t(), rate_i).add_(outer_div * gain_i).neg_()
            if needs[4]:
                grad_gain_i = (outer_div * weight_ei).sum(0).neg_()
        grad_x, grad_weight = _drive_backward(
            grad_rows, x, weight, ctx.conv, ctx.drive_shape, needs[0], needs_weight
        )
        grad_w_ee = grad_w_ie = None
        if needs_weight:
            grad_w_ee, grad_w_ie = grad_weight.split([n_e, n_i])
        return grad_x, grad_w_ee, grad_w_ie, grad_weight_ei, grad_gain_i, grad_gain_e, grad_bias, None, None


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
        return EICircuitFunction.apply(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, folded)[0]
    # Autocast: the drive in the autocast dtype, the division in the parameters' dtype.
    # The folded order builds its drive's weights in the parameters' dtype and casts them.
    x = x.to(dtype)
    if not folded:
        weight_ee, weight_ie = weight_ee.to(dtype), weight_ie.to(dtype)
    with torch.autocast(x.device.type, enabled=False):
        return EICircuitFunction.apply(x, weight_ee, weight_ie, weight_ei, gain_i, gain_e, bias, conv, folded)[0]
