r"""Excitatory-inhibitory (E-I) circuit layers: a normalization-free replacement for a
linear or convolutional layer followed by batch normalization.

For a non-negative input :math:`x` (spikes, or pixel intensities in [0, 1]) with fan-in
:math:`d`, a layer with :math:`n_E` excitatory (E) outputs and
:math:`n_I = n_E / \text{ei\_ratio}` inhibitory (I) neurons computes

.. math::

    I_{EE} &= W_{EE}\, x, \qquad r_I = W_{IE}\, x, \\
    I_{sub} &= s\, W_{EI}\, r_I, \qquad I_{div} = s\, W_{EI} (g_I \odot r_I), \\
    I &= g_E \odot \frac{I_{EE} - I_{sub}}{I_{div}} + b_E,

where :math:`W_{EE} \in \mathbb{R}_{\ge 0}^{n_E \times d}` and
:math:`W_{IE} \in \mathbb{R}_{\ge 0}^{n_I \times d}` are dense weights (or convolution
kernels with the same kernel size, stride and padding), :math:`W_{EI} \in
\mathbb{R}_{\ge 0}^{n_E \times n_I}` mixes the I neurons into every E neuron at each
position, :math:`g_I \ge 0` is one gain per I neuron, :math:`g_E \ge 0` one gain per
E neuron, :math:`b_E` an unconstrained bias and :math:`s` the ``inhibition_scale``
(1 by default). The I neurons are fast: their rate :math:`r_I` is their input.

Subtractive inhibition :math:`I_{sub}` controls the mean activity, divisive inhibition
:math:`I_{div}` the gain. The division uses E-I Prop (:mod:`ei_tutorial.ei_prop`). A
readout layer (``readout=True``) returns :math:`I_{EE} - I_{sub} + b_E` without the
division; a network's logits are its time average.

Dale's law: every parameter but :math:`b_E` must stay non-negative; see
:mod:`ei_tutorial.dale`. The layers return currents, not spikes: follow them with
:class:`ei_tutorial.LIF`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ei_tutorial.ei_init import InputStatistics, init_ei_parameters_
from ei_tutorial.ei_prop import ei_combine_reference, ei_divide, scale_grad
from ei_tutorial.fused import ei_circuit
from ei_tutorial.fused_ops import stacked_view
from ei_tutorial.repeats import repeat_first_dim, repeats_first_dim
from ei_tutorial.validation import check_ei_input

# Statistics of Bernoulli spikes at a 20% rate: the default initialisation assumes them
# until ei_init_ measures the real input.
_DEFAULT_SPIKE_RATE = 0.2
DEFAULT_INPUT_STATISTICS = InputStatistics(
    mean=_DEFAULT_SPIKE_RATE,
    var=_DEFAULT_SPIKE_RATE * (1 - _DEFAULT_SPIKE_RATE),
    mean_sq=_DEFAULT_SPIKE_RATE,
)


@dataclass(frozen=True)
class CircuitCurrents:
    """The currents of one forward pass through an E-I layer, all shaped like its output.

    Attributes:
        i_ee: Excitatory drive :math:`I_{EE}`.
        i_sub: Subtractive inhibition :math:`I_{sub}`, as the circuit would subtract it
            (computed even when the layer has ``subtractive=False``).
        i_div: Divisive inhibition :math:`I_{div}` (computed even when the layer does not
            divide).
        current: The layer's output :math:`I`, the current into the E neurons.
        r_i: Rates of the inhibitory neurons :math:`r_I`, shaped like the output but with
            :math:`n_I` channels.
    """

    i_ee: Tensor
    i_sub: Tensor
    i_div: Tensor
    current: Tensor
    r_i: Tensor


class EILayer(nn.Module):
    """Base class of the E-I circuit layers: parameters, constraints and the combination.

    Subclasses provide ``fan_in``, :meth:`_drive` (computing :math:`I_{EE}` and
    :math:`r_I`), :meth:`_mix` (applying :math:`W_{EI}`), :meth:`_check_shape`,
    :meth:`_prepare` and ``_channel_dim``.

    An input that repeats one tensor along its first dimension (stride 0, as
    :func:`ei_tutorial.data.direct_encode` returns) is computed once, and the output is
    that result repeated as a view (:mod:`ei_tutorial.repeats`). Clone it before writing
    to it.

    Attributes:
        n_e: Number of excitatory outputs :math:`n_E`.
        n_i: Number of inhibitory neurons :math:`n_I`.
        fan_in: Fan-in :math:`d` of each E and I neuron.
    """

    _channel_dim: int = -1

    def _setup(
        self,
        n_e: int,
        ei_ratio: int,
        bias: bool,
        readout: bool,
        subtractive: bool,
        divisive: bool,
        inhibition_scale: float,
        stabilise: bool,
        straight_through: bool,
        scale_ei_grad: bool,
        fused: bool,
        eps: float,
    ) -> None:
        if not isinstance(ei_ratio, int) or ei_ratio < 1:
            raise ValueError(f"ei_ratio must be a positive integer, got {ei_ratio!r}")
        if n_e % ei_ratio != 0:
            raise ValueError(
                f"ei_ratio={ei_ratio} does not divide the number of E neurons {n_e}; "
                f"choose an E count that is a multiple of {ei_ratio} or another ratio"
            )
        if not inhibition_scale >= 0:
            raise ValueError(f"inhibition_scale must be >= 0, got {inhibition_scale!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.n_e = n_e
        self.ei_ratio = ei_ratio
        self.n_i = n_e // ei_ratio
        self.readout = readout
        self.subtractive = subtractive
        self.divisive = divisive and not readout
        self.inhibition_scale = float(inhibition_scale)
        self.stabilise = stabilise
        self.straight_through = straight_through
        self.scale_ei_grad = scale_ei_grad
        self.fused = fused
        self.eps = eps
        self.weight_ei = nn.Parameter(torch.empty(self.n_e, self.n_i))
        self.gain_e = nn.Parameter(torch.empty(self.n_e))
        self.gain_i = nn.Parameter(torch.empty(self.n_i))
        self.bias = nn.Parameter(torch.empty(self.n_e)) if bias else None

    def reset_parameters(self) -> None:
        """Initialise as E-I Init would for Bernoulli spike inputs at a 20% rate."""
        self.init_from_statistics_(DEFAULT_INPUT_STATISTICS)

    def init_from_statistics_(
        self, stats: InputStatistics, generator: Optional[torch.Generator] = None
    ) -> None:
        """Set all parameters in place by E-I Init from the statistics of the input."""
        init_ei_parameters_(self, stats, generator=generator)

    def constrained_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Yield ``(name, parameter)`` for each parameter that Dale's law keeps >= 0."""
        for name in ("weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i"):
            yield name, getattr(self, name)

    def input_statistics(self, x: Tensor) -> InputStatistics:
        """Measure :math:`E[x]`, :math:`Var[x]` and :math:`E[x^2]` of an input batch."""
        return InputStatistics.from_features(self._features(x))

    def forward(self, x: Tensor) -> Tensor:
        if repeats_first_dim(x):
            # The same input at every step (direct encoding): one pass, repeated as a view.
            self._check_shape(x)
            return repeat_first_dim(self.forward(x[:1]), x.shape[0])
        x, unfold = self._prepare(x)
        weight_ei = self._mixing_weight()
        if self._takes_fused_path(x):
            return unfold(self._fused_forward(x, weight_ei))
        i_ee, r_i = self._drive(x)
        num = i_ee - self._mix(r_i, weight_ei) if self.subtractive else i_ee
        if self.readout or not self.divisive:
            out = self._broadcast(self.gain_e) * num if not self.readout else num
            out = out + self._broadcast(self.bias) if self.bias is not None else out
            return unfold(out)
        i_div = self._mix(r_i * self._broadcast(self.gain_i), weight_ei)
        return unfold(self._combine(num, i_div))

    def currents(self, x: Tensor) -> CircuitCurrents:
        """Compute the intermediate currents of the circuit for ``x``, and the layer's output.

        :math:`I_{EE}`, :math:`r_I`, :math:`I_{sub}` and :math:`I_{div}` come from the
        plain PyTorch reference path with the weights that :meth:`forward` uses
        (:math:`W_{EI}` times ``inhibition_scale``). ``current`` is ``self(x)``, so it is
        exactly the output of this layer, a subclass's ``forward`` included. A subclass's
        ``forward`` therefore must not call this method. Gradients flow as in the
        reference path, so wrap the call in ``torch.no_grad()`` (as
        :func:`ei_tutorial.analysis.circuit_currents` does) when only measuring.

        Args:
            x: An input of the layer, of the shape :meth:`forward` accepts.

        Returns:
            The :class:`CircuitCurrents`. Each current is shaped like the output, and
            ``r_i`` has :math:`n_I` channels.

        Raises:
            TypeError, ValueError: As :meth:`forward`, on an input that is not a
                floating-point tensor, has the wrong shape, or contains negative, NaN or
                infinite values.
        """
        folded, unfold = self._prepare(x)
        weight_ei = self._mixing_weight()
        i_ee, r_i = self._drive(folded)
        i_sub = self._mix(r_i, weight_ei)
        i_div = self._mix(r_i * self._broadcast(self.gain_i), weight_ei)
        return CircuitCurrents(
            i_ee=unfold(i_ee), i_sub=unfold(i_sub), i_div=unfold(i_div), current=self(x), r_i=unfold(r_i),
        )

    def _mixing_weight(self) -> Tensor:
        """Return :math:`s W_{EI}`, with its gradient divided by the fan-in when ``scale_ei_grad``."""
        weight_ei = self.weight_ei
        if self.inhibition_scale != 1.0:
            weight_ei = weight_ei * self.inhibition_scale
        if self.scale_ei_grad:
            weight_ei = scale_grad(weight_ei, 1.0 / self.fan_in)
        return weight_ei

    def _takes_fused_path(self, x: Tensor) -> bool:
        """Return True if :mod:`ei_tutorial.fused` computes this call.

        The fused functions cover the default circuit (subtractive and divisive, stabilised,
        straight-through) on float32 or float64 inputs, or under autocast. Every other case
        runs the plain PyTorch reference path.
        """
        return (
            self.fused
            and self.subtractive
            and self.divisive
            and self.stabilise
            and self.straight_through
            and (x.dtype in (torch.float32, torch.float64) or torch.is_autocast_enabled(x.device.type))
        )

    def _combine(self, num: Tensor, i_div: Tensor) -> Tensor:
        dtype = torch.promote_types(num.dtype, torch.float32)
        num, i_div = num.to(dtype), i_div.to(dtype)
        gain = self._broadcast(self.gain_e).to(dtype)
        bias = self._broadcast(self.bias).to(dtype) if self.bias is not None else gain.new_zeros(())
        dims = self._sample_dims(num)
        if self.fused and self.stabilise and self.straight_through:
            return ei_divide(num, i_div, gain, bias, dims)
        return ei_combine_reference(
            num, i_div, gain, bias, dims, stabilise=self.stabilise,
            straight_through=self.straight_through, eps=self.eps,
        )

    def _broadcast(self, per_channel: Tensor) -> Tensor:
        """Shape a per-channel vector to broadcast along the channel dimension."""
        if self._channel_dim == -1:
            return per_channel
        return per_channel.view(-1, 1, 1)

    def _extra_flags(self) -> str:
        flags = f"ei_ratio={self.ei_ratio}, n_i={self.n_i}, bias={self.bias is not None}"
        if self.readout:
            flags += ", readout=True"
        for name in ("subtractive", "divisive", "stabilise", "straight_through", "scale_ei_grad"):
            if not getattr(self, name) and not (name == "divisive" and self.readout):
                flags += f", {name}=False"
        if self.inhibition_scale != 1.0:
            flags += f", inhibition_scale={self.inhibition_scale}"
        return flags


