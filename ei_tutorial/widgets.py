"""Interactive explorers for the chapters: ipywidgets sliders wired to :mod:`ei_tutorial.plots`.

Widgets need a running Jupyter kernel. Every chapter that shows one also shows a static
figure over several slider values, so that the published pages teach without a kernel.
"""

from __future__ import annotations

import ipywidgets as widgets
from IPython.display import clear_output, display
from matplotlib.figure import Figure

from ei_tutorial.plots import plot_lif_trace, step_current


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
