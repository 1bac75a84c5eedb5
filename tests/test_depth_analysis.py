"""Tests for ei_tutorial.depth_analysis, checked against hand-computed or independent values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ei_tutorial import LIF, EIConv2d, EILinear, dale_violations, ei_init_
from ei_tutorial.depth_analysis import (
    ShallowEIConvNet,
    balance_profile,
    depth_profile,
    depth_variant_profiles,
    ei_gradient_rms,
    ei_mlp_profile,
    gain_values,
    init_check,
    input_gradient,
    rescale_init_,
    synaptic_weight,
    take_snapshot,
    train_steps,
    with_switches,
)
from ei_tutorial.models import SpikingLayer, build_model


def _bernoulli(shape, rate, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full(shape, rate), generator=generator)


def _images(count=16, size=6, seed=0) -> torch.Tensor:
    """Sparse images in [0, 1], ``[count, 1, size, size]``."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(count, 1, size, size, generator=generator)
    return values * (torch.rand(count, 1, size, size, generator=generator) < 0.4)


class _OneLayer(nn.Module):
    """One spiking layer of two LIF neurons with fixed weights and a linear readout."""

    def __init__(self) -> None:
        super().__init__()
        linear = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            linear.weight.copy_(2.0 * torch.eye(2))
        self.hidden = nn.Sequential(SpikingLayer(linear, LIF(tau_mem=2.0, v_th=1.0)))
        self.readout = nn.Linear(2, 3)

    def forward(self, x):
        return self.readout(self.hidden(x)).mean(0)


# --- rescale_init_ ------------------------------------------------------------------------


def test_rescale_init_sets_weight_std():
    model = nn.Sequential(nn.Linear(400, 300), nn.Conv2d(8, 16, 3))
    rescale_init_(model, 3.0, seed=0)
    linear, conv = model[0], model[1]
    assert linear.weight.std().item() == pytest.approx(3.0 / math.sqrt(400), rel=0.02)
    assert conv.weight.std().item() == pytest.approx(3.0 / math.sqrt(8 * 9), rel=0.05)
    assert linear.bias.abs().max().item() == 0.0
    assert conv.bias.abs().max().item() == 0.0


def test_rescale_init_same_seed_same_weights():
    first = rescale_init_(nn.Linear(5, 4), 1.0, seed=3)
    second = rescale_init_(nn.Linear(5, 4), 1.0, seed=3)
    assert torch.equal(first.weight, second.weight)


def test_rescale_init_rejects_bad_gain():
    with pytest.raises(ValueError, match="gain must be > 0"):
        rescale_init_(nn.Linear(3, 3), 0.0)


def test_rescale_init_rejects_ei_only_model():
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        rescale_init_(EILinear(8, 8), 1.0)


# --- depth_profile ------------------------------------------------------------------------


def test_synaptic_weight_finds_main_weight():
    ei = EILinear(4, 8)
    assert synaptic_weight(ei) is ei.weight_ee
    block = nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8))
    assert synaptic_weight(block) is block[0].weight


def test_synaptic_weight_rejects_weightless_module():
    with pytest.raises(ValueError, match="no weight matrix"):
        synaptic_weight(nn.ReLU())


def test_depth_profile_hand_computed():
    model = _OneLayer()
    # Currents 2 * x = [1.2, 0.0] at every step: neuron 0 fires at every step
    # (h = 1.2, then 0.5 * 0.2 + 1.2 = 1.3, then 0.5 * 0.3 + 1.2 = 1.35), neuron 1 never.
    x = torch.tensor([0.6, 0.0]).expand(3, 1, 2)
    profile = depth_profile(model, x)
    assert profile.names == ("hidden.0",)
    assert profile.depth == 1
    assert profile.firing_rate.tolist() == [0.5]
    assert profile.current_mean.item() == pytest.approx(0.6)
    assert profile.current_std.item() == pytest.approx(0.6)
    assert profile.silent_fraction.tolist() == [0.5]
    assert profile.saturated_fraction.tolist() == [0.5]
    assert profile.weight_grad_norm is None


def test_depth_profile_gradient_matches_autograd():
    model = _OneLayer()
    x = torch.tensor([[0.6, 0.3], [0.2, 0.7]]).expand(3, 2, 2)
    labels = torch.tensor([0, 2])
    profile = depth_profile(model, x, labels)
    reference = _OneLayer()
    reference.load_state_dict(model.state_dict())
    F.cross_entropy(reference(x), labels).backward()
    expected = reference.hidden[0].layer.weight.grad.norm().item()
    assert profile.weight_grad_norm.item() == pytest.approx(expected)