class EILinear(EILayer):
    """E-I circuit layer with dense weights; a drop-in for ``nn.Linear`` + normalization.

    Args:
        in_features: Fan-in :math:`d`.
        out_features: Number of E neurons :math:`n_E`.
        ei_ratio: :math:`n_E / n_I`; must divide ``out_features``. Default 4.
        bias: Learn the bias :math:`b_E`. Default True.
        readout: Return :math:`I_{EE} - I_{sub} + b_E` without division (a network's
            last layer, whose time average gives the logits).
        subtractive: Use subtractive inhibition. Default True.
        divisive: Use divisive inhibition. Default True.
        inhibition_scale: Multiplies :math:`W_{EI}` in both inhibition paths. Default 1.
        stabilise: E-I Prop's adaptive stabilisation; when False, divide by
            :math:`I_{div} + \\epsilon`.
        straight_through: Treat the stabilisation as the identity in backward.
        scale_ei_grad: Divide the gradient of :math:`W_{EI}` by the fan-in.
        fused: Compute the default circuit with the fused forward and backward passes of
            :mod:`ei_tutorial.fused`, which give the values of the plain PyTorch
            reference path up to float rounding (so a current within rounding of the
            threshold can spike on one path and not on the other). The default circuit
            is subtractive and divisive, stabilised and straight-through, on float32 or
            float64 inputs or under autocast. Other configurations always take the
            reference path.
        eps: The :math:`\\epsilon` used when ``stabilise`` is False.

    Shape:
        - Input: ``[..., in_features]``, non-negative.
        - Output: ``[..., out_features]``, the current into the E neurons.

    Raises:
        ValueError: If ``ei_ratio`` does not divide ``out_features``, or on inputs of the
            wrong size, negative, NaN or infinite inputs (checked on CPU tensors).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        ei_ratio: int = 4,
        bias: bool = True,
        *,
        readout: bool = False,
        subtractive: bool = True,
        divisive: bool = True,
        inhibition_scale: float = 1.0,
        stabilise: bool = True,
        straight_through: bool = True,
        scale_ei_grad: bool = True,
        fused: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1, got {in_features} and {out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.fan_in = in_features
        self._setup(
            out_features, ei_ratio, bias, readout, subtractive, divisive, inhibition_scale,
            stabilise, straight_through, scale_ei_grad, fused, eps,
        )
        self.weight_ee = nn.Parameter(torch.empty(self.n_e, in_features))
        self.weight_ie = nn.Parameter(torch.empty(self.n_i, in_features))
        self.reset_parameters()

    def _check_shape(self, x: Tensor) -> None:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"EILinear expects input [..., {self.in_features}], got shape {tuple(x.shape)}"
            )

    def _prepare(self, x: Tensor):
        check_ei_input(x, self)
        self._check_shape(x)
        return x, lambda out: out

    def _features(self, x: Tensor) -> Tensor:
        return x.reshape(-1, self.in_features)

    def _drive(self, x: Tensor) -> tuple[Tensor, Tensor]:
        stacked = F.linear(x, torch.cat([self.weight_ee, self.weight_ie]))
        return stacked.split([self.n_e, self.n_i], dim=-1)

    def _mix(self, r_i: Tensor, weight_ei: Tensor) -> Tensor:
        return F.linear(r_i, weight_ei)

    def _fused_forward(self, x: Tensor, weight_ei: Tensor) -> Tensor:
        return ei_circuit(x, self.weight_ee, self.weight_ie, weight_ei, self.gain_i, self.gain_e, self.bias)

    def _sample_dims(self, num: Tensor) -> tuple[int, ...]:
        return (num.dim() - 1,)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " + self._extra_flags()


class EIConv2d(EILayer):
    """E-I circuit layer with convolution kernels; a drop-in for ``nn.Conv2d`` + batch norm.

    :math:`W_{EE}` and :math:`W_{IE}` are kernels ``[n_E, C, kh, kw]`` and
    ``[n_I, C, kh, kw]`` with the same stride and padding; :math:`W_{EI}` is applied
    pointwise at every position. The fan-in is :math:`d = C \\cdot kh \\cdot kw`.

    Args:
        in_channels: Input channels :math:`C`.
        out_channels: Number of E channels :math:`n_E`.
        kernel_size, stride, padding: As in ``nn.Conv2d`` (integer or pair).
        **kwargs: ``ei_ratio``, ``bias``, ``readout``, ``subtractive``, ``divisive``,
            ``inhibition_scale``, ``stabilise``, ``straight_through``, ``scale_ei_grad``,
            ``fused`` and ``eps``, as in :class:`EILinear`.

    Shape:
        - Input: ``[T, B, C, H, W]`` (time is folded into the batch and unfolded again)
          or ``[N, C, H, W]``, non-negative.
        - Output: ``[T, B, n_E, H', W']`` or ``[N, n_E, H', W']``. On the fused path
          the output is channels-last in memory (``torch.channels_last`` strides), which
          the next convolution uses without a copy.

    Raises:
        ValueError: As :class:`EILinear`, and on inputs that are not 4-D or 5-D or whose
            channel count is not ``in_channels``.
    """

    _channel_dim = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        ei_ratio: int = 4,
        bias: bool = True,
        *,
        readout: bool = False,
        subtractive: bool = True,
        divisive: bool = True,
        inhibition_scale: float = 1.0,
        stabilise: bool = True,
        straight_through: bool = True,
        scale_ei_grad: bool = True,
        fused: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        self._setup(
            out_channels, ei_ratio, bias, readout, subtractive, divisive, inhibition_scale,
            stabilise, straight_through, scale_ei_grad, fused, eps,
        )
        self.weight_ee = nn.Parameter(torch.empty(self.n_e, in_channels, *self.kernel_size))
        self.weight_ie = nn.Parameter(torch.empty(self.n_i, in_channels, *self.kernel_size))
        self._share_kernel_storage_()
        self.reset_parameters()

    @torch.no_grad()
    def _share_kernel_storage_(self) -> None:
        """Store W_EE and W_IE as the two halves of one channels-last kernel.

        The fused path then convolves with both without stacking (copying) them in every
        forward and backward pass, and channels-last is the memory format it convolves
        in. Values are kept. Conversions that copy parameters (``.to``, ``.double()``)
        call this again through :meth:`_apply`.
        """
        if stacked_view(self.weight_ee, self.weight_ie) is not None:
            return
        kernels = torch.cat([self.weight_ee, self.weight_ie]).contiguous(memory_format=torch.channels_last)
        self.weight_ee.data = kernels[: self.n_e]
        self.weight_ie.data = kernels[self.n_e :]

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._share_kernel_storage_()
        return self

    def _check_shape(self, x: Tensor) -> None:
        if x.dim() not in (4, 5) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"EIConv2d expects input [T, B, {self.in_channels}, H, W] or "
                f"[N, {self.in_channels}, H, W], got shape {tuple(x.shape)}"
            )

    def _prepare(self, x: Tensor):
        check_ei_input(x, self)
        self._check_shape(x)
        if x.dim() == 4:
            return x, lambda out: out
        t, b = x.shape[:2]
        return x.flatten(0, 1), lambda out: out.unflatten(0, (t, b))

    def _features(self, x: Tensor) -> Tensor:
        return x.reshape(-1, self.in_channels * x.shape[-2] * x.shape[-1])

    def _drive(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weight = torch.cat([self.weight_ee, self.weight_ie])
        stacked = F.conv2d(x, weight, stride=self.stride, padding=self.padding)
        return stacked.split([self.n_e, self.n_i], dim=1)

    def _mix(self, r_i: Tensor, weight_ei: Tensor) -> Tensor:
        return F.conv2d(r_i, weight_ei[:, :, None, None])

    def _fused_forward(self, x: Tensor, weight_ei: Tensor) -> Tensor:
        return ei_circuit(
            x, self.weight_ee, self.weight_ie, weight_ei, self.gain_i, self.gain_e, self.bias,
            conv=(self.stride, self.padding),
        )

    def _sample_dims(self, num: Tensor) -> tuple[int, ...]:
        return (1, 2, 3)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, " + self._extra_flags()
        )
