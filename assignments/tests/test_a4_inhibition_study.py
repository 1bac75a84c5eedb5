"""Public tests of assignment 4, the inhibition study (a4_inhibition_study)."""

import copy
import statistics

import pytest

from ei_tutorial.training import TrainConfig

BASE = {
    "name": "study", "arch": "mlp", "variant": "ei", "widths": [32], "time_steps": 4,
    "epochs": 1, "batch_size": 64, "train_subset": 512, "max_steps_per_epoch": 4,
    "heldout_subset": 300, "init_batch_size": 128, "lr": 0.05, "warmup_epochs": 0,
    "progress": False, "layer_kwargs": {"scale_ei_grad": True},
}


def make_points(module):
    """Four hand-made runs: two values, two seeds each, two layers."""
    point = module.SweepPoint
    return [
        point("inhibition_scale", 2.0, 0, 0.50, {"hidden.0": 0.10, "hidden.1": 0.30}),
        point("inhibition_scale", 0.5, 0, 0.70, {"hidden.0": 0.30, "hidden.1": 0.50}),
        point("inhibition_scale", 0.5, 1, 0.80, {"hidden.0": 0.20, "hidden.1": 0.40}),
        point("inhibition_scale", 2.0, 1, 0.60, {"hidden.0": 0.20, "hidden.1": 0.20}),
    ]


# -- part 1: sweep_configs ----------------------------------------------------------------


def test_configs_set_value_in_layer_kwargs(inhibition_study):
    base = copy.deepcopy(BASE)
    configs = inhibition_study.sweep_configs("inhibition_scale", [0.5, 1.0, 2.0], base)
    assert [c["layer_kwargs"]["inhibition_scale"] for c in configs] == [0.5, 1.0, 2.0]
    assert all(c["layer_kwargs"]["scale_ei_grad"] is True for c in configs)
    assert [c["name"] for c in configs] == [
        "study-inhibition_scale-0.5", "study-inhibition_scale-1.0", "study-inhibition_scale-2.0",
    ]
    assert all(c["epochs"] == 1 and c["widths"] == [32] for c in configs)
    assert base == BASE, "sweep_configs must not change its base config"
    for config in configs:
        TrainConfig(**config)


def test_configs_are_independent_copies(inhibition_study):
    configs = inhibition_study.sweep_configs("ei_ratio", [2, 4], BASE)
    configs[0]["widths"].append(64)
    configs[0]["layer_kwargs"]["extra"] = 1
    assert configs[1]["widths"] == [32]
    assert "extra" not in configs[1]["layer_kwargs"]
    assert BASE["widths"] == [32]


def test_configs_reject_bad_requests(inhibition_study):
    with pytest.raises(ValueError, match="tau_mem"):
        inhibition_study.sweep_configs("tau_mem", [1.0], BASE)
    with pytest.raises(ValueError, match="empty"):
        inhibition_study.sweep_configs("inhibition_scale", [], BASE)
    with pytest.raises(ValueError, match="divide"):
        inhibition_study.sweep_configs("ei_ratio", [4, 3], BASE)


def test_ei_ratio_checked_against_default_widths(inhibition_study):
    base = {key: value for key, value in BASE.items() if key != "widths"}
    assert len(inhibition_study.sweep_configs("ei_ratio", [2, 4, 5], base)) == 3
    with pytest.raises(ValueError, match="divide"):
        inhibition_study.sweep_configs("ei_ratio", [8], base)


# -- part 2: run_sweep ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sweep(inhibition_study, tmp_path_factory):
    """A sweep of inhibition_scale over 0.9 and 1.1 with two seeds: four short runs."""
    base = {**BASE, "out_dir": str(tmp_path_factory.mktemp("runs"))}
    points = inhibition_study.run_sweep("inhibition_scale", [0.9, 1.1], base, seeds=(0, 1))
    return points, base