def test_depth_profile_rejects_model_without_spiking_layers():
    with pytest.raises(ValueError, match="no SpikingLayer"):
        depth_profile(nn.Linear(2, 2), torch.zeros(1, 1, 2))


def test_depth_profile_built_mlp_layers():
    model = build_model("mlp", "plain", image_size=6, widths=[8, 8, 8])
    profile = depth_profile(model, torch.rand(2, 4, 1, 6, 6), torch.tensor([0, 1, 2, 3]))
    assert profile.names == ("hidden.0", "hidden.1", "hidden.2")
    assert profile.weight_grad_norm.shape == (3,)


# --- balance_profile and gain_values --------------------------------------------------------


def test_balance_profile_matches_independent_computation():
    x = _bernoulli((2, 64, 32), 0.3)
    model = nn.Sequential(EILinear(32, 16), LIF(), EILinear(16, 8, ei_ratio=2))
    ei_init_(model, x, seed=0)
    profile = balance_profile(model, x)
    first = model[0]
    with torch.no_grad():
        i_ee = x @ first.weight_ee.T
        r_i = x @ first.weight_ie.T
        i_sub = r_i @ first.weight_ei.T
        i_div = (r_i * first.gain_i) @ first.weight_ei.T
        current = first(x)
    assert profile.names == ("0", "2")
    assert profile.i_ee_mean[0].item() == pytest.approx(i_ee.mean().item(), rel=1e-5)
    assert profile.i_sub_mean[0].item() == pytest.approx(i_sub.mean().item(), rel=1e-5)
    assert profile.i_div_mean[0].item() == pytest.approx(i_div.mean().item(), rel=1e-5)
    assert profile.net_std[0].item() == pytest.approx((i_ee - i_sub).std(unbiased=False).item(), rel=1e-4)
    assert profile.current_std[0].item() == pytest.approx(current.std(unbiased=False).item(), rel=1e-4)
    assert profile.inhibition_ratio[0].item() == pytest.approx(i_sub.mean().item() / i_ee.mean().item(), rel=1e-5)


def test_balance_profile_counts_zero_divisors():
    x = _bernoulli((1, 8, 32), 0.5)
    x[:, :3] = 0.0  # three of eight samples are silent, so their I_div is exactly zero
    layer = EILinear(32, 16)
    ei_init_(layer, x[:, 3:], seed=0)
    profile = balance_profile(layer, x)
    assert profile.i_div_zero_fraction.item() == pytest.approx(3 / 8)


def test_balance_profile_skips_readout():
    model = nn.Sequential(EILinear(8, 8), LIF(), EILinear(8, 4, readout=True))
    profile = balance_profile(model, _bernoulli((2, 16, 8), 0.5))
    assert profile.names == ("0",)


def test_balance_profile_rejects_model_without_division():
    with pytest.raises(ValueError, match="no E-I layer with divisive inhibition"):
        balance_profile(EILinear(4, 4, readout=True), torch.ones(2, 4))


def test_gain_values_are_detached_copies():
    layer = EILinear(8, 8, ei_ratio=2)
    gains = gain_values(nn.Sequential(layer))
    assert list(gains) == ["0"]
    assert gains["0"]["gain_i"].shape == (4,)
    gains["0"]["gain_e"].zero_()
    assert layer.gain_e.min().item() == 1.0


# --- init_check -----------------------------------------------------------------------------


def test_init_check_predictions_follow_formulas():
    x = _bernoulli((4096, 128), 0.2)
    layer = EILinear(128, 256, ei_ratio=4)
    ei_init_(layer, x, seed=0)
    check = init_check(layer, x)
    stats = check.stats
    lam = math.sqrt(stats.var / (128 * (stats.mean_sq + stats.var)))
    assert check.weight_scale == pytest.approx(lam)
    assert check.i_mean_predicted == pytest.approx(128 * lam * stats.mean)
    # lambda makes Var[I_EE] equal Var[x], and g_I makes E[I_div] equal its square root.
    assert check.i_ee_var_predicted == pytest.approx(stats.var)
    assert check.i_div_mean_predicted == pytest.approx(math.sqrt(stats.var))
    assert check.net_var_predicted == pytest.approx(128 * lam**2 * (1 + 1 / 64) * stats.mean_sq)
    expected_std = math.sqrt((1 + 1 / 64) * stats.mean_sq / (stats.mean_sq + stats.var))
    assert check.current_std_predicted == pytest.approx(expected_std)


def test_init_check_measurements_match_predictions_for_independent_spikes():
    x = _bernoulli((4096, 128), 0.2)
    layer = EILinear(128, 256, ei_ratio=4)
    ei_init_(layer, x, seed=0)
    check = init_check(layer, x)
    assert check.i_ee_mean == pytest.approx(check.i_mean_predicted, rel=0.05)
    assert check.i_sub_mean == pytest.approx(check.i_mean_predicted, rel=0.05)
    assert check.i_ee_var == pytest.approx(check.i_ee_var_predicted, rel=0.15)
    assert check.net_var == pytest.approx(check.net_var_predicted, rel=0.15)
    assert check.i_div_mean == pytest.approx(check.i_div_mean_predicted, rel=0.05)
    assert check.current_std == pytest.approx(check.current_std_predicted, rel=0.1)
    assert abs(check.current_mean) < 0.1


# --- E-I Prop switches and gradients ----------------------------------------------------------


def test_with_switches_copies_and_sets_flags():
    layer = EIConv2d(2, 8, 3)
    changed = with_switches(layer, stabilise=False, eps=1e-3)
    assert changed is not layer
    assert changed.stabilise is False
    assert changed.eps == 1e-3
    assert layer.stabilise is True
    assert torch.equal(changed.weight_ee, layer.weight_ee)


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"stabilize": False}, "unknown E-I Prop setting"),
        ({"straight_through": 0}, "must be True or False"),
        ({"eps": 0.0}, "eps must be a number > 0"),
        ({"eps": True}, "eps must be a number > 0"),
    ],
)
def test_with_switches_rejects_bad_settings(switches, message):
    with pytest.raises(ValueError, match=message):
        with_switches(EILinear(4, 4), **switches)


def test_with_switches_rejects_model_without_ei_layers():
    with pytest.raises(ValueError, match="contains no E-I layer"):
        with_switches(nn.Linear(3, 3), stabilise=False)


def test_input_gradient_linear_layer():
    layer = nn.Linear(3, 2, bias=False)
    x = torch.rand(5, 3)
    grad = input_gradient(layer, x, seed=4)
    upstream = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(grad, upstream @ layer.weight.detach())


def test_input_gradient_explodes_with_eps_on_silent_patch():
    x = _bernoulli((1, 4, 2, 8, 8), 0.5)
    x[..., 4:] = 0.0  # the right half is silent, so I_div = 0 two columns away from the spikes
    layer = EIConv2d(2, 4, 3, padding=1)
    ei_init_(layer, _bernoulli((1, 8, 2, 8, 8), 0.5), seed=0)
    with_prop = input_gradient(layer, x).abs().max()
    with_eps = input_gradient(with_switches(layer, stabilise=False), x).abs().max()
    # Silent positions pass g_E / eps = 1e6 times the upstream gradient back to the input.
    assert with_eps > 1e3 * with_prop


def test_ei_gradient_rms_hand_computed():
    layer = EILinear(2, 4, ei_ratio=2)
    layer.weight_ee.grad = torch.full((4, 2), 3.0)
    layer.weight_ie.grad = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    layer.weight_ei.grad = None
    rms = ei_gradient_rms(nn.Sequential(layer))
    assert rms["0"]["weight_ee"] == pytest.approx(3.0)
    assert rms["0"]["weight_ie"] == pytest.approx(math.sqrt(25 / 4))
    assert math.isnan(rms["0"]["weight_ei"])


def test_scale_ei_grad_divides_by_fan_in():
    x = _bernoulli((2, 16, 10), 0.4)
    layer = EILinear(10, 8)
    ei_init_(layer, x, seed=0)
    unscaled = with_switches(layer, scale_ei_grad=False)
    input_gradient(layer, x)
    input_gradient(unscaled, x)
    scaled_rms = ei_gradient_rms(layer)["EILinear"]["weight_ei"]
    unscaled_rms = ei_gradient_rms(unscaled)["EILinear"]["weight_ei"]
    assert scaled_rms * 10 == pytest.approx(unscaled_rms, rel=1e-5)


# --- models for the chapters ------------------------------------------------------------------


def test_shallow_convnet_output_and_readout_size():
    net = ShallowEIConvNet(in_channels=1, image_size=14, num_classes=10, channels=(8, 12))
    assert net.readout.in_features == 12 * 7 * 7
    assert net.readout.n_i == 2  # ten classes with ratio 4 keep two I neurons
    x = _bernoulli((3, 5, 1, 14, 14), 0.2)
    assert net(x).shape == (5, 10)


def test_shallow_convnet_passes_switches_to_every_layer():
    net = ShallowEIConvNet(image_size=6, stabilise=False, ei_ratio=2)
    layers = [module for module in net.modules() if isinstance(module, (EIConv2d, EILinear))]
    assert len(layers) == 3
    assert all(layer.stabilise is False for layer in layers)
    assert net.features[0].layer.ei_ratio == 2


def test_ei_mlp_profile_depth_and_balance():
    x = _images(32, 6).expand(2, -1, -1, -1, -1)
    profile = ei_mlp_profile(x, 3, width=16, ei_ratio=4, seed=0)
    assert profile.depth == 3
    assert profile.current_mean.abs().max() < 0.5


def test_ei_mlp_profile_rejects_flat_input():
    with pytest.raises(ValueError, match="square images"):
        ei_mlp_profile(torch.rand(2, 4, 36), 2)


def test_depth_variant_profiles_keeps_global_random_state():
    x = _images(8, 6).expand(2, -1, -1, -1, -1)
    state = torch.get_rng_state()
    profiles = depth_variant_profiles(x, 2, labels=torch.arange(8) % 10, width=8, plain_gain=2.0)
    assert torch.equal(torch.get_rng_state(), state)
    assert list(profiles) == ["plain, PyTorch default init", "plain, gain 2", "batch norm", "E-I, E-I Init"]
    assert all(profile.depth == 2 for profile in profiles.values())
    without_gain = depth_variant_profiles(x, 2, width=8, plain_gain=None)
    assert list(without_gain) == ["plain, PyTorch default init", "batch norm", "E-I, E-I Init"]


def test_depth_variant_profiles_repeatable():
    x = _images(8, 6).expand(2, -1, -1, -1, -1)
    labels = torch.arange(8) % 10
    first = depth_variant_profiles(x, 2, labels=labels, width=8)
    second = depth_variant_profiles(x, 2, labels=labels, width=8)
    for label in first:
        assert torch.equal(first[label].current_std, second[label].current_std)


# --- train_steps ------------------------------------------------------------------------------


def test_train_steps_records_every_step_and_keeps_dale():
    images = _images(64, 6)
    labels = torch.arange(64) % 3
    net = ShallowEIConvNet(image_size=6, num_classes=3, channels=(4, 4))
    ei_init_(net, images.expand(2, -1, -1, -1, -1), seed=0)
    trace = train_steps(net, images, labels, steps=5, batch_size=8, T=2, lr=0.05, heldout=(images, labels))
    assert trace.losses.shape == (5,)
    assert trace.grad_norms.shape == (5,)
    assert trace.first_nonfinite_step is None
    assert 0.0 <= trace.heldout_accuracy <= 1.0
    assert all(count == 0 for count, _ in dale_violations(net).values())


class _NaNAfter(nn.Module):
    """A linear classifier whose output is NaN from its ``bad_call``-th call on."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.linear = nn.Linear(36, 3)
        self.calls = 0
        self.bad_call = bad_call

    def forward(self, x):
        self.calls += 1
        logits = self.linear(x.flatten(2)).mean(0)
        return logits * float("nan") if self.calls > self.bad_call else logits


def test_train_steps_stops_before_nonfinite_update():
    model = _NaNAfter(bad_call=2)
    images, labels = _images(16, 6), torch.arange(16) % 3
    trace = train_steps(model, images, labels, steps=6, batch_size=4, T=2, heldout=(images, labels))
    assert trace.first_nonfinite_step == 2
    assert trace.losses.shape == (3,)
    assert math.isnan(trace.heldout_accuracy)
    assert torch.isfinite(model.linear.weight).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"steps": 0}, "steps must be a positive int"), ({"batch_size": 2.5}, "batch_size must be"),
     ({"encoding": "latency"}, "unknown encoding")],
)
def test_train_steps_rejects_bad_arguments(kwargs, message):
    arguments = {"steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        train_steps(_NaNAfter(100), _images(4, 6), torch.zeros(4, dtype=torch.long), **arguments)


def test_train_steps_calls_callback_every_n_steps():
    images, labels = _images(16, 6), torch.arange(16) % 3
    calls = []
    train_steps(
        _NaNAfter(100), images, labels, steps=6, batch_size=4, T=2,
        callback=lambda step, model: calls.append((step, torch.is_grad_enabled())), callback_every=2,
    )
    assert calls == [(2, False), (4, False), (6, False)]


def test_take_snapshot_measures_every_layer():
    x = _images(16, 6).expand(2, -1, -1, -1, -1)
    model = build_model("mlp", "ei", image_size=6, widths=[8, 8])
    ei_init_(model, x, seed=0)
    snapshot = take_snapshot(model, x, step=7)
    assert snapshot.step == 7
    assert snapshot.activity.names == ("hidden.0", "hidden.1")
    assert snapshot.balance.names == ("hidden.0.layer", "hidden.1.layer")
    assert list(snapshot.gains) == ["hidden.0.layer", "hidden.1.layer"]
