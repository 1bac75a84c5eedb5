"""Interactive explorers for the chapters: ipywidgets sliders wired to :mod:`ei_tutorial.plots`.

Widgets need a running Jupyter kernel. Every chapter that shows one also shows a static
figure over several slider values, so that the published pages teach without a kernel.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import clear_output, display
from matplotlib.figure import Figure
from torch import Tensor

from ei_tutorial.analysis import IntensityResponse, build_ei_layer, intensity_response, layer_activity
from ei_tutorial.depth_analysis import depth_variant_profiles, ei_mlp_profile
from ei_tutorial.neurons import LIF
from ei_tutorial.plots import (
    plot_depth_profiles,
    plot_intensity_response,
    plot_layer_activity,
    plot_lif_trace,
    step_current,
)


class LIFExplorer:
    """Sliders for the step-current amplitude and ``tau_mem`` of one LIF neuron.

    Each slider change redraws :func:`ei_tutorial.plots.plot_lif_trace` in an
    ``ipywidgets.Output``, replacing the previous figure.

    Args:
        T: Time steps of the simulation.
        v_th: Firing threshold (fixed).
        amplitude: Initial step-current amplitude.
        tau_mem: Initial membrane time constant, in time steps.
        onset: First step of the current.

    Attributes:
        amplitude: The amplitude slider (``ipywidgets.FloatSlider``).
        tau_mem: The ``tau_mem`` slider (``ipywidgets.FloatSlider``).
        output: The ``ipywidgets.Output`` that shows the figure.
        figure: The figure drawn last.
        widget: The whole explorer as one ``ipywidgets.VBox``.
    """

    def __init__(
        self,
        T: int = 60,
        v_th: float = 1.0,
        amplitude: float = 0.6,
        tau_mem: float = 2.0,
        onset: int = 5,
    ) -> None:
        self.T = T
        self.v_th = v_th
        self.onset = onset
        slider_style = {"description_width": "initial"}
        self.amplitude = widgets.FloatSlider(
            value=amplitude, min=0.0, max=2.0, step=0.05, description="current i", style=slider_style,
            continuous_update=False,
        )
        self.tau_mem = widgets.FloatSlider(
            value=tau_mem, min=1.0, max=20.0, step=0.5, description="tau_mem", style=slider_style,
            continuous_update=False,
        )
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.widget = widgets.VBox([widgets.HBox([self.amplitude, self.tau_mem]), self.output])
        self.amplitude.observe(self._on_change, names="value")
        self.tau_mem.observe(self._on_change, names="value")
        self.redraw()

    def redraw(self) -> Figure:
        """Draw the figure for the current slider values into the output area.

        Returns:
            The new figure.
        """
        current = step_current(self.T, self.amplitude.value, self.onset)
        figure = plot_lif_trace(current, tau_mem=self.tau_mem.value, v_th=self.v_th)
        if self.figure is not None:
            self.figure.clear()  # release the old figure's artists
        self.figure = figure
        with self.output:
            clear_output(wait=True)
            display(figure)
        return figure

    def _on_change(self, change: dict) -> None:
        self.redraw()

    def _ipython_display_(self) -> None:
        display(self.widget)


def lif_explorer(**kwargs) -> LIFExplorer:
    """Build a :class:`LIFExplorer`; the keyword arguments are its constructor's.

    Returns:
        The explorer. As a notebook cell's last value it shows its sliders and figure.
    """
    return LIFExplorer(**kwargs)


# ---------------------------------------------------------------------------
# A generic slider explorer, and the inhibition explorers of chapters 4 and 5
# ---------------------------------------------------------------------------


class SliderExplorer:
    """Sliders wired to a figure-returning function; every change redraws the figure in place.

    Each redraw calls ``plot_fn(**values)`` with the sliders' current values, shows the new
    figure in one ``ipywidgets.Output`` (``clear_output(wait=True)`` first) and releases
    the previous figure, so figures do not pile up however often the sliders move.

    Args:
        plot_fn: Function of the slider values, by keyword, returning a Figure.
        sliders: Maps each keyword of ``plot_fn`` to an ipywidgets value widget.

    Attributes:
        sliders: The value widgets, by keyword.
        output: The ``ipywidgets.Output`` that shows the figure.
        figure: The figure drawn last.
        widget: The whole explorer as one ``ipywidgets.VBox``.
    """

    def __init__(self, plot_fn, sliders: Mapping[str, widgets.ValueWidget]) -> None:
        if not sliders:
            raise ValueError("SliderExplorer needs at least one slider; pass them as keyword arguments")
        self.plot_fn = plot_fn
        self.sliders = dict(sliders)
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.widget = widgets.VBox([widgets.HBox(list(self.sliders.values())), self.output])
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        self.redraw()

    def values(self) -> dict:
        """Return the sliders' current values, by keyword."""
        return {name: slider.value for name, slider in self.sliders.items()}

    def redraw(self) -> Figure:
        """Draw the figure for the current slider values into the output area.

        Returns:
            The new figure.
        """
        figure = self.plot_fn(**self.values())
        if self.figure is not None:
            plt.close(self.figure)  # a no-op unless plot_fn registered the figure with pyplot
            self.figure.clear()
        self.figure = figure
        with self.output:
            clear_output(wait=True)
            display(figure)
        return figure

    def _on_change(self, change: dict) -> None:
        self.redraw()

    def _ipython_display_(self) -> None:
        display(self.widget)


