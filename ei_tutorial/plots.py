"""Figures for the chapters: pure functions that take data and return a matplotlib Figure.

The figures are built with :class:`matplotlib.figure.Figure`, not ``pyplot``, so they
leave no global state behind: nothing needs closing, and a notebook shows a figure only
when it is displayed (as a cell's last value or with ``IPython.display.display``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ei_tutorial.neurons import LIF

CURRENT_COLOR = "tab:gray"
V_COLOR = "tab:blue"
SPIKE_COLOR = "tab:red"
THRESHOLD_COLOR = "black"


def step_current(T: int, amplitude: float, onset: int = 5) -> torch.Tensor:
    """Build a step input current: zero before ``onset``, then ``amplitude``.

    Args:
        T: Number of time steps.
        amplitude: Current from step ``onset`` on.
        onset: First step with non-zero current.

    Returns:
        Float tensor ``[T]``.

    Raises:
        ValueError: If ``T < 1`` or ``onset`` is not in ``[0, T]``.
    """
    if T < 1:
        raise ValueError(f"T must be at least 1 time step, got {T}.")
    if not 0 <= onset <= T:
        raise ValueError(f"onset must lie in [0, T] = [0, {T}], got {onset}.")
    current = torch.zeros(T)
    current[onset:] = amplitude
    return current


def lif_trace(current, tau_mem: float, v_th: float) -> tuple[np.ndarray, np.ndarray]:
    """Run one LIF neuron on a current trace.

    Args:
        current: Input current ``[T]`` (tensor, array or sequence).
        tau_mem: Membrane time constant in time steps.
        v_th: Firing threshold.

    Returns:
        ``(z, v)``: spikes and membrane potential after reset, NumPy arrays ``[T]``.
    """
    current = torch.as_tensor(current, dtype=torch.float32).reshape(-1, 1)
    with torch.no_grad():
        spikes, v = LIF(tau_mem=tau_mem, v_th=v_th).trace(current)
    return spikes[:, 0].numpy(), v[:, 0].numpy()


def draw_membrane(ax: Axes, v: np.ndarray, z: np.ndarray, v_th: float, *, label: str = "v") -> None:
    """Draw a membrane trace on ``ax``, with the threshold and each spike's reset.

    At a spike step the potential before reset, ``v + v_th``, is joined to ``v`` by a
    red segment, so the soft reset shows as a drop of exactly ``v_th``.

    Args:
        ax: Axes to draw on.
        v: Membrane potential after reset ``[T]``.
        z: Spikes ``[T]`` (0 or 1).
        v_th: Firing threshold.
        label: Legend label of the trace.
    """
    steps = np.arange(len(v))
    ax.plot(steps, v, color=V_COLOR, marker=".", label=label)
    ax.axhline(v_th, color=THRESHOLD_COLOR, linestyle="--", linewidth=1, label="v_th")
    spike_steps = np.flatnonzero(z > 0)
    if spike_steps.size:
        before_reset = v[spike_steps] + v_th * z[spike_steps]
        ax.vlines(spike_steps, v[spike_steps], before_reset, color=SPIKE_COLOR, label="spike (reset)")
        ax.plot(spike_steps, before_reset, linestyle="none", marker="^", color=SPIKE_COLOR)


def plot_lif_trace(current, tau_mem: float = 2.0, v_th: float = 1.0) -> Figure:
    """Plot the input current, membrane potential and spikes of one LIF neuron.

    Args:
        current: Input current ``[T]``.
        tau_mem: Membrane time constant in time steps.
        v_th: Firing threshold.

    Returns:
        A Figure with two axes sharing the time axis: the current ``i[t]`` on top and the
        membrane potential ``v[t]`` with threshold and spikes below.
    """
    z, v = lif_trace(current, tau_mem, v_th)
    current = torch.as_tensor(current, dtype=torch.float32).reshape(-1).numpy()
    steps = np.arange(len(current))

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax_i, ax_v = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    ax_i.step(steps, current, where="mid", color=CURRENT_COLOR)
    ax_i.set_ylabel("current i[t]")
    draw_membrane(ax_v, v, z, v_th)
    ax_v.set_xlabel("time step t")
    ax_v.set_ylabel("membrane v[t]")
    ax_v.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.suptitle(f"tau_mem = {tau_mem:g}, v_th = {v_th:g}: {int(z.sum())} spikes in {len(z)} steps")
    return fig


def plot_lif_grid(
    amplitudes: Sequence[float],
    tau_mems: Sequence[float],
    *,
    T: int = 40,
    onset: int = 5,
    v_th: float = 1.0,
) -> Figure:
    """Plot LIF membrane traces for a grid of step-current amplitudes and time constants.

    The static counterpart of :func:`ei_tutorial.widgets.lif_explorer`, for pages read
    without a running kernel.

    Args:
        amplitudes: Step-current amplitudes, one row each.
        tau_mems: Membrane time constants, one column each.
        T: Time steps per trace.
        onset: First step of the current.
        v_th: Firing threshold.

    Returns:
        A Figure with ``len(amplitudes) x len(tau_mems)`` axes sharing both axes; each
        title gives the firing rate, spikes per time step.
    """
    fig = Figure(figsize=(3.0 * len(tau_mems), 2.2 * len(amplitudes)), layout="constrained")
    axes = fig.subplots(len(amplitudes), len(tau_mems), sharex=True, sharey=True, squeeze=False)
    for row, amplitude in enumerate(amplitudes):
        for col, tau_mem in enumerate(tau_mems):
            z, v = lif_trace(step_current(T, amplitude, onset), tau_mem, v_th)
            ax = axes[row, col]
            draw_membrane(ax, v, z, v_th)
            ax.set_title(f"i = {amplitude:g}, tau_mem = {tau_mem:g}\nrate {z.mean():.2f}", fontsize="small")
        axes[row, 0].set_ylabel("v[t]")
    for ax in axes[-1]:
        ax.set_xlabel("t")
    return fig


def plot_trace_comparison(
    current,
    traces: Mapping[str, tuple[np.ndarray, np.ndarray]],
    v_th: float = 1.0,
) -> Figure:
    """Plot membrane traces of several neuron implementations side by side.

    Args:
        current: Input current ``[T]`` shared by all traces.
        traces: Maps a panel title to ``(z, v)`` arrays ``[T]``: spikes and the membrane
            potential as the implementation reports it.
        v_th: Firing threshold, drawn as a dashed line.

    Returns:
        A Figure with the current on top and one membrane panel per entry of ``traces``,
        all sharing the time axis. Spike steps are marked with red triangles at ``v_th``.
    """
    current = torch.as_tensor(current, dtype=torch.float32).reshape(-1).numpy()
    steps = np.arange(len(current))
    fig = Figure(figsize=(7, 1.6 + 2.0 * len(traces)), layout="constrained")
    axes = fig.subplots(1 + len(traces), 1, sharex=True)
    axes[0].step(steps, current, where="mid", color=CURRENT_COLOR)
    axes[0].set_ylabel("i[t]")
    for ax, (title, (z, v)) in zip(axes[1:], traces.items()):
        z, v = np.asarray(z), np.asarray(v)
        ax.plot(steps, v, color=V_COLOR, marker=".")
        ax.axhline(v_th, color=THRESHOLD_COLOR, linestyle="--", linewidth=1)
        spike_steps = np.flatnonzero(z > 0)
        ax.plot(spike_steps, np.full(spike_steps.shape, v_th), linestyle="none", marker="^", color=SPIKE_COLOR)
        ax.set_title(f"{title}: spikes at t = {spike_steps.tolist()}", fontsize="small")
        ax.set_ylabel("membrane")
    axes[-1].set_xlabel("time step t")
    return fig
