r"""E-I Prop: the division inside an E-I layer, made safe in the forward and backward pass.

An E-I layer divides by its divisive inhibition :math:`I_{div}`, which is exactly zero
wherever no inhibitory neuron receives input (for example, a silent patch of a spike map).
E-I Prop (Liu, Ding and Yu, arXiv:2509.23253) treats the division in three parts:

- **Adaptive stabilisation.** Each zero of :math:`I_{div}` is replaced by the smallest
  non-zero value of :math:`I_{div}` in the same sample (one ``(t, b)`` slice, over all
  channels and positions). A sample without any non-zero value divides by infinity, so
  its current is the bias :math:`b_E` alone. No NaN or inf reaches the output.
- **Straight-through.** The backward pass treats that replacement as the identity, so the
  gradient with respect to :math:`I_{div}` is computed as if the stabilised value had
  been the input.
- **Gradient scaling.** The gradient of :math:`W_{EI}` is divided by the fan-in
  :math:`d` of the layer, because :math:`W_{EI}` receives the summed gradient of every
  output position and channel, whereas :math:`W_{EE}` spreads it over :math:`d` inputs.

The combined operation :math:`I = g_E (I_{EE} - I_{sub}) / I_{div} + b_E` is provided as
one autograd function with an analytic backward (:class:`EIDivide`), and as plain PyTorch
operations (:func:`ei_combine_reference`) that serve as the reference it is tested against.
None of these functions synchronises the host with the device.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def smallest_nonzero(i_div: Tensor, sample_dims: Sequence[int]) -> Tensor:
    """Return the smallest non-zero value of ``i_div`` in each sample, keeping dims.

    Samples with no non-zero value get ``+inf``.
    """
    masked = i_div.masked_fill(i_div == 0, float("inf"))
    return masked.amin(dim=tuple(sample_dims), keepdim=True)


def stabilise_divisor(i_div: Tensor, sample_dims: Sequence[int]) -> Tensor:
    """Replace each exact zero of ``i_div`` by the smallest non-zero value of its sample.

    Gradients flow through :func:`torch.where`, so replaced entries pass no gradient to
    ``i_div`` (the ablation without straight-through). See :class:`EIDivide` for the
    straight-through version.
    """
    return torch.where(i_div == 0, smallest_nonzero(i_div, sample_dims), i_div)


class EIDivide(torch.autograd.Function):
    """Fused ``g_E * num / stabilise(i_div) + b_E`` with a straight-through backward.

    Inputs are ``num = I_EE - I_sub``, the raw divisor ``i_div``, and ``gain_e`` and
    ``bias`` already shaped to broadcast against ``num``. Saves two tensors for backward:
    the stabilised divisor and the quotient ``num / divisor``.
    """

    @staticmethod
    def forward(num: Tensor, i_div: Tensor, gain_e: Tensor, bias: Tensor, sample_dims: tuple[int, ...]):
        divisor = stabilise_divisor(i_div, sample_dims)
        quotient = num / divisor
        return torch.addcmul(bias, gain_e, quotient), divisor, quotient

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, _, gain_e, bias, _ = inputs
        _, divisor, quotient = output
        ctx.save_for_backward(divisor, quotient, gain_e)
        ctx.bias_shape = bias.shape
        ctx.mark_non_differentiable(divisor, quotient)

    @staticmethod
    def backward(ctx, grad_out: Tensor, _grad_divisor: Tensor, _grad_quotient: Tensor):
        divisor, quotient, gain_e = ctx.saved_tensors
        grad_num = grad_i_div = grad_gain = grad_bias = None
        scaled = grad_out * gain_e / divisor
        if ctx.needs_input_grad[0]:
            grad_num = scaled
        if ctx.needs_input_grad[1]:
            # Straight-through: d divisor / d i_div is taken as 1 everywhere.
            grad_i_div = -scaled * quotient
        if ctx.needs_input_grad[2]:
            grad_gain = (grad_out * quotient).sum_to_size(gain_e.shape)
        if ctx.needs_input_grad[3]:
            grad_bias = grad_out.sum_to_size(ctx.bias_shape)
        return grad_num, grad_i_div, grad_gain, grad_bias, None


def ei_divide(num: Tensor, i_div: Tensor, gain_e: Tensor, bias: Tensor, sample_dims: Sequence[int]) -> Tensor:
    """Compute ``g_E * num / stabilise(i_div) + b_E`` with E-I Prop's backward pass.

    Args:
        num: ``I_EE - I_sub``.
        i_div: Divisive inhibition, same shape as ``num``, non-negative.
        gain_e: ``g_E`` shaped to broadcast against ``num``.
        bias: ``b_E`` shaped to broadcast against ``num``.
        sample_dims: The dimensions that make up one sample (all but the batch dims).

    Returns:
        The current into the E neurons, shaped like ``num``.
    """
    out, _, _ = EIDivide.apply(num, i_div, gain_e, bias, tuple(sample_dims))
    return out


def ei_combine_reference(
    num: Tensor,
    i_div: Tensor,
    gain_e: Tensor,
    bias: Tensor,
    sample_dims: Sequence[int],
    *,
    stabilise: bool = True,
    straight_through: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    """Compute the E-I current with plain PyTorch operations.

    The reference for :func:`ei_divide`, and the path for the ablations:
    ``stabilise=False`` divides by ``i_div + eps`` instead, and ``straight_through=False``
    lets the gradient follow :func:`torch.where` (zero for replaced entries).
    """
    if not stabilise:
        divisor = i_div + eps
    elif straight_through:
        divisor = i_div + (stabilise_divisor(i_div.detach(), sample_dims) - i_div.detach())
    else:
        divisor = stabilise_divisor(i_div, sample_dims)
    return gain_e * (num / divisor) + bias


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(x: Tensor, factor: float) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.factor = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.factor, None


def scale_grad(x: Tensor, factor: float) -> Tensor:
    """Return ``x`` unchanged in the forward pass; multiply its gradient by ``factor``."""
    return _ScaleGrad.apply(x, factor)