def slider_explorer(plot_fn, **sliders: widgets.ValueWidget) -> SliderExplorer:
    """Build a :class:`SliderExplorer` from a plot function and its sliders, by keyword.

    Example:
        ``slider_explorer(lambda tau_mem: plot_lif_trace(current, tau_mem), tau_mem=FloatSlider(...))``

    Returns:
        The explorer. As a notebook cell's last value it shows its sliders and figure.
    """
    return SliderExplorer(plot_fn, sliders)


def _slider_style() -> dict:
    return {"description_width": "initial"}


def subtractive_inhibition_explorer(x: Tensor, *, n_e: int = 256, T: int = 8, seed: int = 0) -> SliderExplorer:
    """Explore how subtractive inhibition sets the activity of an E-I layer's E neurons.

    Sliders: the inhibition strength ``s`` (a factor on :math:`W_{EI}`) and the E:I ratio.
    Each change builds an :class:`~ei_tutorial.EILinear` with ``divisive=False``, initialises
    it by E-I Init on ``x``, and plots :func:`ei_tutorial.plots.plot_layer_activity` for
    LIF neurons (``tau_mem = 2``, ``v_th = 1``) driven by its current for ``T`` steps.

    Args:
        x: Input batch ``[B, in_features]``, non-negative (e.g. flattened MNIST images).
        n_e: Number of E neurons; a multiple of 16, so that every offered E:I ratio divides it.
        T: Time steps.
        seed: Seed of the layer's weights.

    Returns:
        The explorer.
    """
    lif = LIF()

    def draw(inhibition_scale: float, ei_ratio: int) -> Figure:
        layer = build_ei_layer(
            x, n_e, ei_ratio=ei_ratio, inhibition_scale=inhibition_scale, divisive=False, seed=seed
        )
        activity = layer_activity(layer, x, T=T, lif=lif)
        return plot_layer_activity(
            activity.currents.current, activity.rates, rheobase=lif.v_th / lif.tau_mem,
            title=f"s = {inhibition_scale:.2f}, E:I ratio {ei_ratio}:1",
        )

    return slider_explorer(
        draw,
        inhibition_scale=widgets.FloatSlider(
            value=1.0, min=0.0, max=2.0, step=0.05, description="inhibition strength s",
            style=_slider_style(), continuous_update=False,
        ),
        ei_ratio=widgets.SelectionSlider(
            options=[1, 2, 4, 8, 16], value=4, description="E:I ratio",
            style=_slider_style(), continuous_update=False,
        ),
    )


def divisive_inhibition_explorer(
    x: Tensor,
    intensities: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
    *,
    n_e: int = 256,
    T: int = 8,
    seed: int = 0,
    reference: IntensityResponse | None = None,
) -> SliderExplorer:
    """Explore how divisive inhibition's gain :math:`g_I` sets an E-I layer's input-output curve.

    One slider multiplies the inhibitory gain :math:`g_I` set by E-I Init. Each change plots
    :func:`ei_tutorial.plots.plot_intensity_response` for the full circuit at that gain,
    next to the same layer without division.

    Args:
        x: Input batch ``[B, in_features]``, non-negative.
        intensities: Factors ``c`` on the input.
        n_e: Number of E neurons.
        T: Time steps.
        seed: Seed of the layer's weights.
        reference: The response of the layer without division, if already computed
            with the same ``x``, ``intensities``, ``n_e``, ``T`` and ``seed``; computed
            once here when None.

    Returns:
        The explorer.
    """
    lif = LIF()
    if reference is None:
        reference = intensity_response(
            build_ei_layer(x, n_e, divisive=False, seed=seed), x, intensities, T=T, lif=lif
        )
    without_division = reference

    def draw(gain_i_scale: float) -> Figure:
        layer = build_ei_layer(x, n_e, gain_i_scale=gain_i_scale, seed=seed)
        responses = {
            "subtractive only": without_division,
            f"with division, g_I x {gain_i_scale:.3g}": intensity_response(layer, x, intensities, T=T, lif=lif),
        }
        return plot_intensity_response(responses, title=f"g_I = {gain_i_scale:.3g} x its E-I Init value")

    return slider_explorer(
        draw,
        gain_i_scale=widgets.FloatLogSlider(
            value=1.0, base=2, min=-3, max=3, step=0.25, description="g_I factor",
            style=_slider_style(), continuous_update=False,
        ),
    )


