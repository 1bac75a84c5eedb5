"""Tests for ei_tutorial.plots: the figures show the LIF values they claim to show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ei_tutorial import plots
from ei_tutorial.analysis import IntensityResponse


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


# --- chapters 2 to 6: encodings, surrogates, balance, inhibition, comparison --------------


def test_plot_encodings_titles_count_all_pixels():
    image = torch.zeros(1, 4, 4)
    image[0, 0, :3] = torch.tensor([1.0, 0.5, 0.25])
    encoded = torch.zeros(5, 1, 4, 4)
    encoded[:, 0, 0, 0] = 1.0  # 5 spikes on a drawn pixel
    encoded[2, 0, 3, 3] = 1.0  # 1 spike on a black pixel, which is not drawn
    figure = plots.plot_encodings(image, {"rate": encoded, "direct": image.expand(5, 1, 4, 4)}, max_pixels=2)
    assert len(figure.axes) == 3
    assert figure.axes[1].get_title() == "rate\nsum = 6"
    assert figure.axes[2].get_title() == "direct\nsum = 9"
    assert figure.axes[1].images[0].get_array().shape == (2, 5)  # max_pixels rows, T columns


def test_plot_surrogates_draws_given_derivatives():
    x = torch.linspace(-1, 1, 5)
    derivative = torch.tensor([0.1, 0.5, 1.0, 0.5, 0.1])
    figure = plots.plot_surrogates(x, {"sigmoid": derivative})
    forward, backward = figure.axes
    assert forward.get_title() == "forward pass: z = H(h - v_th)"
    np.testing.assert_allclose(backward.lines[0].get_ydata(), derivative.numpy())
    np.testing.assert_allclose(backward.lines[1].get_ydata(), np.zeros(5))  # the exact derivative


def test_plot_spike_gradients_labels_norms():
    gradient = torch.tensor([3.0, 4.0, 0.0])
    figure = plots.plot_spike_gradients(torch.ones(3), torch.tensor([0.0, 1.0, 1.0]), {"surrogate": gradient})
    assert figure.axes[0].get_title() == "2 spikes in 3 steps"
    assert figure.axes[1].get_legend().get_texts()[0].get_text() == "surrogate (norm 5)"


def test_plot_learning_curve_accuracy_title():
    figure = plots.plot_learning_curve([2.3, 1.0, 0.5], [2, 3], [0.5, 0.875])
    assert len(figure.axes) == 2
    assert figure.axes[1].get_title() == "held-out accuracy: 0.875 after step 3"


def test_plot_learning_curve_loss_only():
    assert len(plots.plot_learning_curve([1.0, 0.5]).axes) == 1


def test_plot_learning_curve_rejects_mismatch():
    with pytest.raises(ValueError, match="2 accuracy steps but 1 accuracies"):
        plots.plot_learning_curve([1.0, 0.5], [1, 2], [0.3])


def test_plot_balance_titles_by_hand():
    i_ee = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    i_sub = torch.tensor([[2.0, 2.0], [1.0, 1.0]])
    figure = plots.plot_balance(i_ee, i_sub)
    scatter, hist = figure.axes
    assert scatter.get_title() == "E[I_EE] = 2.000, E[I_sub] = 1.500"
    # net = [-1, 1, 1, 1]: mean 0.5, population std sqrt(0.75)
    assert hist.get_title() == "net current: std 0.866"
    assert hist.get_legend().get_texts()[0].get_text() == "mean 0.500"


def test_plot_dale_projection_legend_last_counts():
    figure = plots.plot_dale_projection(
        {"plain": [1, 4, 9], "projected": [0, 0, 0]},
        {"plain": torch.tensor([-0.1, 0.2]), "projected": torch.tensor([0.0, 0.2])},
    )
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["plain (last: 9)", "projected (last: 0)"]


def test_plot_layer_activity_titles():
    rates = torch.tensor([0.0, 0.0, 0.5, 1.0])
    figure = plots.plot_layer_activity(torch.tensor([-1.0, 1.0]), rates, title="s = 1", rheobase=0.5)
    assert figure._suptitle.get_text() == "s = 1: mean firing rate 0.375"
    assert figure.axes[0].get_title() == "current: mean 0.000, std 1.000"
    assert figure.axes[1].get_title() == "silent: 50%, saturated: 25%"


def test_plot_activity_sweep_rates_and_labels():
    currents = [torch.randn(100), torch.randn(100) + 1]
    figure = plots.plot_activity_sweep("strength", [0.5, 2.0], [0.1, 0.7], currents, symbol="s", log_x=True)
    ax_rate, ax_hist = figure.axes
    np.testing.assert_allclose(ax_rate.lines[0].get_ydata(), [0.1, 0.7])
    assert ax_rate.get_xscale() == "log"
    labels = [text.get_text() for text in ax_hist.get_legend().get_texts()]
    assert labels == ["s = 0.5", "s = 2"]


def _response(rate: float) -> IntensityResponse:
    intensities = torch.tensor([0.5, 1.0, 2.0])
    return IntensityResponse(intensities, torch.full((3,), rate), torch.zeros(3), intensities * 0.2)


def test_plot_intensity_response_curves_and_title():
    figure = plots.plot_intensity_response({"a": _response(0.1), "b": _response(0.3)}, title="gain")
    ax_rate, ax_std = figure.axes
    assert len(ax_rate.lines) == 2
    np.testing.assert_allclose(ax_rate.lines[1].get_ydata(), [0.3, 0.3, 0.3])
    assert ax_std.get_yscale() == "log"
    assert figure._suptitle.get_text() == "gain"


def test_plot_sample_spread_correlation():
    level = torch.tensor([1.0, 2.0, 3.0, 4.0])
    figure = plots.plot_sample_spread(level, {"up": level * 2, "down": -level})
    assert figure.axes[0].get_title() == "up\ncorrelation 1.00"
    assert figure.axes[1].get_title() == "down\ncorrelation -1.00"


def test_plot_current_comparison_axes_and_moments():
    currents = {"bn": torch.tensor([[1.0, -1.0], [-1.0, 1.0]]), "ei": torch.tensor([[2.0, 0.0], [0.0, 2.0]])}
    figure = plots.plot_current_comparison(currents)
    assert len(figure.axes) == 4  # one histogram per layer, then per-neuron and per-sample moments
    assert figure.axes[0].get_title() == "bn\nmean 0.000, std 1.000"
    assert figure.axes[1].get_title() == "ei\nmean 1.000, std 1.000"
    np.testing.assert_allclose(figure.axes[2].collections[1].get_offsets(), [[1.0, 1.0], [1.0, 1.0]])


def test_chapter_plots_leave_pyplot_empty():
    before = len(plt.get_fignums())
    plots.plot_balance(torch.rand(10), torch.rand(10))
    plots.plot_current_comparison({"a": torch.randn(8, 4)})
    plots.plot_layer_activity(torch.randn(10), torch.rand(4))
    assert len(plt.get_fignums()) == before
