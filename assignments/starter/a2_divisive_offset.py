r"""Assignment 2: divisive inhibition with a learnable offset, as a variant of the model builder.

The library's E-I layers divide by the divisive inhibition alone. Models of
normalization in cortex add a constant to the divisor, the *semi-saturation constant*
:math:`\sigma` (Carandini and Heeger, Nature Reviews Neuroscience 13, 2012), so that
weak inhibition cannot blow up the gain. This assignment makes that constant a learned,
non-negative parameter with one entry per E neuron:

.. math::

    I = g_E \odot \frac{I_{EE} - I_{sub}}{I_{div} + \sigma} + b_E, \qquad \sigma \ge 0,

with :math:`I_{EE} = W_{EE} x`, :math:`r_I = W_{IE} x`, :math:`I_{sub} = s W_{EI} r_I`
and :math:`I_{div} = s W_{EI} (g_I \odot r_I)` as in :mod:`ei_tutorial.circuit`
(``s`` is ``inhibition_scale``). With :math:`\sigma = 0` the layer computes exactly what
the library layer computes, including E-I Prop's treatment of zeros of the divisor.

What to write (the starter raises ``NotImplementedError`` in each part):

1. :class:`DivisiveOffset`: E-I Init of the offset and its place among the
   sign-constrained parameters (Dale's law).
2. :func:`divide_with_offset`, the equation above given the pieces.
3. :meth:`OffsetEILinear.forward`.
4. :meth:`OffsetEIConv2d.forward`.
5. :func:`register_offset_variant`, so that ``build_model(arch, "ei_offset")`` and the
   trainer use the new layers.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from ei_tutorial import EIConv2d, EILinear, InputStatistics, ei_init_
from ei_tutorial.ei_prop import ei_combine_reference, ei_divide, scale_grad
from ei_tutorial.models import register_variant
from ei_tutorial.models.variants import ei_readout
from ei_tutorial.validation import check_ei_input


class DivisiveOffset:
    """Mixin that adds the learnable offset ``sigma`` (attribute ``offset``) to an E-I layer.

    The layer classes below call ``_add_offset`` at the end of their constructor.
    """

    offset_init: float
    offset: nn.Parameter

    def _add_offset(self, offset_init: float) -> None:
        if not offset_init >= 0:
            raise ValueError(f"offset_init must be >= 0 (sigma is sign-constrained), got {offset_init!r}")
        if self.readout or not self.divisive:
            raise ValueError(
                f"{type(self).__name__} needs divisive inhibition; use EILinear(readout=True) for a "
                "readout layer and EILinear(divisive=False) for a layer without division"
            )
        self.offset_init = float(offset_init)
        self.offset = nn.Parameter(torch.full((self.n_e,), self.offset_init))

    @torch.no_grad()
    def init_from_statistics_(self, stats: InputStatistics, generator: Optional[torch.Generator] = None) -> None:
        """Initialise the E-I parameters by E-I Init and set every offset to ``offset_init``.

        The base class constructor calls this before ``offset`` exists; it must then
        initialise the other parameters and skip the offset.
        """
        # TODO(A2 part 1): DivisiveOffset.init_from_statistics_. Replace the raise below with your code.
        raise NotImplementedError("A2 part 1 (DivisiveOffset.init_from_statistics_) is not implemented yet")

    def constrained_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Yield ``(name, parameter)`` for every parameter that must stay >= 0, the offset included."""
        # TODO(A2 part 1): DivisiveOffset.constrained_parameters. Replace the raise below with your code.
        raise NotImplementedError("A2 part 1 (DivisiveOffset.constrained_parameters) is not implemented yet")


