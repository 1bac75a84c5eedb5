"""Tests for the deep-network figures of ei_tutorial.plots and the explorers that draw them."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ei_tutorial import EILinear, ei_init_
from ei_tutorial.depth_analysis import DepthProfile, TrainingTrace, init_check, take_snapshot
from ei_tutorial.models import build_model
from ei_tutorial.plots import (
    INIT_CHECK_MOMENTS,
    plot_depth_profiles,
    plot_depth_sweep,
    plot_gain_distributions,
    plot_gradient_rms,
    plot_init_check,
    plot_training_histories,
    plot_training_snapshots,
    plot_training_traces,
    plot_zero_divisor,
)
from ei_tutorial.widgets import SliderExplorer, depth_explorer, ei_init_explorer


def _profile(rates, grads=None) -> DepthProfile:
    rates = torch.tensor(rates, dtype=torch.float64)
    return DepthProfile(
        names=tuple(f"hidden.{k}" for k in range(len(rates))),
        firing_rate=rates,
        current_mean=torch.zeros_like(rates),
        current_std=torch.ones_like(rates),
        silent_fraction=(rates == 0).double(),
        saturated_fraction=(rates == 1).double(),
        weight_grad_norm=None if grads is None else torch.tensor(grads, dtype=torch.float64),
    )


def _line_data(ax):
    return [line.get_ydata() for line in ax.get_lines() if line.get_label() and not line.get_label().startswith("_")]


def test_plot_depth_profiles_default_quantities():
    figure = plot_depth_profiles({"a": _profile([0.1, 0.2], [1.0, 0.0]), "b": _profile([0.3, 0.0], [2.0, 1.0])})
    assert isinstance(figure, Figure)
    assert [ax.get_ylabel() for ax in figure.axes] == [
        "firing rate (spikes per step)", "mean of current I", "std of current I", "norm of weight gradient",
    ]
    np.testing.assert_allclose(_line_data(figure.axes[0])[1], [0.3, 0.0])
    assert figure.axes[3].get_yscale() == "symlog"


def test_plot_depth_profiles_leaves_out_missing_gradients():
    figure = plot_depth_profiles({"a": _profile([0.1, 0.2])})
    assert len(figure.axes) == 3


def test_plot_depth_profiles_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one profile"):
        plot_depth_profiles({})
    with pytest.raises(ValueError, match="unknown quantities"):
        plot_depth_profiles({"a": _profile([0.1])}, quantities=("rate",))


def test_plot_depth_sweep_one_axis_per_setting():
    sweep = {f"depth {d}": {"plain": _profile([0.1] * d)} for d in (2, 4, 8)}
    figure = plot_depth_sweep(sweep)
    assert [ax.get_title() for ax in figure.axes] == ["depth 2", "depth 4", "depth 8"]
    assert len(_line_data(figure.axes[2])[0]) == 8


def test_plot_init_check_bar_heights_are_ratios():
    generator = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((512, 64), 0.3), generator=generator)
    layer = EILinear(64, 32)
    ei_init_(layer, x, seed=0)
    check = init_check(layer, x)
    figure = plot_init_check({"spikes": check})
    heights = [patch.get_height() for patch in figure.axes[0].patches]
    expected = [getattr(check, measured) / getattr(check, predicted) for _, measured, predicted in INIT_CHECK_MOMENTS]
    np.testing.assert_allclose(heights, expected)


def test_plot_zero_divisor_title_gives_fraction():
    i_div = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    figure = plot_zero_divisor(torch.ones(2, 3, 3), i_div)
    assert figure.axes[2].get_title() == "I_div = 0 at 75% of positions"


def test_plot_gradient_rms_bars_per_layer_and_weight():
    rms = {
        "scaled": {"l1": {"weight_ee": 1.0, "weight_ie": 2.0, "weight_ei": 0.1}},
        "unscaled": {"l1": {"weight_ee": 1.0, "weight_ie": 2.0, "weight_ei": 0.9}},
    }
    figure = plot_gradient_rms(rms)
    assert [patch.get_height() for patch in figure.axes[1].patches] == [1.0, 2.0, 0.9]
    assert figure.axes[0].get_yscale() == "log"


def test_plot_training_traces_marks_stopped_run():
    finite = TrainingTrace(torch.tensor([2.3, 2.0, 1.5]), torch.tensor([1.0, 1.1, 0.9]), None, 0.5)
    broken = TrainingTrace(torch.tensor([2.3, 2.4, math.nan]), torch.tensor([1e3, 1e5, math.nan]), 2, math.nan)
    figure = plot_training_traces({"good": finite, "bad": broken}, chance_loss=math.log(10))
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["good", "bad (non-finite at step 2)", "chance"]
    drawn = figure.axes[0].get_lines()[1].get_ydata()
    np.testing.assert_allclose(drawn, [2.3, 2.4])


def _image_batch(count=8, size=6, steps=2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 1, size, size, generator=generator)
    images = images * (torch.rand(count, 1, size, size, generator=generator) < 0.5)
    return images.expand(steps, -1, -1, -1, -1)


def test_depth_explorer_redraws_without_piling_up_figures():
    explorer = depth_explorer(_image_batch(), width=8, depths=(2, 3))
    assert isinstance(explorer, SliderExplorer)
    assert explorer.figure._suptitle.get_text() == "3 hidden layers of 8 neurons"
    first = explorer.figure
    before = len(plt.get_fignums())
    explorer.sliders["depth"].value = 2
    assert len(plt.get_fignums()) == before
    assert explorer.figure is not first
    assert first.axes == []
    assert explorer.figure._suptitle.get_text() == "2 hidden layers of 8 neurons"
    assert len(_line_data(explorer.figure.axes[0])) == 4


def test_ei_init_explorer_updates_on_both_sliders():
    explorer = ei_init_explorer(_image_batch(), width=8, depths=(2, 4), ratios=(1, 4))
    explorer.sliders["depth"].value = 2
    explorer.sliders["ei_ratio"].value = 1
    title = explorer.figure._suptitle.get_text()
    assert "2 hidden layers of 8 neurons, E:I ratio 1:1" in title
    assert len(_line_data(explorer.figure.axes[0])[0]) == 2


def test_ei_init_explorer_rejects_ratio_not_dividing_width():
    with pytest.raises(ValueError, match="do not divide width=10"):
        ei_init_explorer(_image_batch(), width=10, ratios=(1, 4))


def test_plot_training_histories_curves_and_title():
    records = [
        {"epoch": 1, "train_loss": 2.0, "heldout_acc": 0.5, "firing_rate": {"a": 0.1, "b": 0.3}},
        {"epoch": 2, "train_loss": 1.0, "heldout_acc": 0.75, "firing_rate": {"a": 0.2, "b": 0.2}},
    ]
    figure = plot_training_histories({"E-I": records})
    ax_loss, ax_acc, ax_rate = figure.axes[:3]
    np.testing.assert_allclose(_line_data(ax_loss)[0], [2.0, 1.0])
    np.testing.assert_allclose(_line_data(ax_rate)[0], [0.2, 0.2])
    assert ax_acc.get_title() == "last: E-I 75.0%"


def test_plot_snapshots_and_gains_one_entry_per_layer():
    x = _image_batch()
    model = build_model("mlp", "ei", image_size=6, widths=[8, 8, 8])
    ei_init_(model, x, seed=0)
    snapshots = [take_snapshot(model, x, 0), take_snapshot(model, x, 5)]
    figure = plot_training_snapshots(snapshots)
    assert len(_line_data(figure.axes[0])) == 3
    np.testing.assert_allclose(_line_data(figure.axes[0])[0], [snapshots[0].balance.inhibition_ratio[0]] * 2)
    gains = plot_gain_distributions(snapshots)
    assert len(gains.axes) == 2 * 3
    assert [ax.get_xlabel() for ax in gains.axes[:4]] == ["g_E", "g_E", "g_E", "g_I"]
