r"""Leaky integrate-and-fire (LIF) neurons with soft reset, stepped over time-first tensors.

The neuron integrates an input current ``i`` into its membrane potential ``v``, fires a
spike ``z`` when the potential crosses the threshold ``v_th``, and is reset by subtraction
in the same step:

.. math::

    h[t] &= \left(1 - \frac{1}{\tau_{mem}}\right) v[t-1] + i[t] \\
    z[t] &= H(h[t] - v_{th}) \\
    v[t] &= h[t] - v_{th}\, z[t]

with :math:`v[-1] = 0` unless an initial state is given. The input is not decayed.
:math:`H` is the Heaviside step with :math:`H(0) = 0`; its gradient is replaced by a
surrogate from :mod:`snntorch.surrogate` (default: the sigmoid surrogate with slope 4).
The reset term :math:`v_{th} z[t]` is detached from the autograd graph by default, so
gradients flow through :math:`h` only; ``detach_reset=False`` keeps it.

Symbols: ``tau_mem`` membrane time constant in time steps, ``v_th`` firing threshold,
``i`` input current, ``v`` membrane potential after reset, ``z`` spikes (0 or 1).
Tensors are time-first, ``[T, B, ...]``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from snntorch import surrogate
from torch import Tensor, nn

SpikeFn = Callable[[Tensor], Tensor]

# Each entry builds an snnTorch surrogate spike function from a slope-like parameter.
_SURROGATES: dict[str, Callable[[float], SpikeFn]] = {
    "sigmoid": lambda slope: surrogate.sigmoid(slope=slope),
    "fast_sigmoid": lambda slope: surrogate.fast_sigmoid(slope=slope),
    "atan": lambda slope: surrogate.atan(alpha=slope),
    "triangular": lambda slope: surrogate.triangular(),
    "straight_through": lambda slope: surrogate.straight_through_estimator(),
}


def available_surrogates() -> tuple[str, ...]:
    """Return the names accepted by :func:`make_spike_fn` and :class:`LIF`."""
    return tuple(_SURROGATES)


def make_spike_fn(name: str = "sigmoid", slope: float = 4.0) -> SpikeFn:
    """Build a Heaviside spike function whose backward pass is an snnTorch surrogate.

    Args:
        name: One of :func:`available_surrogates`.
        slope: Steepness of the surrogate (``alpha`` for ``"atan"``); ignored by
            ``"triangular"`` and ``"straight_through"``.

    Returns:
        A function mapping ``h - v_th`` to spikes in {0, 1} of the same dtype.

    Raises:
        ValueError: If ``name`` is unknown or ``slope`` is not positive.
    """
    if name not in _SURROGATES:
        raise ValueError(
            f"unknown surrogate {name!r}; expected one of {available_surrogates()}, "
            "or pass a callable as spike_fn"
        )
    if not slope > 0:
        raise ValueError(f"surrogate slope must be positive, got {slope}")
    return _SURROGATES[name](float(slope))


def _check_time_constants(tau_mem: float, v_th: float) -> None:
    if not (isinstance(tau_mem, (int, float)) and math.isfinite(tau_mem) and tau_mem > 0):
        raise ValueError(
            f"tau_mem must be a positive number of time steps, got {tau_mem!r}; "
            "use tau_mem >= 1 for a leak factor 1 - 1/tau_mem in [0, 1)"
        )
    if not (isinstance(v_th, (int, float)) and math.isfinite(v_th) and v_th > 0):
        raise ValueError(f"v_th must be a positive threshold, got {v_th!r}")


_DEFAULT_SPIKE_FN = make_spike_fn("sigmoid", 4.0)


def lif_step(
    i: Tensor,
    v: Tensor,
    *,
    tau_mem: float = 2.0,
    v_th: float = 1.0,
    spike_fn: Optional[SpikeFn] = None,
    detach_reset: bool = True,
) -> tuple[Tensor, Tensor]:
    """Advance LIF neurons by one time step.

    Args:
        i: Input current at this step, any shape.
        v: Membrane potential after the previous step, broadcastable to ``i``.
        tau_mem: Membrane time constant in time steps (> 0).
        v_th: Firing threshold (> 0).
        spike_fn: Surrogate spike function; defaults to the sigmoid surrogate, slope 4.
        detach_reset: Detach the reset term ``v_th * z`` from the graph.

    Returns:
        ``(z, v_new)``: spikes and the membrane potential after reset, shaped like ``i``.
    """
    spike_fn = _DEFAULT_SPIKE_FN if spike_fn is None else spike_fn
    h = (1.0 - 1.0 / tau_mem) * v + i
    z = spike_fn(h - v_th).to(h.dtype)
    reset = z.detach() if detach_reset else z
    return z, h - v_th * reset


def lif_multistep(
    current: Tensor,
    v0: Optional[Tensor] = None,
    *,
    tau_mem: float = 2.0,
    v_th: float = 1.0,
    spike_fn: Optional[SpikeFn] = None,
    detach_reset: bool = True,
    return_v: bool = False,
) -> tuple[Tensor, Optional[Tensor], Tensor]:
    """Run LIF neurons over the leading time dimension of ``current``.

    Args:
        current: Input currents ``[T, B, ...]``.
        v0: Initial membrane potential ``[B, ...]`` (or broadcastable); zeros when None.
        tau_mem, v_th, spike_fn, detach_reset: As in :func:`lif_step`.
        return_v: Also return the membrane potential at every step.

    Returns:
        ``(spikes, v_trace, v_last)``: spikes ``[T, B, ...]``, the potentials after reset
        ``[T, B, ...]`` (None unless ``return_v``) and the final potential ``[B, ...]``.

    Raises:
        ValueError: If ``current`` has no time dimension or ``T < 1``.
    """
    if current.dim() < 1 or current.shape[0] < 1:
        raise ValueError(
            f"LIF expects time-first currents [T, B, ...] with T >= 1, got shape "
            f"{tuple(current.shape)}"
        )
    v = torch.zeros_like(current[0]) if v0 is None else v0
    spikes, trace = [], []
    for t in range(current.shape[0]):
        z, v = lif_step(
            current[t], v, tau_mem=tau_mem, v_th=v_th, spike_fn=spike_fn,
            detach_reset=detach_reset,
        )
        spikes.append(z)
        if return_v:
            trace.append(v)
    v_trace = torch.stack(trace) if return_v else None
    return torch.stack(spikes), v_trace, v


class LIF(nn.Module):
    """Multi-step leaky integrate-and-fire neurons with soft reset.

    Holds no state between calls: every call starts from ``v0`` (zeros by default), so
    nothing needs resetting between batches.

    Args:
        tau_mem: Membrane time constant in time steps (> 0). Default 2.0.
        v_th: Firing threshold (> 0). Default 1.0.
        surrogate: Name of an snnTorch surrogate (see :func:`available_surrogates`) or a
            callable spike function ``f(h - v_th) -> z``.
        slope: Surrogate steepness. Default 4.0.
        detach_reset: Detach the reset term from the graph. Default True.

    Shape:
        - Input: currents ``[T, B, ...]``.
        - Output: spikes ``[T, B, ...]`` in {0, 1}, same dtype as the input.

    Raises:
        ValueError: On a non-positive ``tau_mem``, ``v_th`` or ``slope``, or an unknown
            surrogate name.
    """

    def __init__(
        self,
        tau_mem: float = 2.0,
        v_th: float = 1.0,
        surrogate: str | SpikeFn = "sigmoid",
        slope: float = 4.0,
        detach_reset: bool = True,
    ) -> None:
        super().__init__()
        _check_time_constants(tau_mem, v_th)
        self.tau_mem = float(tau_mem)
        self.v_th = float(v_th)
        self.slope = float(slope)
        self.detach_reset = detach_reset
        if callable(surrogate):
            self.surrogate = getattr(surrogate, "__name__", "custom")
            self.spike_fn = surrogate
        else:
            self.surrogate = surrogate
            self.spike_fn = make_spike_fn(surrogate, slope)

    def forward(self, current: Tensor, v0: Optional[Tensor] = None) -> Tensor:
        spikes, _, _ = self._run(current, v0, return_v=False)
        return spikes

    def trace(self, current: Tensor, v0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Return ``(spikes, v)``, both ``[T, B, ...]``, with ``v`` after reset."""
        spikes, v_trace, _ = self._run(current, v0, return_v=True)
        return spikes, v_trace

    def _run(self, current: Tensor, v0: Optional[Tensor], return_v: bool):
        if not isinstance(current, Tensor):
            raise TypeError(f"LIF expects a torch.Tensor of currents, got {type(current).__name__}")
        if current.dim() < 2:
            raise ValueError(
                f"LIF expects time-first currents [T, B, ...], got shape {tuple(current.shape)}; "
                "add a time dimension, e.g. current.unsqueeze(0) for T = 1"
            )
        return lif_multistep(
            current, v0, tau_mem=self.tau_mem, v_th=self.v_th, spike_fn=self.spike_fn,
            detach_reset=self.detach_reset, return_v=return_v,
        )

    def extra_repr(self) -> str:
        return (
            f"tau_mem={self.tau_mem}, v_th={self.v_th}, surrogate={self.surrogate!r}, "
            f"slope={self.slope}, detach_reset={self.detach_reset}"
        )