def divide_with_offset(
    num: Tensor,
    i_div: Tensor,
    offset: Tensor,
    gain_e: Tensor,
    bias: Tensor,
    sample_dims: Sequence[int],
    *,
    stabilise: bool = True,
    straight_through: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    r"""Compute :math:`g_E \odot num / (I_{div} + \sigma) + b_E` with E-I Prop for zero divisors.

    Where :math:`I_{div} + \sigma` is exactly zero, E-I Prop's stabilisation replaces it
    as :mod:`ei_tutorial.ei_prop` describes; ``stabilise=False`` adds ``eps`` instead.

    Args:
        num: :math:`I_{EE} - I_{sub}`.
        i_div: :math:`I_{div}`, shaped like ``num``.
        offset, gain_e, bias: :math:`\sigma`, :math:`g_E` and :math:`b_E`, shaped to
            broadcast against ``num``.
        sample_dims: The dimensions that make up one sample.
        stabilise, straight_through, eps: As for :class:`ei_tutorial.EILinear`.

    Returns:
        The current into the E neurons, shaped like ``num``.
    """
    # TODO(A2 part 2): divide_with_offset. Replace the raise below with your code.
    raise NotImplementedError("A2 part 2 (divide_with_offset) is not implemented yet")


def _mixing_weight(layer: EILinear | EIConv2d) -> Tensor:
    """Return :math:`s W_{EI}`, with its gradient divided by the fan-in when ``scale_ei_grad``."""
    weight_ei = layer.weight_ei * layer.inhibition_scale
    return scale_grad(weight_ei, 1.0 / layer.fan_in) if layer.scale_ei_grad else weight_ei


class OffsetEILinear(DivisiveOffset, EILinear):
    """:class:`ei_tutorial.EILinear` dividing by :math:`I_{div} + \\sigma` with a learned ``sigma >= 0``.

    Args:
        in_features, out_features, ei_ratio, bias: As for :class:`ei_tutorial.EILinear`.
        offset_init: Value of every entry of ``sigma`` after (E-I) initialisation. Default 0,
            which makes the fresh layer compute what ``EILinear`` computes.
        **kwargs: The keyword arguments of :class:`ei_tutorial.EILinear` except
            ``readout`` and ``divisive``, which must keep their defaults.

    Shape:
        - Input: ``[..., in_features]``, non-negative.
        - Output: ``[..., out_features]``.
    """

    def __init__(
        self, in_features: int, out_features: int, ei_ratio: int = 4, bias: bool = True, *,
        offset_init: float = 0.0, **kwargs,
    ) -> None:
        super().__init__(in_features, out_features, ei_ratio, bias, **kwargs)
        self._add_offset(offset_init)

    def forward(self, x: Tensor) -> Tensor:
        """Return the current of the offset layer for input ``x`` ``[..., in_features]``.

        Raises:
            TypeError, ValueError: As :class:`ei_tutorial.EILinear` does, on an input that
                is not a floating-point tensor, has the wrong size, or holds negative, NaN
                or infinite values.
        """
        # TODO(A2 part 3): OffsetEILinear.forward. Replace the raise below with your code.
        raise NotImplementedError("A2 part 3 (OffsetEILinear.forward) is not implemented yet")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", offset_init={self.offset_init}"


class OffsetEIConv2d(DivisiveOffset, EIConv2d):
    """:class:`ei_tutorial.EIConv2d` dividing by :math:`I_{div} + \\sigma` with a learned ``sigma >= 0``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, ei_ratio, bias: As for
            :class:`ei_tutorial.EIConv2d`.
        offset_init, **kwargs: As for :class:`OffsetEILinear`.

    Shape:
        - Input: ``[T, B, C, H, W]`` or ``[N, C, H, W]``, non-negative.
        - Output: ``[T, B, n_E, H', W']`` or ``[N, n_E, H', W']``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, ei_ratio: int = 4,
        bias: bool = True, *, offset_init: float = 0.0, **kwargs,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, ei_ratio, bias, **kwargs)
        self._add_offset(offset_init)

    def forward(self, x: Tensor) -> Tensor:
        """Return the current of the offset layer for input ``[T, B, C, H, W]`` or ``[N, C, H, W]``.

        Time is folded into the batch for the convolutions and unfolded in the output.

        Raises:
            TypeError, ValueError: As :class:`ei_tutorial.EIConv2d` does, on an input that
                is not a floating-point tensor, is not 4-D or 5-D, has the wrong channel
                count, or holds negative, NaN or infinite values.
        """
        # TODO(A2 part 4): OffsetEIConv2d.forward. Replace the raise below with your code.
        raise NotImplementedError("A2 part 4 (OffsetEIConv2d.forward) is not implemented yet")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", offset_init={self.offset_init}"


def register_offset_variant(name: str = "ei_offset") -> str:
    """Register the offset layers as a variant of :func:`ei_tutorial.models.build_model`.

    The variant builds hidden dense layers as :class:`OffsetEILinear`, convolutions as
    :class:`OffsetEIConv2d` and the readout as the ``"ei"`` variant does
    (``EILinear(..., readout=True)``, which has no division and so no offset). The
    trainer initialises it with :func:`ei_tutorial.ei_init_`. ``layer_kwargs`` go to
    every layer, ``offset_init`` to the hidden ones only. Calling it again replaces the
    registration.

    Args:
        name: Variant name to register.

    Returns:
        ``name``.
    """
    # TODO(A2 part 5): register_offset_variant. Replace the raise below with your code.
    raise NotImplementedError("A2 part 5 (register_offset_variant) is not implemented yet")


def plot_gain_curves(sigmas: Sequence[float], i_div: Optional[Tensor] = None) -> Figure:
    """Plot the gain of the offset division against the divisive inhibition, one curve per offset.

    Each curve is :func:`divide_with_offset` applied to a unit numerator with
    :math:`g_E = 1` and :math:`b_E = 0`, that is :math:`1 / (I_{div} + \\sigma)`.

    Args:
        sigmas: The offsets :math:`\\sigma` to draw.
        i_div: Values of :math:`I_{div}` on the x-axis; 300 points from 0.01 to 3 when None.

    Returns:
        A Figure with one axes, logarithmic in the gain.
    """
    i_div = torch.linspace(0.01, 3.0, 300) if i_div is None else i_div
    fig = Figure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.subplots()
    numerator = torch.ones(1, len(i_div))
    unit, zero = torch.ones(()), torch.zeros(())
    for sigma in sigmas:
        gain = divide_with_offset(numerator, i_div[None], torch.tensor(float(sigma)), unit, zero, (1,))
        ax.plot(i_div, gain[0], label=f"sigma = {sigma:g}")
    ax.set_yscale("log")
    ax.set_xlabel("divisive inhibition I_div")
    ax.set_ylabel("gain 1 / (I_div + sigma)")
    ax.set_title("the offset caps the gain")
    ax.legend(fontsize="small")
    return fig
