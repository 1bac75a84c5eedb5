r"""Assignment 1: an adaptive-threshold LIF neuron that the E-I models can use.

A neuron with spike-frequency adaptation raises its own threshold every time it fires,
and the raise decays back with the adaptation time constant ``tau_adapt``. Per time step
``t``, with the course's soft reset by subtraction:

.. math::

    h[t] &= \left(1 - \frac{1}{\tau_{mem}}\right) v[t-1] + i[t] \\
    \theta[t] &= v_{th} + \beta\, a[t-1] \\
    z[t] &= H(h[t] - \theta[t]) \\
    v[t] &= h[t] - \theta[t]\, z[t] \\
    a[t] &= \left(1 - \frac{1}{\tau_{adapt}}\right) a[t-1] + z[t]

with :math:`v[-1] = a[-1] = 0`. Symbols: ``i`` input current, ``v`` membrane potential
after reset, ``z`` spikes, ``a`` adaptation variable (a decaying spike count), ``theta``
the threshold in force at step ``t``, ``beta >= 0`` the threshold raise per unit of
``a``. With ``beta = 0`` the neuron is exactly :class:`ei_tutorial.LIF`.

:math:`H` is the Heaviside step with a surrogate gradient, as in
:func:`ei_tutorial.lif_step`. With ``detach_reset=True`` the reset term
:math:`\theta[t] z[t]` uses the detached spike, as the library's LIF does.

What to write (the starter raises ``NotImplementedError`` in each part):

1. :func:`adaptive_lif_step`, one time step of the equations above.
2. :meth:`AdaptiveLIF.trace`, the loop over the leading time dimension.
3. :func:`register_adaptive_lif`, which makes the neuron available to
   :func:`ei_tutorial.models.build_model` and :func:`ei_tutorial.training.train`
   under a name.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ei_tutorial.models import register_neuron
from ei_tutorial.neurons import make_spike_fn

SpikeFn = Callable[[Tensor], Tensor]

_DEFAULT_SPIKE_FN = make_spike_fn("sigmoid", 4.0)


def adaptive_lif_step(
    i: Tensor,
    v: Tensor,
    a: Tensor,
    *,
    tau_mem: float = 2.0,
    v_th: float = 1.0,
    tau_adapt: float = 4.0,
    beta: float = 0.2,
    spike_fn: Optional[SpikeFn] = None,
    detach_reset: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Advance adaptive LIF neurons by one time step.

    Args:
        i: Input current at this step, any shape.
        v: Membrane potential after the previous step, broadcastable to ``i``.
        a: Adaptation variable after the previous step, broadcastable to ``i``.
        tau_mem: Membrane time constant in time steps.
        v_th: Baseline threshold.
        tau_adapt: Adaptation time constant in time steps.
        beta: Threshold raise per unit of ``a``.
        spike_fn: Surrogate spike function ``f(h - theta) -> z``; the library's
            default (sigmoid surrogate, slope 4) when None.
        detach_reset: Use the detached spike in the reset term.

    Returns:
        ``(z, v_new, a_new, theta)``, all shaped like ``i``: the spikes, the membrane
        potential after reset, the new adaptation variable and the threshold that was
        in force at this step.
    """
    # TODO(A1 part 1): adaptive_lif_step. Replace the raise below with your code.
    raise NotImplementedError("A1 part 1 (adaptive_lif_step) is not implemented yet")


def _check_positive(name: str, value: object) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


