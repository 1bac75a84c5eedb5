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
from matplotlib.ticker import MaxNLocator

from ei_tutorial.analysis import IntensityResponse, current_statistics
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


# ---------------------------------------------------------------------------
# Spike encodings, surrogate gradients and a first training run (chapter 2)
# ---------------------------------------------------------------------------

E_COLOR = "tab:red"


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def colormap_colors(n: int, name: str = "viridis") -> list:
    """Return ``n`` colours evenly spaced along a matplotlib colormap."""
    from matplotlib import colormaps

    cmap = colormaps[name]
    return [cmap(k / max(n - 1, 1)) for k in range(n)]


def plot_encodings(image, encodings: Mapping[str, torch.Tensor], *, max_pixels: int = 120) -> Figure:
    """Show one image next to its encodings over time, one raster per encoding.

    Rows are the image's non-zero pixels, brightest at the top; at most ``max_pixels`` of
    them, evenly spaced in that order. Columns are time steps. A dark cell is a spike (or,
    for direct encoding, an intensity shown in grey levels).

    Args:
        image: Intensities ``[H, W]`` or ``[1, H, W]`` in [0, 1].
        encodings: Maps a title to the encoded image ``[T, H, W]`` or ``[T, 1, H, W]``.
        max_pixels: Most pixel rows drawn per raster.

    Returns:
        A Figure with the image on the left and one raster per encoding. Each raster's
        title gives the sum of its values over all pixels (drawn or not) and steps, which
        is the number of spikes for a spike encoding.
    """
    pixels = _as_numpy(image).reshape(-1)
    order = np.argsort(-pixels, kind="stable")
    order = order[pixels[order] > 0]
    if order.size > max_pixels:
        order = order[np.linspace(0, order.size - 1, max_pixels).round().astype(int)]

    fig = Figure(figsize=(2.6 + 2.6 * len(encodings), 3.6), layout="constrained")
    axes = fig.subplots(1, 1 + len(encodings), squeeze=False)[0]
    side = int(round(np.sqrt(pixels.size)))
    axes[0].imshow(pixels.reshape(side, -1), cmap="Greys", vmin=0, vmax=1)
    axes[0].set_title("image")
    axes[0].set_axis_off()
    for ax, (title, encoded) in zip(axes[1:], encodings.items()):
        values = _as_numpy(encoded)
        values = values.reshape(values.shape[0], -1)
        raster = values[:, order].T  # [pixels, T]
        ax.imshow(raster, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(f"{title}\nsum = {values.sum():.0f}", fontsize="small")
        ax.set_xlabel("time step t")
        ax.set_yticks([])
    axes[1].set_ylabel("pixel (brightest on top)")
    return fig


def plot_surrogates(x, derivatives: Mapping[str, torch.Tensor]) -> Figure:
    """Plot the Heaviside step and the derivatives that surrogates put in its place.

    Args:
        x: Points :math:`h - v_{th}` ``[K]``, ascending.
        derivatives: Maps a surrogate's name to its derivative at ``x``, ``[K]``.

    Returns:
        A Figure with two axes: the forward pass ``z = H(h - v_th)`` (shared by every
        surrogate) and the backward pass ``dz/dh`` of each surrogate, with the exact
        derivative (zero away from the threshold) as a dashed black line.
    """
    x = _as_numpy(x)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_forward, ax_backward = fig.subplots(1, 2)
    ax_forward.step(x, (x > 0).astype(float), where="post", color="black")
    ax_forward.set_title("forward pass: z = H(h - v_th)")
    ax_forward.set_xlabel("h - v_th")
    ax_forward.set_ylabel("spike z")
    for name, derivative in derivatives.items():
        ax_backward.plot(x, _as_numpy(derivative), label=name)
    ax_backward.plot(x, np.zeros_like(x), color="black", linestyle="--", label="exact (0 for h != v_th)")
    ax_backward.set_title("backward pass: dz/dh")
    ax_backward.set_xlabel("h - v_th")
    ax_backward.set_ylabel("derivative")
    ax_backward.legend(fontsize="small")
    return fig


def plot_spike_gradients(current, spikes, gradients: Mapping[str, torch.Tensor]) -> Figure:
    """Plot one neuron's input current and spikes over time, and the gradient each backward pass assigns.

    Args:
        current: Input current ``[T]``.
        spikes: Spikes ``[T]``, the same for every entry of ``gradients``.
        gradients: Maps a title to the gradient of the spike count with respect to
            ``current[t]``, ``[T]``.

    Returns:
        A Figure with two axes sharing time: the current with spike steps marked, and
        one gradient line per entry, whose legend label gives the gradient's L2 norm.
    """
    current, spikes = _as_numpy(current).reshape(-1), _as_numpy(spikes).reshape(-1)
    steps = np.arange(current.size)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax_i, ax_grad = fig.subplots(2, 1, sharex=True)
    ax_i.step(steps, current, where="mid", color=CURRENT_COLOR, label="i[t]")
    spike_steps = np.flatnonzero(spikes > 0)
    ax_i.plot(spike_steps, current[spike_steps], linestyle="none", marker="^", color=SPIKE_COLOR, label="spike")
    ax_i.set_ylabel("current i[t]")
    ax_i.set_title(f"{spike_steps.size} spikes in {current.size} steps")
    ax_i.legend(fontsize="small", loc="upper left")
    for title, gradient in gradients.items():
        gradient = _as_numpy(gradient).reshape(-1)
        ax_grad.plot(steps, gradient, marker=".", label=f"{title} (norm {np.linalg.norm(gradient):.3g})")
    ax_grad.set_xlabel("time step t")
    ax_grad.set_ylabel("d(spike count) / d i[t]")
    ax_grad.legend(fontsize="small")
    return fig


def plot_learning_curve(
    losses: Sequence[float],
    accuracy_steps: Sequence[int] | None = None,
    accuracies: Sequence[float] | None = None,
) -> Figure:
    """Plot the training loss per optimizer step and, optionally, the held-out accuracy.

    Args:
        losses: Training loss of each step, the first step numbered 1.
        accuracy_steps: The steps after which the held-out accuracy was measured.
        accuracies: Held-out accuracy (a fraction in [0, 1]) after each of those steps.

    Returns:
        A Figure with one axis for the loss and, when accuracies are given, one for the
        accuracy, whose title states the last value.

    Raises:
        ValueError: If only one of ``accuracy_steps`` and ``accuracies`` is given, or
            their lengths differ.
    """
    if (accuracy_steps is None) != (accuracies is None):
        raise ValueError("pass accuracy_steps and accuracies together, or neither")
    with_accuracy = accuracies is not None
    if with_accuracy and len(accuracy_steps) != len(accuracies):
        raise ValueError(
            f"got {len(accuracy_steps)} accuracy steps but {len(accuracies)} accuracies; "
            "pass one step per accuracy"
        )
    fig = Figure(figsize=(9 if with_accuracy else 5, 3.2), layout="constrained")
    axes = fig.subplots(1, 2 if with_accuracy else 1, squeeze=False)[0]
    axes[0].plot(np.arange(1, len(losses) + 1), _as_numpy(losses))
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("training loss")
    axes[0].set_title("training loss")
    if with_accuracy:
        steps, accuracies = _as_numpy(accuracy_steps), _as_numpy(accuracies)
        axes[1].plot(steps, accuracies, marker="o")
        axes[1].set_xlabel("optimizer step")
        axes[1].set_ylabel("held-out accuracy")
        axes[1].set_ylim(0, 1)
        axes[1].set_title(f"held-out accuracy: {accuracies[-1]:.3f} after step {steps[-1]:.0f}")
    return fig


# ---------------------------------------------------------------------------
# Excitation, inhibition and Dale's law (chapter 3)
# ---------------------------------------------------------------------------


def plot_balance(i_ee, i_sub, *, max_points: int = 3000, seed: int = 0) -> Figure:
    """Plot excitation against subtractive inhibition, and the net current they leave.

    Args:
        i_ee: Excitatory currents :math:`I_{EE}`, any shape.
        i_sub: Subtractive inhibition :math:`I_{sub}`, shaped like ``i_ee``.
        max_points: Most (sample, neuron) pairs drawn in the scatter plot, drawn at random.
        seed: Seed of that draw.

    Returns:
        A Figure with two axes: ``I_sub`` against ``I_EE`` with the diagonal of perfect
        balance, and the histogram of ``I_EE - I_sub`` with its mean. The titles give
        the means of both currents.
    """
    i_ee, i_sub = _as_numpy(i_ee).reshape(-1), _as_numpy(i_sub).reshape(-1)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(i_ee.size, size=min(max_points, i_ee.size), replace=False)
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax_scatter, ax_hist = fig.subplots(1, 2)
    ax_scatter.scatter(i_ee[drawn], i_sub[drawn], s=4, alpha=0.4, color="tab:purple")
    limits = [min(i_ee.min(), i_sub.min()), max(i_ee.max(), i_sub.max())]
    ax_scatter.plot(limits, limits, color="black", linestyle="--", linewidth=1, label="I_sub = I_EE")
    ax_scatter.set_xlabel("excitation I_EE")
    ax_scatter.set_ylabel("subtractive inhibition I_sub")
    ax_scatter.set_title(f"E[I_EE] = {i_ee.mean():.3f}, E[I_sub] = {i_sub.mean():.3f}")
    ax_scatter.legend(fontsize="small")
    net = i_ee - i_sub
    ax_hist.hist(net, bins=60, color="tab:gray")
    ax_hist.axvline(net.mean(), color="black", linestyle="--", label=f"mean {net.mean():.3f}")
    ax_hist.set_xlabel("net current I_EE - I_sub")
    ax_hist.set_ylabel("count")
    ax_hist.set_title(f"net current: std {net.std():.3f}")
    ax_hist.legend(fontsize="small")
    return fig


def plot_dale_projection(
    violations: Mapping[str, Sequence[int]], weights: Mapping[str, torch.Tensor]
) -> Figure:
    """Compare training runs with and without the Dale projection.

    Args:
        violations: Maps a run's name to the number of negative sign-constrained entries
            after each optimizer step.
        weights: Maps a run's name to a weight tensor at the end of that run (e.g.
            :math:`W_{EE}`).

    Returns:
        A Figure with two axes: violations per step for each run, and the histogram of
        each run's final weights with the forbidden region (< 0) shaded.
    """
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_count, ax_hist = fig.subplots(1, 2)
    for name, counts in violations.items():
        counts = _as_numpy(counts)
        ax_count.plot(np.arange(1, counts.size + 1), counts, marker=".", label=f"{name} (last: {counts[-1]:.0f})")
    ax_count.set_xlabel("optimizer step")
    ax_count.set_ylabel("negative entries")
    ax_count.set_title("Dale violations after each step")
    ax_count.legend(fontsize="small")
    all_values = np.concatenate([_as_numpy(w).reshape(-1) for w in weights.values()])
    bins = np.linspace(all_values.min(), all_values.max(), 60)
    for name, weight in weights.items():
        ax_hist.hist(_as_numpy(weight).reshape(-1), bins=bins, histtype="step", linewidth=1.5, label=name)
    ax_hist.axvspan(min(bins[0], 0.0), 0.0, color=E_COLOR, alpha=0.12, label="forbidden (< 0)")
    ax_hist.set_yscale("log")
    ax_hist.set_xlabel("weight value")
    ax_hist.set_ylabel("count")
    ax_hist.set_title("final weights")
    ax_hist.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------
# Subtractive and divisive inhibition (chapters 4 and 5)
# ---------------------------------------------------------------------------


def plot_layer_activity(current, rates, *, title: str = "", rheobase: float | None = None) -> Figure:
    """Plot the distribution of a layer's current and of its E neurons' firing rates.

    Args:
        current: Currents :math:`I` into the E neurons, any shape.
        rates: Firing rate of each E neuron ``[n_E]``, spikes per time step.
        title: Figure title; the mean firing rate is appended.
        rheobase: Smallest constant current that makes the neuron fire, drawn as a
            dashed line (``v_th / tau_mem`` for the LIF neuron); none when None.

    Returns:
        A Figure with two axes: the current histogram and the firing-rate histogram.
    """
    current, rates = _as_numpy(current).reshape(-1), _as_numpy(rates).reshape(-1)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_current, ax_rate = fig.subplots(1, 2)
    ax_current.hist(current, bins=60, color=E_COLOR, alpha=0.7)
    if rheobase is not None:
        ax_current.axvline(rheobase, color="black", linestyle="--", label=f"fires above {rheobase:g}")
        ax_current.legend(fontsize="small")
    ax_current.set_xlabel("current I into E neurons")
    ax_current.set_ylabel("count")
    ax_current.set_title(f"current: mean {current.mean():.3f}, std {current.std():.3f}")
    ax_rate.hist(rates, bins=np.linspace(0, 1, 21), color="tab:gray")
    ax_rate.set_xlabel("firing rate (spikes per step)")
    ax_rate.set_ylabel("E neurons")
    ax_rate.set_title(f"silent: {(rates == 0).mean():.0%}, saturated: {(rates == 1).mean():.0%}")
    fig.suptitle(f"{title}{': ' if title else ''}mean firing rate {rates.mean():.3f}")
    return fig


def plot_activity_sweep(
    parameter: str,
    values: Sequence[float],
    mean_rates: Sequence[float],
    currents: Sequence[torch.Tensor],
    *,
    symbol: str | None = None,
    rheobase: float | None = None,
    log_x: bool = False,
) -> Figure:
    """Plot how a layer's firing rate and current change over a sweep of one parameter.

    Args:
        parameter: The swept parameter's name, for the axis label and title.
        values: Its values.
        mean_rates: Population firing rate at each value.
        currents: Current :math:`I` at each value.
        symbol: The parameter's short name in the legend; ``parameter`` when None.
        rheobase: Firing threshold of a constant current, drawn as a dashed line.
        log_x: Draw the parameter axis on a logarithmic scale (positive values only).

    Returns:
        A Figure with two axes: mean firing rate against the parameter, and one current
        histogram (outline) per value.
    """
    values, mean_rates = _as_numpy(values), _as_numpy(mean_rates)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_rate, ax_hist = fig.subplots(1, 2)
    ax_rate.plot(values, mean_rates, marker="o", color=E_COLOR)
    if log_x:
        ax_rate.set_xscale("log")
    ax_rate.set_xlabel(parameter)
    ax_rate.set_ylabel("mean firing rate")
    ax_rate.set_ylim(-0.02, 1.02)
    ax_rate.set_title(f"firing rate against {parameter}")
    flat = [_as_numpy(c).reshape(-1) for c in currents]
    low = min(np.percentile(c, 0.5) for c in flat)
    high = max(np.percentile(c, 99.5) for c in flat)
    bins = np.linspace(low, high, 80)
    colors = colormap_colors(len(flat))
    for value, current, color in zip(values, flat, colors):
        ax_hist.hist(
            current, bins=bins, histtype="step", linewidth=1.3, color=color,
            label=f"{symbol or parameter} = {value:g}",
        )
    if rheobase is not None:
        ax_hist.axvline(rheobase, color="black", linestyle="--", label=f"fires above {rheobase:g}")
    ax_hist.set_xlabel("current I into E neurons")
    ax_hist.set_ylabel("count")
    ax_hist.set_title("current distribution")
    ax_hist.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_intensity_response(responses: Mapping[str, IntensityResponse], *, title: str = "") -> Figure:
    """Plot firing rate and current spread against input intensity for several layers.

    Args:
        responses: Maps a label to an :class:`ei_tutorial.analysis.IntensityResponse`
            (attributes ``intensities``, ``rate`` and ``current_std``).
        title: Figure title; none when empty.

    Returns:
        A Figure with two axes on a logarithmic intensity axis: the E neurons' mean
        firing rate, and the standard deviation of their current (log scale).
    """
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_rate, ax_std = fig.subplots(1, 2)
    for label, response in responses.items():
        intensities = _as_numpy(response.intensities)
        ax_rate.plot(intensities, _as_numpy(response.rate), marker="o", label=label)
        ax_std.plot(intensities, _as_numpy(response.current_std), marker="o", label=label)
    ax_rate.set_xscale("log")
    ax_rate.set_ylim(-0.02, 1.02)
    ax_rate.set_xlabel("input intensity c (input c x)")
    ax_rate.set_ylabel("mean firing rate")
    ax_rate.set_title("input-output curve")
    ax_std.set_xscale("log")
    ax_std.set_yscale("log")
    ax_std.set_xlabel("input intensity c (input c x)")
    ax_std.set_ylabel("std of current I")
    ax_std.set_title("spread of the current")
    ax_std.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def plot_sample_spread(input_level, spreads: Mapping[str, torch.Tensor]) -> Figure:
    """Plot each sample's spread of current across neurons against its input level.

    Args:
        input_level: One number per sample ``[S]``, e.g. its mean pixel intensity.
        spreads: Maps a label to the standard deviation of each sample's current across
            the E neurons ``[S]``.

    Returns:
        A Figure with one axis per entry, each titled with the correlation between the
        input level and the spread.
    """
    level = _as_numpy(input_level).reshape(-1)
    fig = Figure(figsize=(4.2 * len(spreads), 3.6), layout="constrained")
    axes = fig.subplots(1, len(spreads), squeeze=False)[0]
    for ax, (label, spread) in zip(axes, spreads.items()):
        spread = _as_numpy(spread).reshape(-1)
        ax.scatter(level, spread, s=6, alpha=0.5, color=E_COLOR)
        ax.set_xlabel("mean input intensity of the sample")
        ax.set_ylabel("std of I across E neurons")
        ax.set_ylim(0, None)
        ax.set_title(f"{label}\ncorrelation {np.corrcoef(level, spread)[0, 1]:.2f}", fontsize="small")
    return fig


# ---------------------------------------------------------------------------
# The E-I circuit next to batch normalization (chapter 6)
# ---------------------------------------------------------------------------


def plot_current_comparison(currents: Mapping[str, torch.Tensor]) -> Figure:
    """Compare the currents of several layers: distribution, per-neuron and per-sample moments.

    Args:
        currents: Maps a layer's name to its output current ``[..., N]`` (neurons last;
            every leading dimension counts as a sample).

    Returns:
        A Figure with one histogram per layer on top (titled with mean and std), and
        below two scatter plots of mean against standard deviation: one point per
        neuron (over samples) and one point per sample (over neurons).
    """
    stats = {name: current_statistics(torch.as_tensor(c)) for name, c in currents.items()}
    colors = {name: f"C{k}" for k, name in enumerate(currents)}
    fig = Figure(figsize=(max(9, 3.4 * len(currents)), 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    hist_axes = top.subplots(1, len(currents), sharex=True, squeeze=False)[0]
    for ax, (name, current) in zip(hist_axes, currents.items()):
        ax.hist(_as_numpy(current).reshape(-1), bins=80, color=colors[name])
        ax.set_title(f"{name}\nmean {stats[name].mean:.3f}, std {stats[name].std:.3f}", fontsize="small")
        ax.set_xlabel("current I")
    hist_axes[0].set_ylabel("count")
    ax_neuron, ax_sample = bottom.subplots(1, 2)
    for name in currents:
        ax_neuron.scatter(_as_numpy(stats[name].neuron_mean), _as_numpy(stats[name].neuron_std),
                          s=8, alpha=0.6, color=colors[name], label=name)
        ax_sample.scatter(_as_numpy(stats[name].sample_mean), _as_numpy(stats[name].sample_std),
                          s=8, alpha=0.6, color=colors[name], label=name)
    ax_neuron.set_title("each neuron, over samples")
    ax_sample.set_title("each sample, over neurons")
    for ax in (ax_neuron, ax_sample):
        ax.set_xlabel("mean of I")
        ax.set_ylabel("std of I")
    ax_sample.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# ---------------------------------------------------------------------------
# Deep networks: activity across depth, E-I Init and E-I Prop (chapters 7 to 11)
# ---------------------------------------------------------------------------

#: Axis labels of the per-layer quantities of :class:`ei_tutorial.depth_analysis.DepthProfile`.
DEPTH_QUANTITY_LABELS = {
    "firing_rate": "firing rate (spikes per step)",
    "current_mean": "mean of current I",
    "current_std": "std of current I",
    "silent_fraction": "fraction never spiking",
    "saturated_fraction": "fraction spiking every step",
    "weight_grad_norm": "norm of weight gradient",
}


def _draw_depth_quantity(ax: Axes, profiles: Mapping, quantity: str, log_scale: bool) -> None:
    for k, (label, profile) in enumerate(profiles.items()):
        values = getattr(profile, quantity)
        if values is None:
            continue
        layers = np.arange(1, len(values) + 1)
        ax.plot(layers, _as_numpy(values), marker="o", markersize=3.5, color=f"C{k}", label=label)
    if log_scale:
        # symlog keeps exact zeros (a silent network passes no gradient) visible at the bottom.
        ax.set_yscale("symlog", linthresh=1e-6)
    elif quantity in ("firing_rate", "silent_fraction", "saturated_fraction"):
        ax.set_ylim(-0.03, 1.03 if quantity != "firing_rate" else None)
    if quantity == "current_mean":
        ax.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("layer")
    ax.set_ylabel(DEPTH_QUANTITY_LABELS[quantity])


def plot_depth_profiles(
    profiles: Mapping,
    *,
    quantities: Sequence[str] | None = None,
    log_quantities: Sequence[str] = ("weight_grad_norm",),
    title: str = "",
) -> Figure:
    """Plot per-layer activity of one or more networks against depth.

    Args:
        profiles: Maps a label (e.g. a variant) to an
            :class:`ei_tutorial.depth_analysis.DepthProfile`.
        quantities: Which attributes to draw, one axis each, from
            :data:`DEPTH_QUANTITY_LABELS`; None draws firing rate, current mean and current
            std, and the weight-gradient norm when every profile has one.
        log_quantities: Quantities drawn on a symmetric-log axis (zero stays visible).
        title: Figure title; none when empty.

    Returns:
        A Figure with one axis per quantity, layer 1 (the input side) on the left.

    Raises:
        ValueError: If ``profiles`` is empty or a quantity is unknown.
    """
    if not profiles:
        raise ValueError("plot_depth_profiles needs at least one profile")
    if quantities is None:
        quantities = ["firing_rate", "current_mean", "current_std"]
        if all(profile.weight_grad_norm is not None for profile in profiles.values()):
            quantities.append("weight_grad_norm")
    unknown = [q for q in quantities if q not in DEPTH_QUANTITY_LABELS]
    if unknown:
        raise ValueError(f"unknown quantities {unknown}; expected some of {list(DEPTH_QUANTITY_LABELS)}")
    fig = Figure(figsize=(3.3 * len(quantities) + 1.6, 3.3), layout="constrained")
    axes = fig.subplots(1, len(quantities), squeeze=False)[0]
    for ax, quantity in zip(axes, quantities):
        _draw_depth_quantity(ax, profiles, quantity, quantity in log_quantities)
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def plot_depth_sweep(
    sweep: Mapping[str, Mapping],
    *,
    quantity: str = "firing_rate",
    log_scale: bool = False,
    title: str = "",
) -> Figure:
    """Plot one per-layer quantity for several settings side by side, one axis per setting.

    The static counterpart of a slider explorer: each axis shows what the explorer draws
    for one slider value.

    Args:
        sweep: Maps a setting's label (e.g. ``"depth 8"``) to ``{label: DepthProfile}``.
        quantity: One key of :data:`DEPTH_QUANTITY_LABELS`.
        log_scale: Draw the quantity on a symmetric-log axis.
        title: Figure title; none when empty.

    Returns:
        A Figure with ``len(sweep)`` axes sharing the y axis.

    Raises:
        ValueError: If ``sweep`` is empty or ``quantity`` is unknown.
    """
    if not sweep:
        raise ValueError("plot_depth_sweep needs at least one setting")
    if quantity not in DEPTH_QUANTITY_LABELS:
        raise ValueError(f"unknown quantity {quantity!r}; expected one of {list(DEPTH_QUANTITY_LABELS)}")
    fig = Figure(figsize=(3.2 * len(sweep) + 1.6, 3.2), layout="constrained")
    axes = fig.subplots(1, len(sweep), sharey=True, squeeze=False)[0]
    for ax, (setting, profiles) in zip(axes, sweep.items()):
        _draw_depth_quantity(ax, profiles, quantity, log_scale)
        ax.set_title(setting)
    for ax in axes[1:]:
        ax.set_ylabel("")
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    return fig


#: Moments compared by :func:`plot_init_check`: (label, measured attribute, predicted attribute).
INIT_CHECK_MOMENTS = (
    ("E[I_EE]", "i_ee_mean", "i_mean_predicted"),
    ("E[I_sub]", "i_sub_mean", "i_mean_predicted"),
    ("Var[I_EE]", "i_ee_var", "i_ee_var_predicted"),
    ("Var[I_EE - I_sub]", "net_var", "net_var_predicted"),
    ("E[I_div]", "i_div_mean", "i_div_mean_predicted"),
    ("std of I", "current_std", "current_std_predicted"),
)


def plot_init_check(checks: Mapping) -> Figure:
    """Plot measured over predicted moments of E-I layers' currents after E-I Init.

    Args:
        checks: Maps a label (e.g. the kind of input) to an
            :class:`ei_tutorial.depth_analysis.InitCheck`.

    Returns:
        A Figure with one group of bars per moment of :data:`INIT_CHECK_MOMENTS`, one bar
        per check, each labelled with its value; a bar at 1 means the prediction holds.
    """
    labels = [label for label, _, _ in INIT_CHECK_MOMENTS]
    positions = np.arange(len(labels))
    width = 0.8 / max(len(checks), 1)
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, (name, check) in enumerate(checks.items()):
        ratios = [getattr(check, measured) / getattr(check, predicted) for _, measured, predicted in INIT_CHECK_MOMENTS]
        bars = ax.bar(positions + (k - (len(checks) - 1) / 2) * width, ratios, width, label=name, color=f"C{k}")
        ax.bar_label(bars, labels=[f"{r:.2f}" for r in ratios], fontsize="x-small", padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(positions, labels)
    ax.set_ylabel("measured / predicted")
    ax.set_title("E-I Init: measured moments relative to the derivation")
    ax.legend(fontsize="small")
    return fig


def plot_zero_divisor(input_map, i_div_map, *, title: str = "") -> Figure:
    """Show where a convolutional E-I layer's divisive inhibition is exactly zero.

    Args:
        input_map: The layer's input for one sample and time step ``[C, H, W]`` (or
            ``[H, W]``); channels are summed for display.
        i_div_map: Its divisive inhibition :math:`I_{div}` for the same sample and step,
            one channel ``[H', W']``.
        title: Figure title; none when empty.

    Returns:
        A Figure with three axes: the input, :math:`I_{div}`, and the positions where
        :math:`I_{div} = 0`, titled with their fraction.
    """
    image = _as_numpy(input_map)
    image = image.sum(axis=0) if image.ndim == 3 else image
    i_div = _as_numpy(i_div_map)
    zero = i_div == 0
    fig = Figure(figsize=(9.5, 3.4), layout="constrained")
    ax_in, ax_div, ax_zero = fig.subplots(1, 3)
    ax_in.imshow(image, cmap="gray_r")
    ax_in.set_title("input spikes (summed over channels)", fontsize="small")
    shown = ax_div.imshow(i_div, cmap="viridis")
    fig.colorbar(shown, ax=ax_div, shrink=0.8)
    ax_div.set_title("divisive inhibition I_div", fontsize="small")
    ax_zero.imshow(zero, cmap="Reds", vmin=0, vmax=1)
    ax_zero.set_title(f"I_div = 0 at {zero.mean():.0%} of positions", fontsize="small")
    for ax in (ax_in, ax_div, ax_zero):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


def plot_gradient_rms(rms: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Figure:
    """Compare the gradient size of W_EE, W_IE and W_EI per layer under several settings.

    Args:
        rms: Maps a setting's label to the result of
            :func:`ei_tutorial.depth_analysis.ei_gradient_rms`
            (``{layer: {"weight_ee": rms, "weight_ie": rms, "weight_ei": rms}}``).

    Returns:
        A Figure with one axis per setting: grouped bars (one group per layer) of the
        root-mean-square gradient entry on a logarithmic axis, shared between the axes.
    """
    params = ("weight_ee", "weight_ie", "weight_ei")
    names = {"weight_ee": "W_EE", "weight_ie": "W_IE", "weight_ei": "W_EI"}
    fig = Figure(figsize=(4.6 * len(rms) + 1.0, 3.6), layout="constrained")
    axes = fig.subplots(1, len(rms), sharey=True, squeeze=False)[0]
    for ax, (setting, per_layer) in zip(axes, rms.items()):
        layers = list(per_layer)
        positions = np.arange(len(layers))
        for k, param in enumerate(params):
            values = [per_layer[layer][param] for layer in layers]
            ax.bar(positions + (k - 1) * 0.27, values, 0.27, label=names[param], color=f"C{k}")
        ax.set_xticks(positions, [str(i + 1) for i in positions])
        ax.set_xlabel("E-I layer")
        ax.set_yscale("log")
        ax.set_title(setting, fontsize="small")
    axes[0].set_ylabel("RMS gradient entry")
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def plot_training_traces(traces: Mapping, *, chance_loss: float | None = None) -> Figure:
    """Plot the loss and gradient norm per step of several short training runs.

    Args:
        traces: Maps a run's label to an :class:`ei_tutorial.depth_analysis.TrainingTrace`.
        chance_loss: Loss of uniform guessing (``ln(classes)``), drawn as a dotted line.

    Returns:
        A Figure with two axes: training loss per step, and the gradient norm per step on
        a logarithmic axis. A run that stopped on a NaN or infinite value ends in a cross,
        and its legend entry names the step.
    """
    fig = Figure(figsize=(10.5, 3.6), layout="constrained")
    ax_loss, ax_grad = fig.subplots(1, 2)
    for k, (label, trace) in enumerate(traces.items()):
        color = f"C{k}"
        losses, grads = _as_numpy(trace.losses), _as_numpy(trace.grad_norms)
        steps = np.arange(len(losses))
        stopped = trace.first_nonfinite_step
        finite = steps if stopped is None else steps[:stopped]
        if stopped is not None:
            label = f"{label} (non-finite at step {stopped})"
        ax_loss.plot(finite, losses[finite], color=color, label=label)
        ax_grad.plot(finite, grads[finite], color=color)
        if stopped is not None and stopped > 0:
            ax_loss.plot(stopped - 1, losses[stopped - 1], marker="x", markersize=9, color=color)
            ax_grad.plot(stopped - 1, grads[stopped - 1], marker="x", markersize=9, color=color)
    if chance_loss is not None:
        ax_loss.axhline(chance_loss, color="black", linestyle=":", linewidth=1, label="chance")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("training loss")
    ax_grad.set_xlabel("optimizer step")
    ax_grad.set_ylabel("gradient norm (all parameters)")
    ax_grad.set_yscale("log")
    ax_loss.legend(fontsize="x-small")
    return fig


def plot_training_histories(histories: Mapping[str, Sequence[Mapping]], *, title: str = "") -> Figure:
    """Plot per-epoch training records of several runs side by side.

    Args:
        histories: Maps a run's label to its records, one per epoch, as
            :func:`ei_tutorial.training.train` returns them in ``TrainResult.history``
            (keys ``epoch``, ``train_loss``, ``heldout_acc`` and ``firing_rate``, the
            last a mapping from layer name to rate).
        title: Figure title; none when empty.

    Returns:
        A Figure with three axes against the epoch: training loss, held-out accuracy
        (titled with each run's last value), and the firing rate averaged over layers.
    """
    fig = Figure(figsize=(12, 3.5), layout="constrained")
    ax_loss, ax_acc, ax_rate = fig.subplots(1, 3)
    last = []
    for k, (label, records) in enumerate(histories.items()):
        epochs = [record["epoch"] for record in records]
        rates = [float(np.mean(list(record["firing_rate"].values()))) for record in records]
        style = {"marker": "o", "markersize": 4, "color": f"C{k}", "label": label}
        ax_loss.plot(epochs, [record["train_loss"] for record in records], **style)
        ax_acc.plot(epochs, [record["heldout_acc"] for record in records], **style)
        ax_rate.plot(epochs, rates, **style)
        last.append(f"{label} {records[-1]['heldout_acc']:.1%}")
    ax_loss.set_ylabel("training loss")
    ax_acc.set_ylabel("held-out accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_title("last: " + ", ".join(last), fontsize="small")
    ax_rate.set_ylabel("firing rate, mean over layers")
    ax_rate.set_ylim(bottom=0)
    for ax in (ax_loss, ax_acc, ax_rate):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rate.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def plot_training_snapshots(snapshots: Sequence) -> Figure:
    """Plot how E-I balance, firing rate and current spread of each layer evolve in training.

    Args:
        snapshots: :class:`ei_tutorial.depth_analysis.Snapshot` objects in training order,
            all of the same model and measured on the same inputs.

    Returns:
        A Figure with three axes against the optimizer step, one line per dividing E-I
        layer: the balance :math:`E[I_{sub}] / E[I_{EE}]`, the firing rate, and the
        standard deviation of the current :math:`I`.
    """
    steps = [snapshot.step for snapshot in snapshots]
    names = snapshots[0].balance.names
    colors = colormap_colors(len(names))
    fig = Figure(figsize=(12, 3.5), layout="constrained")
    ax_ratio, ax_rate, ax_std = fig.subplots(1, 3)
    for k, (name, color) in enumerate(zip(names, colors)):
        style = {"marker": "o", "markersize": 3.5, "color": color, "label": f"layer {k + 1}"}
        ax_ratio.plot(steps, [float(s.balance.inhibition_ratio[k]) for s in snapshots], **style)
        ax_rate.plot(steps, [float(s.activity.firing_rate[k]) for s in snapshots], **style)
        ax_std.plot(steps, [float(s.balance.current_std[k]) for s in snapshots], **style)
    ax_ratio.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax_ratio.set_ylabel("E[I_sub] / E[I_EE]")
    ax_ratio.set_title("balance (1: inhibition matches excitation)", fontsize="small")
    ax_rate.set_ylabel("firing rate (spikes per step)")
    ax_rate.set_ylim(bottom=0)
    ax_std.set_ylabel("std of current I")
    ax_std.set_ylim(bottom=0)
    for ax in (ax_ratio, ax_rate, ax_std):
        ax.set_xlabel("optimizer step")
    ax_std.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def plot_gain_distributions(snapshots: Sequence, *, bins: int = 30) -> Figure:
    """Plot the distributions of the gains g_E and g_I of each layer at several points of training.

    Args:
        snapshots: :class:`ei_tutorial.depth_analysis.Snapshot` objects to compare, e.g.
            the first, a middle and the last one.
        bins: Histogram bins per axis.

    Returns:
        A Figure with two rows (:math:`g_E`, :math:`g_I`) and one column per dividing E-I
        layer; each axis overlays one outlined histogram per snapshot.
    """
    names = list(snapshots[0].gains)
    colors = colormap_colors(len(snapshots))
    fig = Figure(figsize=(3.0 * len(names) + 1.6, 5.2), layout="constrained")
    axes = fig.subplots(2, len(names), squeeze=False)
    for row, (key, symbol) in enumerate((("gain_e", "g_E"), ("gain_i", "g_I"))):
        for col, name in enumerate(names):
            ax = axes[row, col]
            values = [_as_numpy(snapshot.gains[name][key]) for snapshot in snapshots]
            low = min(v.min() for v in values)
            high = max(v.max() for v in values)
            edges = np.linspace(low, high, bins + 1) if high > low else np.linspace(low - 0.01, high + 0.01, bins + 1)
            for snapshot, value, color in zip(snapshots, values, colors):
                ax.hist(value, bins=edges, histtype="step", linewidth=1.4, color=color, label=f"step {snapshot.step}")
            ax.set_xlabel(symbol)
            if row == 0:
                ax.set_title(f"layer {col + 1}", fontsize="small")
        axes[row, 0].set_ylabel("neurons")
    axes[0, -1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig
