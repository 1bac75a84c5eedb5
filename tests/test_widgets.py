"""Tests for ei_tutorial.widgets: slider changes redraw the figure."""

from __future__ import annotations

from ei_tutorial.widgets import LIFExplorer, lif_explorer


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
