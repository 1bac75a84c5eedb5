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
import weakref
from typing import Callable, Optional

import torch
from snntorch import surrogate
from torch import Tensor, nn

SpikeFn = Callable[[Tensor], Tensor]

def _overflow_safe_sigmoid(slope: float) -> SpikeFn:
    """Wrap snnTorch's sigmoid surrogate so its backward pass cannot return NaN.

    snnTorch 1.0 computes the derivative as ``k exp(-k x) / (exp(-k x) + 1) ** 2``, whose
    numerator overflows to inf (and the quotient to NaN) once ``-k x`` passes the log of
    the dtype's largest value: ``x < -22`` for float32 at ``k = 4``. Inputs are clamped
    from below a little before that point. The spike is 0 on both sides of the clamp, and
    the true derivative there is below ``k * 1e-34`` (float32), so the clamp's zero
    gradient changes nothing measurable.
    """
    spike_fn = surrogate.sigmoid(slope=slope)

    def overflow_safe(x: Tensor) -> Tensor:
        floor = -0.9 * math.log(torch.finfo(x.dtype).max) / slope
        return spike_fn(x.clamp(min=floor))

    return overflow_safe


# Each entry builds an snnTorch surrogate spike function from a slope-like parameter.
_SURROGATES: dict[str, Callable[[float], SpikeFn]] = {
    "sigmoid": lambda slope: _overflow_safe_sigmoid(slope),
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
    spike_fn = _SURROGATES[name](float(slope))
    _ELEMENTWISE_SPIKE_FNS.add(spike_fn)
    return spike_fn


# Spike functions built by make_spike_fn: snnTorch surrogates that act element by element
# and keep no state, so the fused LIF may call them once on all time steps.
_ELEMENTWISE_SPIKE_FNS: "weakref.WeakSet[SpikeFn]" = weakref.WeakSet()


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


def _empty_steps(current: Tensor) -> Tensor:
    """Return an uninitialised tensor shaped like ``current`` whose every step has the memory layout of ``current[0]``.

    ``torch.empty_like`` would return a contiguous tensor for a current repeated over
    time (a time dimension of stride 0), and a channels-last step would then turn into
    a contiguous one.
    """
    if current.stride(0) != 0:
        return torch.empty_like(current)
    step = torch.empty_like(current[0])
    flat = current.new_empty(current.shape[0] * step.numel())
    return flat.as_strided(current.shape, (step.numel(), *step.stride()))


class LIFMultistepFunction(torch.autograd.Function):
    """LIF neurons over all time steps as one autograd node, with the reset detached.

    Inputs: ``current`` ``[T, B, ...]``, ``v0`` (a tensor broadcastable to ``[B, ...]``
    and of the same dtype, or None for zeros), the leak factor ``1 - 1/tau_mem``,
    ``v_th``, an element-wise ``spike_fn`` and ``return_v``. Outputs: spikes, the
    potentials after reset (None unless ``return_v``) and the last potential.

    The forward pass runs the recursion of :func:`lif_step` with plain tensor operations,
    writing into preallocated ``[T, B, ...]`` outputs, and saves only ``h - v_th``. The
    backward pass gets the spikes' gradient from ``spike_fn``'s own backward pass, called
    once on all saved steps, and then runs the recursion
    ``dL/dh[t] = dL/dz[t] * H'(h[t] - v_th) + dL/dv[t]`` with
    ``dL/dv[t] = leak * dL/dh[t+1]`` (plus any gradient of ``v`` itself) from the last
    step back to the first.
    """

    @staticmethod
    def forward(current, v0, leak, v_th, spike_fn, return_v):
        spikes = _empty_steps(current)
        shifted = _empty_steps(current)
        v_trace = _empty_steps(current) if return_v else None
        v = v0
        for t in range(current.shape[0]):
            # h = leak * v + i in two roundings, as lif_step computes it.
            if v is None:
                h = current[t].clone()
            else:
                h = torch.mul(v, leak)
                h = h.add_(current[t]) if h.shape == current[t].shape else h + current[t]
            torch.sub(h, v_th, out=shifted[t])
            torch.gt(shifted[t], 0, out=spikes[t])
            # Subtracting v_th * z with z in {0, 1} is exact, so v matches lif_step.
            v = torch.sub(h, spikes[t], alpha=v_th, out=h if v_trace is None else v_trace[t])
        v_last = v if v_trace is None else v.clone()
        return spikes, v_trace, v_last, shifted

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, v0, leak, _, spike_fn, _ = inputs
        shifted = output[3]
        ctx.save_for_backward(shifted)
        ctx.mark_non_differentiable(shifted)
        # Outputs that received no gradient arrive as None instead of as zero tensors.
        ctx.set_materialize_grads(False)
        ctx.leak, ctx.spike_fn = leak, spike_fn
        ctx.v0_shape = None if v0 is None else v0.shape

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_v_trace, grad_v_last, _grad_shifted):
        (shifted,) = ctx.saved_tensors
        if grad_spikes is None:
            grad_h = torch.zeros_like(shifted)
        else:
            with torch.enable_grad():
                x = shifted.detach().requires_grad_()
                z = ctx.spike_fn(x)
            (grad_h,) = torch.autograd.grad(z, x, grad_spikes)
            if grad_h.data_ptr() == grad_spikes.data_ptr():
                grad_h = grad_h.clone()
        if grad_v_trace is not None:
            grad_h.add_(grad_v_trace)
        if grad_v_last is not None:
            grad_h[-1].add_(grad_v_last)
        for t in range(shifted.shape[0] - 2, -1, -1):
            grad_h[t].add_(grad_h[t + 1] * ctx.leak)
        grad_v0 = None
        if ctx.needs_input_grad[1]:
            grad_v0 = (grad_h[0] * ctx.leak).sum_to_size(ctx.v0_shape)
        return grad_h, grad_v0, None, None, None, None