# ---------------------------------------------------------------------------
# Deep networks: activity layer by layer (chapters 7 and 8)
# ---------------------------------------------------------------------------


def depth_explorer(
    inputs: Tensor,
    *,
    width: int = 128,
    plain_gain: float = 8.0,
    depths: Sequence[int] = (2, 4, 6, 8, 10, 12, 14, 16),
    seed: int = 0,
) -> SliderExplorer:
    """Explore firing rate, current spread and pinned neurons against depth for four MLPs.

    One slider sets the number of hidden layers. Each change builds four spiking MLPs of
    that depth with :func:`ei_tutorial.models.build_model`: plain with PyTorch's default
    initialisation, plain re-initialised at ``plain_gain`` by
    :func:`ei_tutorial.depth_analysis.rescale_init_`, batch normalization, and E-I
    initialised by :func:`ei_tutorial.ei_init_` on ``inputs``; then plots each layer's
    firing rate, current spread, and fractions of neurons that never spike or spike at
    every step (:func:`ei_tutorial.plots.plot_depth_profiles`).

    Args:
        inputs: Time-first images ``[T, B, C, S, S]`` (e.g. direct-encoded MNIST).
        width: Neurons per hidden layer.
        plain_gain: Gain of the re-initialised plain network.
        depths: The depths the slider offers.
        seed: Seed of every model's weights.

    Returns:
        The explorer.
    """
    def draw(depth: int) -> Figure:
        profiles = depth_variant_profiles(inputs, depth, width=width, plain_gain=plain_gain, seed=seed)
        return plot_depth_profiles(
            profiles, quantities=("firing_rate", "current_std", "silent_fraction", "saturated_fraction"),
            log_quantities=("current_std",), title=f"{depth} hidden layers of {width} neurons",
        )

    return slider_explorer(
        draw,
        depth=widgets.SelectionSlider(
            options=list(depths), value=depths[len(depths) // 2], description="hidden layers",
            style=_slider_style(), continuous_update=False,
        ),
    )


def ei_init_explorer(
    inputs: Tensor,
    *,
    width: int = 256,
    depths: Sequence[int] = (2, 4, 6, 8, 10, 12, 14, 16),
    ratios: Sequence[int] = (1, 2, 4, 8, 16),
    seed: int = 0,
) -> SliderExplorer:
    """Explore the per-layer current and firing rate of a deep E-I MLP right after E-I Init.

    Sliders: the number of hidden layers and the E:I ratio. Each change builds
    ``build_model("mlp", "ei", widths=[width] * depth, layer_kwargs={"ei_ratio": ratio})``,
    initialises it by :func:`ei_tutorial.ei_init_` on ``inputs`` and plots the mean and
    standard deviation of each layer's current and its firing rate
    (:func:`ei_tutorial.plots.plot_depth_profiles`).

    Args:
        inputs: Time-first model input ``[T, B, ...]``.
        width: Neurons per hidden layer; every offered ratio must divide it.
        depths: The depths the slider offers.
        ratios: The E:I ratios the slider offers.
        seed: Seed of the weights.

    Returns:
        The explorer.

    Raises:
        ValueError: If a ratio does not divide ``width``.
    """
    bad = [ratio for ratio in ratios if width % ratio]
    if bad:
        raise ValueError(f"E:I ratios {bad} do not divide width={width}; choose ratios that divide it")

    def draw(depth: int, ei_ratio: int) -> Figure:
        profile = ei_mlp_profile(inputs, depth, width=width, ei_ratio=ei_ratio, seed=seed)
        return plot_depth_profiles(
            {f"E:I {ei_ratio}:1": profile}, quantities=("current_mean", "current_std", "firing_rate"),
            title=f"E-I MLP after E-I Init: {depth} hidden layers of {width} neurons, E:I ratio {ei_ratio}:1",
        )

    return slider_explorer(
        draw,
        depth=widgets.SelectionSlider(
            options=list(depths), value=depths[len(depths) // 2], description="hidden layers",
            style=_slider_style(), continuous_update=False,
        ),
        ei_ratio=widgets.SelectionSlider(
            options=list(ratios), value=4 if 4 in ratios else ratios[0], description="E:I ratio",
            style=_slider_style(), continuous_update=False,
        ),
    )
