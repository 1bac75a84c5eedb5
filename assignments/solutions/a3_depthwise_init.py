r"""Assignment 3: E-I Init for a depthwise E-I convolution.

A depthwise convolution filters every channel on its own (the first half of a
depthwise-separable convolution). Its E-I
version, :class:`EIDepthwiseConv2d`, has one E channel per input channel and one I
channel per group of ``ei_ratio`` input channels:

- E channel :math:`c` receives only input channel :math:`c`, through a ``kh x kw`` kernel
  of :math:`W_{EE}`, so its fan-in is :math:`d_E = kh \cdot kw`.
- I channel :math:`k` receives the ``ei_ratio`` input channels of its group, through
  kernels of :math:`W_{IE}`, so its fan-in is :math:`d_I = \text{ei\_ratio} \cdot kh \cdot kw`.
- :math:`W_{EI}` mixes all I channels into every E channel at each position, and the
  current is the library's :math:`I = g_E (I_{EE} - I_{sub}) / I_{div} + b_E`.

The library's E-I Init (:mod:`ei_tutorial.ei_init`) assumes that E and I neurons share
one fan-in :math:`d`. Here they do not. Your initialisation must still give

- **balance**: :math:`E[I_{sub}] = E[I_{EE}]` for every input with mean :math:`E[x]`, so
  the current has mean near 0, and
- **gain control**: :math:`E[I_{div}]` equal to what the library would use for a layer
  of fan-in :math:`d_E`, so the current has standard deviation near
  :math:`\sqrt{E[x^2] / (E[x^2] + Var[x])}`, as the library's layers do.

Hint: with exponential weights of mean :math:`\lambda`, a neuron with fan-in :math:`d`
has mean input :math:`d \lambda E[x]`.

What to write (the starter raises ``NotImplementedError`` in each part):

1. :func:`depthwise_fan_ins`, the fan-ins :math:`d_E` and :math:`d_I`.
2. :func:`depthwise_init_values`, the E-I Init values for this layer.
3. :meth:`EIDepthwiseConv2d.init_from_statistics_`, which sets the parameters in place.

The layer itself (its forward pass, :meth:`~EIDepthwiseConv2d.input_statistics` and
:meth:`~EIDepthwiseConv2d.constrained_parameters`) is given. Because it has
``input_statistics`` and ``init_from_statistics_``, :func:`ei_tutorial.ei_init_`
initialises it inside any model, and because it has ``constrained_parameters``,
:func:`ei_tutorial.attach_dale_projection` keeps its signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ei_tutorial import InputStatistics
from ei_tutorial.ei_init import check_statistics
from ei_tutorial.ei_prop import ei_divide, scale_grad
from ei_tutorial.validation import check_ei_input

# Bernoulli spikes at a 20% rate: the statistics assumed until ei_init_ measures real input.
DEFAULT_INPUT_STATISTICS = InputStatistics(mean=0.2, var=0.16, mean_sq=0.2)


def depthwise_fan_ins(kernel_size: int | tuple[int, int], ei_ratio: int) -> tuple[int, int]:
    """Return ``(fan_in_e, fan_in_i)``, the fan-ins of the E and I neurons of the layer.

    Args:
        kernel_size: ``k`` or ``(kh, kw)``.
        ei_ratio: Input channels per I channel.
    """
    # BEGIN SOLUTION A3 part 1: depthwise_fan_ins
    kh, kw = _pair(kernel_size)
    return kh * kw, ei_ratio * kh * kw
    # END SOLUTION


@dataclass(frozen=True)
class DepthwiseInitValues:
    """The E-I Init values of one :class:`EIDepthwiseConv2d`.

    Attributes:
        scale_e: Mean (and standard deviation) of the exponential weights :math:`W_{EE}`.
        scale_i: Mean (and standard deviation) of the exponential weights :math:`W_{IE}`.
        weight_ei: The value of every entry of :math:`W_{EI}`.
        gain_i: The value of every entry of :math:`g_I`.
    """

    scale_e: float
    scale_i: float
    weight_ei: float
    gain_i: float


def depthwise_init_values(stats: InputStatistics, fan_in_e: int, fan_in_i: int, n_i: int) -> DepthwiseInitValues:
    """Compute the E-I Init values of a depthwise E-I layer from its input statistics.

    Args:
        stats: Statistics of the layer's input.
        fan_in_e: Fan-in :math:`d_E` of an E neuron.
        fan_in_i: Fan-in :math:`d_I` of an I neuron.
        n_i: Number of I channels :math:`n_I`.

    Returns:
        The values that give balance and gain control (see the module docstring).
    """
    # BEGIN SOLUTION A3 part 2: depthwise_init_values
    scale_e = stats.weight_scale(fan_in_e)
    # E[r_I] = d_I scale_i E[x] must equal E[I_EE] = d_E scale_e E[x], because the rows
    # of W_EI sum to one and so E[I_sub] = E[r_I].
    scale_i = scale_e * fan_in_e / fan_in_i
    # E[I_div] = g_I E[r_I] = g_I d_E scale_e E[x]: the library's value for fan-in d_E.
    return DepthwiseInitValues(scale_e, scale_i, 1.0 / n_i, stats.inhibitory_gain(fan_in_e))
    # END SOLUTION


class EIDepthwiseConv2d(nn.Module):
    """Depthwise E-I convolution: per-channel excitation, inhibition pooled over channel groups.

    Args:
        channels: Input channels :math:`C`, which is also the number of E channels.
        kernel_size, stride, padding: As in ``nn.Conv2d`` (integer or pair).
        ei_ratio: Input channels per I channel; must divide ``channels``. Default 4.
        bias: Learn the bias :math:`b_E`. Default True.
        inhibition_scale: Multiplies :math:`W_{EI}` in both inhibition paths. Default 1.
        scale_ei_grad: Divide the gradient of :math:`W_{EI}` by :math:`d_E`. Default True.

    Shape:
        - Input: ``[T, B, C, H, W]`` or ``[N, C, H, W]``, non-negative.
        - Output: ``[T, B, C, H', W']`` or ``[N, C, H', W']``, the current into the E
          neurons, with ``H'`` and ``W'`` as for ``nn.Conv2d``.

    Raises:
        ValueError: If ``ei_ratio`` does not divide ``channels``, or on an input of the
            wrong shape or with negative, NaN or infinite values (checked on CPU tensors).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        ei_ratio: int = 4,
        bias: bool = True,
        *,
        inhibition_scale: float = 1.0,
        scale_ei_grad: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(ei_ratio, int) or ei_ratio < 1 or channels % ei_ratio:
            raise ValueError(
                f"ei_ratio must be a positive integer that divides channels={channels}, got {ei_ratio!r}"
            )
        self.channels = channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.ei_ratio = ei_ratio
        self.n_e = channels
        self.n_i = channels // ei_ratio
        self.inhibition_scale = float(inhibition_scale)
        self.scale_ei_grad = scale_ei_grad
        self.fan_in_e, self.fan_in_i = depthwise_fan_ins(self.kernel_size, ei_ratio)
        self.weight_ee = nn.Parameter(torch.empty(channels, 1, *self.kernel_size))
        self.weight_ie = nn.Parameter(torch.empty(self.n_i, ei_ratio, *self.kernel_size))
        self.weight_ei = nn.Parameter(torch.empty(self.n_e, self.n_i))
        self.gain_e = nn.Parameter(torch.empty(self.n_e))
        self.gain_i = nn.Parameter(torch.empty(self.n_i))
        self.bias = nn.Parameter(torch.empty(self.n_e)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise for Bernoulli spike inputs at a 20% rate."""
        self.init_from_statistics_(DEFAULT_INPUT_STATISTICS)

    @torch.no_grad()
    def init_from_statistics_(self, stats: InputStatistics, generator: Optional[torch.Generator] = None) -> None:
        """Set every parameter in place by E-I Init from the statistics of the input.

        Draws :math:`W_{EE}` and :math:`W_{IE}` from exponential distributions (with
        ``generator``), and sets :math:`W_{EI}`, :math:`g_I`, :math:`g_E = 1` and
        :math:`b_E = 0`.

        Raises:
            ValueError: If ``stats`` has a non-positive mean or variance.
        """
        # BEGIN SOLUTION A3 part 3: EIDepthwiseConv2d.init_from_statistics_
        check_statistics(stats, type(self).__name__)
        values = depthwise_init_values(stats, self.fan_in_e, self.fan_in_i, self.n_i)
        self.weight_ee.exponential_(1.0 / values.scale_e, generator=generator)
        self.weight_ie.exponential_(1.0 / values.scale_i, generator=generator)
        self.weight_ei.fill_(values.weight_ei)
        self.gain_i.fill_(values.gain_i)
        self.gain_e.fill_(1.0)
        if self.bias is not None:
            self.bias.zero_()
        # END SOLUTION

    def input_statistics(self, x: Tensor) -> InputStatistics:
        """Measure :math:`E[x]`, :math:`Var[x]` and :math:`E[x^2]`; time steps count as samples."""
        return InputStatistics.from_features(x.reshape(-1, x.shape[-3] * x.shape[-2] * x.shape[-1]))

    def constrained_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Yield ``(name, parameter)`` for each parameter that Dale's law keeps >= 0."""
        for name in ("weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i"):
            yield name, getattr(self, name)

    def components(self, x: Tensor) -> dict[str, Tensor]:
        """Return the parts of the circuit for input ``x``: ``i_ee``, ``r_i``, ``i_sub`` and ``i_div``.

        Each is ``[N, channels, H', W']`` (``r_i`` has ``n_i`` channels), with time folded
        into ``N`` for a 5-D input.
        """
        check_ei_input(x, self)
        if x.dim() not in (4, 5) or x.shape[-3] != self.channels:
            raise ValueError(
                f"EIDepthwiseConv2d expects input [T, B, {self.channels}, H, W] or "
                f"[N, {self.channels}, H, W], got shape {tuple(x.shape)}"
            )
        x = x.flatten(0, 1) if x.dim() == 5 else x
        conv = dict(stride=self.stride, padding=self.padding)
        i_ee = F.conv2d(x, self.weight_ee, groups=self.channels, **conv)
        r_i = F.conv2d(x, self.weight_ie, groups=self.n_i, **conv)
        weight_ei = self.weight_ei * self.inhibition_scale
        if self.scale_ei_grad:
            weight_ei = scale_grad(weight_ei, 1.0 / self.fan_in_e)
        weight_ei = weight_ei[:, :, None, None]
        i_sub = F.conv2d(r_i, weight_ei)
        i_div = F.conv2d(r_i * self.gain_i.view(-1, 1, 1), weight_ei)
        return {"i_ee": i_ee, "r_i": r_i, "i_sub": i_sub, "i_div": i_div}

    def forward(self, x: Tensor) -> Tensor:
        parts = self.components(x)
        gain = self.gain_e.view(-1, 1, 1)
        bias = self.bias.view(-1, 1, 1) if self.bias is not None else torch.zeros_like(gain)
        current = ei_divide(parts["i_ee"] - parts["i_sub"], parts["i_div"], gain, bias, (1, 2, 3))
        return current.unflatten(0, x.shape[:2]) if x.dim() == 5 else current

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ei_ratio={self.ei_ratio}, n_i={self.n_i}, bias={self.bias is not None}"
        )