def _fits_state(v0: object, current: Tensor) -> bool:
    """Return True if ``v0`` is a tensor of ``current``'s dtype that broadcasts to one step."""
    if not isinstance(v0, Tensor) or v0.dtype != current.dtype or v0.device != current.device:
        return False
    try:
        return torch.broadcast_shapes(v0.shape, current.shape[1:]) == current.shape[1:]
    except RuntimeError:
        return False


def lif_multistep(
    current: Tensor,
    v0: Optional[Tensor] = None,
    *,
    tau_mem: float = 2.0,
    v_th: float = 1.0,
    spike_fn: Optional[SpikeFn] = None,
    detach_reset: bool = True,
    return_v: bool = False,
    fused: bool = True,
) -> tuple[Tensor, Optional[Tensor], Tensor]:
    """Run LIF neurons over the leading time dimension of ``current``.

    Args:
        current: Input currents ``[T, B, ...]``.
        v0: Initial membrane potential ``[B, ...]`` (or broadcastable); zeros when None.
        tau_mem, v_th, spike_fn, detach_reset: As in :func:`lif_step`.
        return_v: Also return the membrane potential at every step.
        fused: Run all steps in one autograd node (:class:`LIFMultistepFunction`) when
            that gives the same numbers: the reset is detached, ``spike_fn`` is None or
            built by :func:`make_spike_fn`, and ``v0`` is None or a tensor of
            ``current``'s dtype and device that broadcasts to ``[B, ...]``. Otherwise,
            or when False, call :func:`lif_step` once per step.

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
    spike_fn = _DEFAULT_SPIKE_FN if spike_fn is None else spike_fn
    if (
        fused
        and detach_reset
        and spike_fn in _ELEMENTWISE_SPIKE_FNS
        and (v0 is None or _fits_state(v0, current))
    ):
        spikes, v_trace, v_last, _ = LIFMultistepFunction.apply(
            current, v0, 1.0 - 1.0 / tau_mem, v_th, spike_fn, return_v
        )
        return spikes, v_trace, v_last
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
        fused: Run all time steps in one autograd node where that gives the same
            numbers (see :func:`lif_multistep`). Default True.

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
        fused: bool = True,
    ) -> None:
        super().__init__()
        _check_time_constants(tau_mem, v_th)
        self.tau_mem = float(tau_mem)
        self.v_th = float(v_th)
        self.slope = float(slope)
        self.detach_reset = detach_reset
        self.fused = fused
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
            detach_reset=self.detach_reset, return_v=return_v, fused=self.fused,
        )

    def extra_repr(self) -> str:
        return (
            f"tau_mem={self.tau_mem}, v_th={self.v_th}, surrogate={self.surrogate!r}, "
            f"slope={self.slope}, detach_reset={self.detach_reset}"
            + ("" if self.fused else ", fused=False")
        )
