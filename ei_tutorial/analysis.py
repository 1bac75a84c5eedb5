r"""Measurements on spiking layers and E-I circuits: the numbers behind the chapters' figures.

Every function here computes; none draws. :mod:`ei_tutorial.plots` turns the results into
figures and :mod:`ei_tutorial.widgets` wires them to sliders.

Tensors are time-first, ``[T, B, ...]``. Currents of a linear layer have their neurons in
the last dimension; every leading dimension counts as a sample. The circuit symbols follow
:mod:`ei_tutorial.circuit`: :math:`I_{EE} = W_{EE} x`, :math:`r_I = W_{IE} x`,
:math:`I_{sub} = s W_{EI} r_I`, :math:`I_{div} = s W_{EI} (g_I \odot r_I)` and the current
:math:`I = g_E (I_{EE} - I_{sub}) / I_{div} + b_E`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

# CircuitCurrents is defined in circuit.py. This import also keeps
# `from ei_tutorial.analysis import CircuitCurrents` working.
from ei_tutorial.circuit import CircuitCurrents, EILayer, EILinear
from ei_tutorial.ei_init import ei_init_
from ei_tutorial.neurons import LIF, make_spike_fn

SpikeFn = Callable[[Tensor], Tensor]

# ---------------------------------------------------------------------------
# Spikes and surrogate gradients
# ---------------------------------------------------------------------------


def exact_heaviside(x: Tensor) -> Tensor:
    """Spike function ``H(x)`` with its exact derivative, zero everywhere (``H(0) = 0``).

    The step is flat on both sides of the threshold, so autograd passes a gradient of
    exactly zero through it. Pass it as ``LIF(surrogate=exact_heaviside)`` to see training
    without a surrogate fail: the graph stays connected, but every gradient is zero.
    """
    return (x > 0).to(x.dtype) + 0.0 * x


def surrogate_derivative(
    spike_fn: Union[str, SpikeFn], x: Tensor, slope: float = 4.0
) -> Tensor:
    """Evaluate the backward-pass derivative ``dz/dx`` of a spike function at ``x``.

    Args:
        spike_fn: A surrogate name accepted by :func:`ei_tutorial.make_spike_fn`, or a
            spike function ``f(h - v_th) -> z``.
        x: Points :math:`h - v_{th}` at which to evaluate the derivative, any shape.
        slope: Surrogate steepness when ``spike_fn`` is a name.

    Returns:
        A tensor shaped like ``x``: the gradient autograd assigns to each point.
    """
    fn = make_spike_fn(spike_fn, slope) if isinstance(spike_fn, str) else spike_fn
    points = x.detach().clone().requires_grad_(True)
    fn(points).sum().backward()
    return points.grad.detach()


def spike_count_gradient(lif: LIF, current: Tensor) -> Tensor:
    """Compute the gradient of the total spike count with respect to the input current.

    Args:
        lif: The neurons; their surrogate decides the backward pass.
        current: Input currents ``[T, B, ...]``.

    Returns:
        :math:`\\partial (\\sum z) / \\partial i`, shaped like ``current``.
    """
    points = current.detach().clone().requires_grad_(True)
    lif(points).sum().backward()
    return points.grad.detach()


def firing_rates(spikes: Tensor) -> Tensor:
    """Return each neuron's firing rate: its spikes averaged over time and batch.

    Args:
        spikes: Spikes ``[T, B, ...]`` in {0, 1}.

    Returns:
        Rates in [0, 1] (spikes per time step), shaped ``spikes.shape[2:]``.

    Raises:
        ValueError: If ``spikes`` has fewer than three dimensions.
    """
    if spikes.dim() < 3:
        raise ValueError(
            f"firing_rates expects spikes [T, B, neurons...], got shape {tuple(spikes.shape)}; "
            "keep the time and batch dimensions in front"
        )
    return spikes.detach().float().mean(dim=(0, 1))


# ---------------------------------------------------------------------------
# Currents inside an E-I circuit
# ---------------------------------------------------------------------------


@torch.no_grad()
def circuit_currents(layer: EILayer, x: Tensor) -> CircuitCurrents:
    """Run an E-I layer on ``x`` and return its intermediate currents as well as its output.

    Args:
        layer: An :class:`~ei_tutorial.EILinear` or :class:`~ei_tutorial.EIConv2d`.
        x: A valid input of ``layer``.

    Returns:
        The :class:`~ei_tutorial.circuit.CircuitCurrents` of this input, from
        :meth:`EILayer.currents <ei_tutorial.circuit.EILayer.currents>` without gradients.
    """
    return layer.currents(x)


@dataclass(frozen=True)
class CurrentStatistics:
    """Summary of a current ``[..., N]`` with ``N`` neurons in the last dimension.

    Attributes:
        mean: Mean over all values.
        std: Standard deviation over all values (population formula).
        neuron_mean: Each neuron's mean over the samples, ``[N]``.
        neuron_std: Each neuron's standard deviation over the samples, ``[N]``.
        sample_mean: Each sample's mean over the neurons, ``[S]``.
        sample_std: Each sample's standard deviation over the neurons, ``[S]``.
        fraction_positive: Fraction of values above zero.
    """

    mean: float
    std: float
    neuron_mean: Tensor
    neuron_std: Tensor
    sample_mean: Tensor
    sample_std: Tensor
    fraction_positive: float


@torch.no_grad()
def current_statistics(current: Tensor) -> CurrentStatistics:
    """Measure a current's mean and spread over all values, per neuron and per sample.

    Every leading dimension (time, batch) counts as a sample, so ``[T, B, N]`` gives
    ``S = T * B`` samples, as batch normalization over ``T * B`` counts them.

    Args:
        current: Currents ``[..., N]``.

    Returns:
        The :class:`CurrentStatistics`; standard deviations use the population formula.

    Raises:
        ValueError: If ``current`` has fewer than two dimensions.
    """
    if current.dim() < 2:
        raise ValueError(
            f"current_statistics expects currents [samples..., neurons], got shape "
            f"{tuple(current.shape)}; add a sample dimension, e.g. current.unsqueeze(0)"
        )
    values = current.detach().to(torch.float64).reshape(-1, current.shape[-1])
    return CurrentStatistics(
        mean=float(values.mean()),
        std=float(values.std(unbiased=False)),
        neuron_mean=values.mean(dim=0),
        neuron_std=values.std(dim=0, unbiased=False),
        sample_mean=values.mean(dim=1),
        sample_std=values.std(dim=1, unbiased=False),
        fraction_positive=float((values > 0).double().mean()),
    )


@torch.no_grad()
def batch_dependence(
    module: nn.Module, sample: Tensor, batch_a: Tensor, batch_b: Tensor, *, batch_dim: int = 0
) -> float:
    """Measure how much a module's output for one sample changes with its batch mates.

    The module runs twice: on ``sample`` joined with ``batch_a``, and on ``sample`` joined
    with ``batch_b``, along ``batch_dim``. A per-sample layer gives the same output both
    times. Batch normalization in training mode does not, because it normalises with
    batch statistics.

    Args:
        module: Takes and returns tensors with a batch dimension at ``batch_dim``.
        sample: One input, of size 1 along ``batch_dim``.
        batch_a, batch_b: Two sets of other inputs, of any size along ``batch_dim``.
        batch_dim: The batch dimension: 0 for ``[N, ...]``, 1 for time-first ``[T, B, ...]``.

    Returns:
        The largest absolute difference between the two outputs for ``sample``.

    Raises:
        ValueError: If ``sample`` is not of size 1 along ``batch_dim``.
    """
    if sample.shape[batch_dim] != 1:
        raise ValueError(
            f"sample must hold one input (size 1 along dimension {batch_dim}), got shape "
            f"{tuple(sample.shape)}; slice it with sample.narrow({batch_dim}, index, 1)"
        )
    out_a = module(torch.cat([sample, batch_a], dim=batch_dim)).select(batch_dim, 0)
    out_b = module(torch.cat([sample, batch_b], dim=batch_dim)).select(batch_dim, 0)
    return float((out_a - out_b).abs().max())


# ---------------------------------------------------------------------------
# One E-I layer with LIF neurons, driven by images
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerActivity:
    """A layer's current and the spikes of the LIF neurons it drives.

    Attributes:
        layer: The layer that produced the current.
        currents: Its :class:`~ei_tutorial.circuit.CircuitCurrents` for the input,
            ``[B, n_E]`` each.
        spikes: Spikes of the E neurons ``[T, B, n_E]`` under a constant (direct) input.
        rates: Each E neuron's firing rate ``[n_E]`` in spikes per time step.
    """

    layer: EILayer
    currents: CircuitCurrents
    spikes: Tensor
    rates: Tensor

    @property
    def mean_rate(self) -> float:
        """The population firing rate: the mean of :attr:`rates`."""
        return float(self.rates.mean())


@torch.no_grad()
def layer_activity(layer: EILayer, x: Tensor, *, T: int = 8, lif: Optional[LIF] = None) -> LayerActivity:
    """Drive LIF neurons with an E-I layer's current for a static input over ``T`` steps.

    The input is the same at every step (direct encoding), so the layer runs once and its
    current is repeated over time.

    Args:
        layer: An E-I layer taking ``x``.
        x: Input ``[B, in_features]``, non-negative.
        T: Time steps.
        lif: The E neurons; ``LIF()`` (``tau_mem = 2``, ``v_th = 1``) when None.

    Returns:
        The :class:`LayerActivity`.
    """
    lif = LIF() if lif is None else lif
    currents = circuit_currents(layer, x)
    spikes = lif(currents.current.unsqueeze(0).expand(T, *currents.current.shape))
    return LayerActivity(layer=layer, currents=currents, spikes=spikes, rates=firing_rates(spikes))


def build_ei_layer(
    x: Tensor,
    n_e: int = 256,
    *,
    ei_ratio: int = 4,
    inhibition_scale: float = 1.0,
    gain_i_scale: float = 1.0,
    subtractive: bool = True,
    divisive: bool = True,
    seed: int = 0,
) -> EILinear:
    """Build an :class:`~ei_tutorial.EILinear` initialised by E-I Init on ``x``, then rescaled.

    E-I Init sets :math:`W_{EI}` and :math:`g_I` for balance and unit spread. The two
    scales then move the layer away from that point: ``inhibition_scale`` multiplies
    :math:`W_{EI}` (the strength of both inhibition paths) and ``gain_i_scale``
    multiplies :math:`g_I` (the strength of the division only).

    Args:
        x: Input batch ``[B, in_features]`` to initialise from, non-negative.
        n_e: Number of E neurons :math:`n_E`.
        ei_ratio: :math:`n_E / n_I`; must divide ``n_e``.
        inhibition_scale: Factor :math:`s` on :math:`W_{EI}`, >= 0.
        gain_i_scale: Factor on the initialised :math:`g_I`, >= 0.
        subtractive, divisive: Which inhibition paths the layer uses.
        seed: Seed of the exponential weights.

    Returns:
        The layer, in evaluation mode.

    Raises:
        ValueError: If ``gain_i_scale`` is negative, or as :class:`~ei_tutorial.EILinear`
            and :func:`~ei_tutorial.ei_init_`.
    """
    if not gain_i_scale >= 0:
        raise ValueError(f"gain_i_scale must be >= 0, got {gain_i_scale!r}")
    layer = EILinear(
        x.shape[-1], n_e, ei_ratio=ei_ratio, subtractive=subtractive, divisive=divisive,
        inhibition_scale=inhibition_scale,
    )
    ei_init_(layer, x, seed=seed)
    with torch.no_grad():
        layer.gain_i.mul_(gain_i_scale)
    return layer.eval()


@dataclass(frozen=True)
class IntensityResponse:
    """Response of a layer's E neurons to its input scaled by several intensities.

    Attributes:
        intensities: The factors :math:`c` that multiplied the input, ``[K]``.
        rate: Population firing rate at each intensity, ``[K]``.
        current_mean: Mean of the current :math:`I` at each intensity, ``[K]``.
        current_std: Standard deviation of :math:`I` at each intensity, ``[K]``.
    """

    intensities: Tensor
    rate: Tensor
    current_mean: Tensor
    current_std: Tensor


@torch.no_grad()
def intensity_response(
    layer: EILayer, x: Tensor, intensities: Sequence[float], *, T: int = 8, lif: Optional[LIF] = None
) -> IntensityResponse:
    """Measure the E neurons' activity as the input is scaled by each intensity ``c``.

    Args:
        layer: An E-I layer taking ``x``.
        x: Input ``[B, in_features]``, non-negative.
        intensities: Non-negative factors ``c``; the layer receives ``c * x``.
        T: Time steps of the direct input.
        lif: The E neurons; ``LIF()`` when None.

    Returns:
        The :class:`IntensityResponse`.

    Raises:
        ValueError: If an intensity is negative.
    """
    rates, means, stds = [], [], []
    for c in intensities:
        if not c >= 0:
            raise ValueError(f"intensities must be >= 0, got {c!r}")
        activity = layer_activity(layer, x * c, T=T, lif=lif)
        stats = current_statistics(activity.currents.current)
        rates.append(activity.mean_rate)
        means.append(stats.mean)
        stds.append(stats.std)
    return IntensityResponse(
        intensities=torch.tensor([float(c) for c in intensities]),
        rate=torch.tensor(rates), current_mean=torch.tensor(means), current_std=torch.tensor(stds),
    )