@pytest.mark.data
def test_sweep_returns_point_per_run(inhibition_study, tiny_sweep, require_mnist):
    require_mnist()
    points, _ = tiny_sweep
    assert [(p.value, p.seed) for p in points] == [(0.9, 0), (0.9, 1), (1.1, 0), (1.1, 1)]
    for point in points:
        assert isinstance(point, inhibition_study.SweepPoint)
        assert point.parameter == "inhibition_scale"
        assert 0.0 <= point.heldout_acc <= 1.0
        assert list(point.firing_rates) == ["hidden.0"]
        assert 0.0 < point.firing_rates["hidden.0"] < 1.0


@pytest.mark.data
def test_sweep_writes_one_run_folder_each(tiny_sweep, require_mnist):
    require_mnist()
    _, base = tiny_sweep
    from pathlib import Path

    folders = sorted(p.name for p in Path(base["out_dir"]).iterdir() if (p / "metrics.jsonl").is_file())
    assert folders == [
        "study-inhibition_scale-0.9-seed0", "study-inhibition_scale-0.9-seed1",
        "study-inhibition_scale-1.1-seed0", "study-inhibition_scale-1.1-seed1",
    ]


@pytest.mark.data
def test_stronger_inhibition_lowers_firing_rate(tiny_sweep, require_mnist):
    require_mnist()
    points, _ = tiny_sweep
    for seed in (0, 1):
        weak = next(p for p in points if p.value == 0.9 and p.seed == seed)
        strong = next(p for p in points if p.value == 1.1 and p.seed == seed)
        assert strong.mean_firing_rate < weak.mean_firing_rate, f"seed {seed}"


# -- part 3: summarise --------------------------------------------------------------------


def test_summary_averages_over_seeds(inhibition_study):
    rows = inhibition_study.summarise(make_points(inhibition_study))
    assert [row["value"] for row in rows] == [0.5, 2.0]
    assert [row["runs"] for row in rows] == [2, 2]
    assert rows[0]["acc_mean"] == pytest.approx(0.75)
    assert rows[1]["acc_mean"] == pytest.approx(0.55)
    assert rows[0]["acc_std"] == pytest.approx(statistics.stdev([0.7, 0.8]))
    # Mean firing rates per run: 0.4 and 0.3 at 0.5; 0.2 and 0.2 at 2.0.
    assert rows[0]["rate_mean"] == pytest.approx(0.35)
    assert rows[1]["rate_mean"] == pytest.approx(0.2)
    assert rows[1]["rate_std"] == pytest.approx(0.0)


def test_summary_of_single_run_has_zero_spread(inhibition_study):
    rows = inhibition_study.summarise(make_points(inhibition_study)[:1])
    assert len(rows) == 1
    assert rows[0]["acc_std"] == 0.0
    assert rows[0]["rate_std"] == 0.0


# -- part 4: plot_sweep ---------------------------------------------------------------------


def test_plot_shows_accuracy_and_rates(inhibition_study):
    fig = inhibition_study.plot_sweep(make_points(inhibition_study))
    assert len(fig.axes) == 2
    ax_acc, ax_rate = fig.axes
    assert "accuracy" in ax_acc.get_ylabel()
    assert "firing rate" in ax_rate.get_ylabel()
    for ax in (ax_acc, ax_rate):
        assert "inhibition_scale" in ax.get_xlabel()
        assert ax.get_xscale() == "linear"

    accuracy_line = ax_acc.get_lines()[0]
    assert list(accuracy_line.get_xdata()) == [0.5, 2.0]
    assert list(accuracy_line.get_ydata()) == pytest.approx([0.75, 0.55])

    labels = {line.get_label(): line for line in ax_rate.get_lines()}
    assert set(labels) == {"hidden.0", "hidden.1"}
    assert list(labels["hidden.0"].get_ydata()) == pytest.approx([0.25, 0.15])
    assert list(labels["hidden.1"].get_ydata()) == pytest.approx([0.45, 0.25])


def test_plot_of_ei_ratio_uses_log_axis(inhibition_study):
    point = inhibition_study.SweepPoint
    points = [point("ei_ratio", ratio, 0, 0.5, {"hidden.0": 0.1}) for ratio in (1, 4, 16)]
    fig = inhibition_study.plot_sweep(points)
    for ax in fig.axes:
        assert "ei_ratio" in ax.get_xlabel()
        assert ax.get_xscale() == "log"
