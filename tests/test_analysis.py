"""Tests for ei_tutorial.analysis, checked against hand-computed or independent values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ei_tutorial import LIF, EIConv2d, EILinear, circuit, ei_init_
from ei_tutorial.analysis import (
    CircuitCurrents,
    batch_dependence,
    build_ei_layer,
    circuit_currents,
    current_statistics,
    exact_heaviside,
    firing_rates,
    intensity_response,
    layer_activity,
    spike_count_gradient,
    surrogate_derivative,
)


@pytest.fixture
def pixels() -> torch.Tensor:
    """Sparse non-negative inputs like MNIST pixels: 64 samples of 49 features."""
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(64, 49, generator=generator)
    mask = torch.rand(64, 49, generator=generator) < 0.3
    return values * mask


# --- spikes and surrogates -------------------------------------------------------------


def test_exact_heaviside_values():
    x = torch.tensor([-1.0, 0.0, 0.5])
    assert exact_heaviside(x).tolist() == [0.0, 0.0, 1.0]


def test_exact_heaviside_gradient_is_zero():
    x = torch.tensor([-1.0, 1e-3, 0.5], requires_grad=True)
    exact_heaviside(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_surrogate_derivative_sigmoid_formula():
    x = torch.linspace(-2, 2, 9)
    slope = 4.0
    expected = slope * torch.sigmoid(slope * x) * (1 - torch.sigmoid(slope * x))
    torch.testing.assert_close(surrogate_derivative("sigmoid", x, slope), expected)


def test_surrogate_derivative_atan_formula():
    x = torch.linspace(-2, 2, 9)
    alpha = 3.0
    expected = (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)
    torch.testing.assert_close(surrogate_derivative("atan", x, alpha), expected)


def test_surrogate_derivative_fast_sigmoid_formula():
    x = torch.linspace(-2, 2, 9)
    expected = 1 / (5.0 * x.abs() + 1) ** 2
    torch.testing.assert_close(surrogate_derivative("fast_sigmoid", x, 5.0), expected)


def test_surrogate_derivative_accepts_callable():
    x = torch.linspace(-1, 1, 5)
    assert surrogate_derivative(exact_heaviside, x).abs().sum() == 0


def test_spike_count_gradient_without_surrogate_is_zero():
    current = torch.rand(4, 3, 5) * 2
    grad = spike_count_gradient(LIF(surrogate=exact_heaviside), current)
    assert grad.shape == current.shape
    assert grad.abs().sum() == 0


def test_spike_count_gradient_one_step_equals_surrogate():
    # With T = 1 and v0 = 0, z = H(i - v_th), so d z / d i is the surrogate at i - v_th.
    current = torch.linspace(0, 2, 7).reshape(1, 1, 7)
    grad = spike_count_gradient(LIF(v_th=1.0, surrogate="sigmoid", slope=4.0), current)
    expected = surrogate_derivative("sigmoid", current - 1.0, 4.0)
    torch.testing.assert_close(grad, expected)


def test_firing_rates_by_hand():
    spikes = torch.zeros(2, 2, 3)
    spikes[0, 0, 0] = 1
    spikes[1, 1, 0] = 1
    spikes[0, 1, 2] = 1
    assert firing_rates(spikes).tolist() == [0.5, 0.0, 0.25]


def test_firing_rates_rejects_missing_time():
    with pytest.raises(ValueError, match=r"\[T, B, neurons"):
        firing_rates(torch.zeros(4, 3))


# --- circuit currents ------------------------------------------------------------------


def test_circuit_currents_linear_match_formulas(pixels):
    layer = EILinear(49, 16, ei_ratio=4, inhibition_scale=0.7)
    ei_init_(layer, pixels, seed=1)
    with torch.no_grad():
        layer.bias.uniform_(-0.5, 0.5)
        layer.gain_e.uniform_(0.5, 1.5)
    currents = circuit_currents(layer, pixels)

    i_ee = pixels @ layer.weight_ee.T
    r_i = pixels @ layer.weight_ie.T
    w_ei = 0.7 * layer.weight_ei
    i_sub = r_i @ w_ei.T
    i_div = (r_i * layer.gain_i) @ w_ei.T
    torch.testing.assert_close(currents.i_ee, i_ee)
    torch.testing.assert_close(currents.r_i, r_i)
    torch.testing.assert_close(currents.i_sub, i_sub)
    torch.testing.assert_close(currents.i_div, i_div)
    assert (i_div > 0).all()  # no stabilisation needed, so the plain formula applies
    expected = layer.gain_e * (i_ee - i_sub) / i_div + layer.bias
    torch.testing.assert_close(currents.current, expected.detach())


def test_circuit_currents_conv_time_first_shapes():
    x = torch.rand(3, 2, 1, 8, 8)
    layer = EIConv2d(1, 8, 3, padding=1, ei_ratio=4)
    currents = circuit_currents(layer, x)
    assert currents.i_ee.shape == (3, 2, 8, 8, 8)
    assert currents.r_i.shape == (3, 2, 2, 8, 8)
    expected = F.conv2d(x.flatten(0, 1), layer.weight_ee, padding=1).unflatten(0, (3, 2))
    torch.testing.assert_close(currents.i_ee, expected.detach())


def test_circuit_currents_is_layer_currents(pixels):
    layer = EILinear(49, 16, ei_ratio=4)
    assert CircuitCurrents is circuit.CircuitCurrents
    currents = circuit_currents(layer, pixels)
    direct = layer.currents(pixels)
    assert not currents.current.requires_grad
    assert direct.current.requires_grad
    for name in ("i_ee", "i_sub", "i_div", "current", "r_i"):
        torch.testing.assert_close(getattr(currents, name), getattr(direct, name).detach())


def test_balance_after_ei_init(pixels):
    # Each row of W_EI sums to 1 and W_EE, W_IE share one distribution, so E[I_sub] ~ E[I_EE].
    layer = build_ei_layer(pixels, n_e=512, seed=0)
    assert torch.allclose(layer.weight_ei.sum(dim=1), torch.ones(512))
    currents = circuit_currents(layer, pixels)
    mean_ee, mean_sub = currents.i_ee.mean(), currents.i_sub.mean()
    assert abs(mean_ee - mean_sub) / mean_ee < 0.1


# --- statistics ------------------------------------------------------------------------


def test_current_statistics_by_hand():
    current = torch.tensor([[1.0, -1.0], [3.0, 1.0]])
    stats = current_statistics(current)
    assert stats.mean == 1.0
    assert stats.std == pytest.approx(math.sqrt(2.0))
    assert stats.neuron_mean.tolist() == [2.0, 0.0]
    assert stats.neuron_std.tolist() == [1.0, 1.0]
    assert stats.sample_mean.tolist() == [0.0, 2.0]
    assert stats.sample_std.tolist() == [1.0, 1.0]
    assert stats.fraction_positive == 0.75


def test_current_statistics_folds_time_into_samples():
    current = torch.randn(4, 5, 3)
    stats = current_statistics(current)
    assert stats.sample_mean.shape == (20,)
    assert stats.neuron_mean.shape == (3,)


def test_current_statistics_rejects_vector():
    with pytest.raises(ValueError, match="samples"):
        current_statistics(torch.zeros(5))


def test_batch_dependence_ei_layer_is_zero(pixels):
    layer = build_ei_layer(pixels, n_e=16)
    assert batch_dependence(layer, pixels[:1], pixels[1:9], pixels[9:40]) == 0.0


def test_batch_dependence_batch_norm_training_is_positive(pixels):
    module = nn.Sequential(nn.Linear(49, 16), nn.BatchNorm1d(16)).train()
    assert batch_dependence(module, pixels[:1], pixels[1:9], pixels[9:40]) > 1e-3


def test_batch_dependence_batch_norm_eval_is_zero(pixels):
    module = nn.Sequential(nn.Linear(49, 16), nn.BatchNorm1d(16)).eval()
    assert batch_dependence(module, pixels[:1], pixels[1:9], pixels[9:40]) == pytest.approx(0.0, abs=1e-6)


# --- layers driving LIF neurons --------------------------------------------------------


def test_build_ei_layer_scales(pixels):
    reference = build_ei_layer(pixels, n_e=16, seed=3)
    scaled = build_ei_layer(pixels, n_e=16, seed=3, inhibition_scale=0.5, gain_i_scale=2.0)
    assert scaled.inhibition_scale == 0.5
    torch.testing.assert_close(scaled.gain_i, 2.0 * reference.gain_i)
    torch.testing.assert_close(scaled.weight_ee, reference.weight_ee)
    assert not scaled.training


def test_build_ei_layer_rejects_negative_gain(pixels):
    with pytest.raises(ValueError, match="gain_i_scale"):
        build_ei_layer(pixels, n_e=16, gain_i_scale=-1.0)


def test_layer_activity_shapes_and_rates(pixels):
    layer = build_ei_layer(pixels, n_e=16)
    activity = layer_activity(layer, pixels, T=5)
    assert activity.spikes.shape == (5, 64, 16)
    torch.testing.assert_close(activity.rates, activity.spikes.mean(dim=(0, 1)))
    assert activity.mean_rate == pytest.approx(float(activity.spikes.mean()))


def test_intensity_response_divisive_is_scale_invariant(pixels):
    # Scaling x by c scales I_EE - I_sub and I_div alike, so I does not change.
    layer = build_ei_layer(pixels, n_e=32)
    response = intensity_response(layer, pixels, [0.5, 1.0, 4.0], T=4)
    torch.testing.assert_close(response.current_std, response.current_std[1].expand(3), rtol=1e-4, atol=1e-6)
    assert response.rate.unique().numel() == 1


def test_intensity_response_subtractive_std_is_linear(pixels):
    layer = build_ei_layer(pixels, n_e=32, divisive=False)
    response = intensity_response(layer, pixels, [1.0, 3.0], T=4)
    assert response.current_std[1] == pytest.approx(3.0 * float(response.current_std[0]), rel=1e-4)
    assert response.intensities.tolist() == [1.0, 3.0]


def test_intensity_response_rejects_negative(pixels):
    layer = build_ei_layer(pixels, n_e=16)
    with pytest.raises(ValueError, match="intensities"):
        intensity_response(layer, pixels, [1.0, -0.5])


def test_batch_dependence_time_first_batch_dim(pixels):
    module = nn.Sequential(nn.Linear(49, 16), nn.BatchNorm1d(16)).train()

    def folded(x):  # batch normalization over T * B, as in a spiking network
        return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    spikes = (pixels > 0.5).float().unsqueeze(0).expand(3, -1, -1)  # [T=3, B=64, 49]
    change = batch_dependence(folded, spikes[:, :1], spikes[:, 1:9], spikes[:, 9:40], batch_dim=1)
    assert change > 1e-3


def test_batch_dependence_rejects_two_samples(pixels):
    with pytest.raises(ValueError, match="one input"):
        batch_dependence(nn.Identity(), pixels[:2], pixels[2:4], pixels[4:6])