class AdaptiveLIF(nn.Module):
    """Multi-step LIF neurons with an adaptive threshold and soft reset.

    Keeps no state between calls: every call starts from ``v = a = 0``.

    Args:
        tau_mem: Membrane time constant in time steps (> 0). Default 2.0.
        v_th: Baseline threshold (> 0). Default 1.0.
        tau_adapt: Adaptation time constant in time steps (> 0). Default 4.0.
        beta: Threshold raise per unit of the adaptation variable (>= 0). Default 0.2.
        surrogate: Name of a surrogate (see :func:`ei_tutorial.available_surrogates`)
            or a callable spike function.
        slope: Surrogate steepness. Default 4.0.
        detach_reset: Use the detached spike in the reset term. Default True.

    Shape:
        - Input: currents ``[T, B, ...]``.
        - Output: spikes ``[T, B, ...]`` in {0, 1}, same dtype as the input.

    Raises:
        ValueError: On a non-positive ``tau_mem``, ``v_th`` or ``tau_adapt``, a
            negative ``beta``, or an unknown surrogate name.
    """

    def __init__(
        self,
        tau_mem: float = 2.0,
        v_th: float = 1.0,
        tau_adapt: float = 4.0,
        beta: float = 0.2,
        surrogate: str | SpikeFn = "sigmoid",
        slope: float = 4.0,
        detach_reset: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("tau_mem", tau_mem), ("v_th", v_th), ("tau_adapt", tau_adapt)):
            _check_positive(name, value)
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a number >= 0, got {beta!r}")
        self.tau_mem = float(tau_mem)
        self.v_th = float(v_th)
        self.tau_adapt = float(tau_adapt)
        self.beta = float(beta)
        self.detach_reset = detach_reset
        self.surrogate = surrogate if isinstance(surrogate, str) else getattr(surrogate, "__name__", "custom")
        self.spike_fn = make_spike_fn(surrogate, slope) if isinstance(surrogate, str) else surrogate

    def forward(self, current: Tensor) -> Tensor:
        spikes, _, _ = self.trace(current)
        return spikes

    def trace(self, current: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Run the neurons over the leading time dimension of ``current``.

        Args:
            current: Input currents ``[T, B, ...]``.

        Returns:
            ``(spikes, v, theta)``, each ``[T, B, ...]`` like ``current``: the spikes,
            the membrane potential after reset and the threshold in force at each step.

        Raises:
            TypeError: If ``current`` is not a tensor.
            ValueError: If ``current`` has fewer than two dimensions (no time axis).
        """
        # TODO(A1 part 2): AdaptiveLIF.trace. Replace the raise below with your code.
        raise NotImplementedError("A1 part 2 (AdaptiveLIF.trace) is not implemented yet")

    def extra_repr(self) -> str:
        return (
            f"tau_mem={self.tau_mem}, v_th={self.v_th}, tau_adapt={self.tau_adapt}, beta={self.beta}, "
            f"surrogate={self.surrogate!r}, detach_reset={self.detach_reset}"
        )


def register_adaptive_lif(name: str = "adaptive_lif") -> str:
    """Register :class:`AdaptiveLIF` as a neuron model of the model builder and the trainer.

    After this call, ``build_model(..., neuron=name, neuron_kwargs={...})`` and a
    training config with ``neuron: name`` build every spiking layer with
    ``AdaptiveLIF(**neuron_kwargs)``. Calling it again replaces the registration.

    Args:
        name: Neuron name to register.

    Returns:
        ``name``.
    """
    # TODO(A1 part 3): register_adaptive_lif. Replace the raise below with your code.
    raise NotImplementedError("A1 part 3 (register_adaptive_lif) is not implemented yet")


def plot_adaptation(current: Tensor, neurons: Mapping[str, nn.Module]) -> Figure:
    """Plot how each neuron model responds to the same input current.

    Args:
        current: Input current of one neuron ``[T]``.
        neurons: Models by label; each has ``trace(current)`` returning ``(spikes, v)``
            like :class:`ei_tutorial.LIF` or ``(spikes, v, theta)`` like
            :class:`AdaptiveLIF`. A model without ``theta`` is drawn with its constant
            threshold ``v_th``.

    Returns:
        A Figure with one row of axes per model: the membrane potential ``v`` after
        reset, the threshold ``theta`` in force at each step and the spikes ``z``.
    """
    steps = torch.arange(current.shape[0])
    fig = Figure(figsize=(9, 2.2 * len(neurons)), layout="constrained")
    axes = fig.subplots(len(neurons), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, neuron) in zip(axes, neurons.items()):
        with torch.no_grad():
            traces = neuron.trace(current.reshape(-1, 1))
        spikes, v = traces[0][:, 0], traces[1][:, 0]
        theta = traces[2][:, 0] if len(traces) > 2 else torch.full_like(v, neuron.v_th)
        ax.plot(steps, v, marker=".", color="tab:blue", label="v (after reset)")
        ax.step(steps, theta, where="mid", color="black", linestyle="--", label="threshold theta")
        fired = steps[spikes > 0]
        ax.plot(fired, torch.full((len(fired),), float(theta.max()) * 1.15), "v", color="tab:red", label="spike z")
        ax.set_ylabel("potential")
        ax.set_title(f"{label}: {int(spikes.sum())} spikes in {len(steps)} steps")
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes[-1].set_xlabel("time step t")
    return fig
