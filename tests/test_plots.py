"""Tests for ei_tutorial.plots: the figures show the LIF values they claim to show."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ei_tutorial import plots


def test_step_current_values():
    current = plots.step_current(6, 0.5, onset=2)
    assert current.tolist() == [0.0, 0.0, 0.5, 0.5, 0.5, 0.5]


def test_step_current_rejects_bad_onset():
    with pytest.raises(ValueError, match=r"onset must lie in \[0, T\] = \[0, 4\], got 7"):
        plots.step_current(4, 1.0, onset=7)


def test_lif_trace_hand_computed():
    # tau_mem = 2 keeps half the potential: h = 0.6, 0.9, 1.05 -> spike, v = 0.05.
    z, v = plots.lif_trace([0.6, 0.6, 0.6, 0.6], tau_mem=2.0, v_th=1.0)
    assert z.tolist() == [0.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(v, [0.6, 0.9, 0.05, 0.625], atol=1e-6)


def test_plot_lif_trace_draws_membrane():
    current = plots.step_current(20, 0.6, onset=2)
    figure = plots.plot_lif_trace(current, tau_mem=2.0, v_th=1.0)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2
    _, v = plots.lif_trace(current, 2.0, 1.0)
    np.testing.assert_allclose(figure.axes[1].lines[0].get_ydata(), v)
    assert "6 spikes in 20 steps" in figure._suptitle.get_text()


def test_plot_lif_grid_shape_and_rates():
    figure = plots.plot_lif_grid([0.3, 1.2], [1.0, 5.0, 2.0], T=30)
    assert len(figure.axes) == 6
    titles = [ax.get_title() for ax in figure.axes]
    # i * tau_mem > v_th decides whether the neuron fires: 0.3 * 1 and 0.3 * 2 stay below 1.
    assert titles[0].endswith("rate 0.00")
    assert not titles[1].endswith("rate 0.00")
    assert titles[2].endswith("rate 0.00")


def test_plot_trace_comparison_panels():
    z = np.array([0, 1, 0, 1])
    v = np.array([0.5, 0.1, 0.6, 0.2])
    figure = plots.plot_trace_comparison(torch.ones(4), {"a": (z, v), "b": (z, v)}, v_th=1.0)
    assert len(figure.axes) == 3
    assert figure.axes[1].get_title() == "a: spikes at t = [1, 3]"
