"""Tests for ei_tutorial.widgets: slider changes redraw the figure."""

from __future__ import annotations

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from ei_tutorial.widgets import (
    LIFExplorer,
    SliderExplorer,
    divisive_inhibition_explorer,
    lif_explorer,
    slider_explorer,
    subtractive_inhibition_explorer,
)


def test_lif_explorer_initial_figure():
    explorer = lif_explorer(T=30, amplitude=0.3, tau_mem=2.0)
    assert isinstance(explorer, LIFExplorer)
    # 0.3 * tau_mem = 0.6 stays below v_th = 1, so the neuron is silent.
    assert "0 spikes in 30 steps" in explorer.figure._suptitle.get_text()


def test_lif_explorer_redraws_on_slider_change():
    explorer = lif_explorer(T=30, amplitude=0.3, tau_mem=2.0)
    first = explorer.figure
    explorer.tau_mem.value = 5.0  # 0.3 * 5 = 1.5 > v_th: now it fires
    assert explorer.figure is not first
    assert "tau_mem = 5" in explorer.figure._suptitle.get_text()
    assert "0 spikes" not in explorer.figure._suptitle.get_text()
    assert first.axes == []  # the old figure was cleared


# --- the generic slider explorer and the inhibition explorers ----------------------------


def _pixels() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(32, 49, generator=generator)
    return values * (torch.rand(32, 49, generator=generator) < 0.3)


def _titled_figure(value: float) -> Figure:
    figure = Figure()
    figure.subplots().plot([0, 1], [0, value])
    figure.suptitle(f"value {value:g}")
    return figure


def test_slider_explorer_redraws_with_new_value():
    slider = ipywidgets.FloatSlider(value=1.0, min=0.0, max=5.0)
    explorer = slider_explorer(_titled_figure, value=slider)
    assert isinstance(explorer, SliderExplorer)
    first = explorer.figure
    slider.value = 2.5
    assert explorer.figure is not first
    assert explorer.figure._suptitle.get_text() == "value 2.5"
    assert first.axes == []  # the old figure was cleared


def test_slider_explorer_keeps_pyplot_figure_count():
    def pyplot_figure(value: float):
        figure, ax = plt.subplots()  # registered with pyplot, unlike the library's figures
        ax.set_title(f"value {value:g}")
        return figure

    before = len(plt.get_fignums())
    slider = ipywidgets.FloatSlider(value=1.0, min=0.0, max=5.0)
    explorer = slider_explorer(pyplot_figure, value=slider)
    counts = []
    for value in (2.0, 3.0, 4.0, 5.0):
        slider.value = value
        counts.append(len(plt.get_fignums()))
    assert counts == [before + 1] * 4
    assert explorer.figure.axes[0].get_title() == "value 5"
    plt.close(explorer.figure)


def test_slider_explorer_rejects_no_sliders():
    with pytest.raises(ValueError, match="at least one slider"):
        slider_explorer(_titled_figure)


def test_subtractive_explorer_updates_title():
    explorer = subtractive_inhibition_explorer(_pixels(), n_e=32, T=4)
    assert explorer.figure._suptitle.get_text().startswith("s = 1.00, E:I ratio 4:1")
    before = len(plt.get_fignums())
    for value in (0.0, 0.5, 1.5):
        explorer.sliders["inhibition_scale"].value = value
        assert len(plt.get_fignums()) == before
    explorer.sliders["ei_ratio"].value = 8
    assert explorer.figure._suptitle.get_text().startswith("s = 1.50, E:I ratio 8:1")


def _mean_rate(title: str) -> float:
    # The suptitle ends with "mean firing rate <value>".
    return float(title.rsplit(" ", 1)[-1])


def test_subtractive_explorer_no_inhibition_fires_more():
    explorer = subtractive_inhibition_explorer(_pixels(), n_e=32, T=4)
    balanced = explorer.figure._suptitle.get_text()
    explorer.sliders["inhibition_scale"].value = 0.0
    unbalanced = explorer.figure._suptitle.get_text()
    assert _mean_rate(unbalanced) > _mean_rate(balanced)


def test_divisive_explorer_updates_title_and_keeps_reference():
    x = _pixels()
    explorer = divisive_inhibition_explorer(x, (0.5, 1.0, 2.0), n_e=32, T=4)
    reference = explorer.figure.axes[0].lines[0].get_ydata().copy()
    before = len(plt.get_fignums())
    for value in (0.5, 2.0, 4.0):
        explorer.sliders["gain_i_scale"].value = value
        assert len(plt.get_fignums()) == before
    assert explorer.figure._suptitle.get_text() == "g_I = 4 x its E-I Init value"
    # The subtractive-only curve does not depend on g_I.
    assert (explorer.figure.axes[0].lines[0].get_ydata() == reference).all()
