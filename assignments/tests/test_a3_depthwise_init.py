"""Public tests of assignment 3, E-I Init for a depthwise E-I convolution (a3_depthwise_init)."""

import math

import pytest
import torch
from torch import nn

from ei_tutorial import LIF, EIConv2d, InputStatistics, attach_dale_projection, dale_violations, ei_init_

STATS = InputStatistics(mean=0.3, var=0.21, mean_sq=0.3)


def spike_batch(*shape, rate=0.2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator) < rate).float()


def expected_depthwise_std(features):
    """Standard deviation of the depthwise E-I current for independent inputs.

    An E neuron reads one channel, but I_sub pools all channels, so the input's
    fluctuations do not cancel in I_EE - I_sub as they do in the library's layers.
    Then ``Var[I_EE - I_sub]`` is about ``d lambda^2 (2 E[x^2] - E[x]^2)`` while
    ``E[I_div]^2`` is ``d lambda^2 (E[x^2] + Var[x])``. For independent inputs both
    brackets are equal, so the standard deviation is close to 1.
    """
    mean = features.mean().item()
    mean_sq = (features**2).mean().item()
    var = features.var(0, unbiased=False).mean().item()
    return math.sqrt((2 * mean_sq - mean**2) / (mean_sq + var))


# -- part 1: depthwise_fan_ins -----------------------------------------------------------


def test_fan_ins_by_hand(depthwise_init):
    assert depthwise_init.depthwise_fan_ins(3, 4) == (9, 36)
    assert depthwise_init.depthwise_fan_ins((3, 5), 2) == (15, 30)
    assert depthwise_init.depthwise_fan_ins(1, 1) == (1, 1)


# -- part 2: depthwise_init_values ------------------------------------------------------------


def test_init_values_balance_mean_inputs(depthwise_init):
    values = depthwise_init.depthwise_init_values(STATS, 9, 36, 8)
    # E[I_EE] = d_E scale_e E[x] must equal E[I_sub] = d_I scale_i E[x] (rows of W_EI sum to 1).
    assert 9 * values.scale_e == pytest.approx(36 * values.scale_i)
    assert values.weight_ei * 8 == pytest.approx(1.0)


def test_init_values_follow_library_for_e_path(depthwise_init):
    values = depthwise_init.depthwise_init_values(STATS, 9, 36, 8)
    assert values.scale_e == pytest.approx(STATS.weight_scale(9))
    assert values.gain_i == pytest.approx(STATS.inhibitory_gain(9))


def test_init_values_equal_library_for_equal_fan_ins(depthwise_init):
    values = depthwise_init.depthwise_init_values(STATS, 72, 72, 16)
    assert values.scale_e == pytest.approx(STATS.weight_scale(72))
    assert values.scale_i == pytest.approx(STATS.weight_scale(72))
    assert values.gain_i == pytest.approx(STATS.inhibitory_gain(72))
    assert values.weight_ei == pytest.approx(1 / 16)


# -- part 3: EIDepthwiseConv2d.init_from_statistics_ -----------------------------------------


def test_parameters_follow_formulas(depthwise_init):
    layer = depthwise_init.EIDepthwiseConv2d(128, 3, ei_ratio=4)
    layer.init_from_statistics_(STATS, torch.Generator().manual_seed(0))
    scale_e = STATS.weight_scale(9)
    scale_i = scale_e / 4
    # 1,152 exponential samples per weight tensor: their mean is within about 3% of the scale.
    for name, weight, scale in (("weight_ee", layer.weight_ee, scale_e), ("weight_ie", layer.weight_ie, scale_i)):
        assert weight.min().item() >= 0.0, name
        assert weight.mean().item() == pytest.approx(scale, rel=0.1), name
        assert weight.std().item() == pytest.approx(scale, rel=0.15), name
    assert torch.all(layer.weight_ei == 1 / 32)
    torch.testing.assert_close(layer.gain_i, torch.full((32,), STATS.inhibitory_gain(9)))
    assert torch.all(layer.gain_e == 1.0)
    assert torch.all(layer.bias == 0.0)


def test_layer_balanced_after_ei_init(depthwise_init):
    for rate in (0.1, 0.3):
        x = spike_batch(64, 64, 16, 16, rate=rate, seed=1)
        layer = depthwise_init.EIDepthwiseConv2d(64, 3)
        ei_init_(layer, x, seed=0)
        with torch.no_grad():
            parts = layer.components(x)
            current = layer(x)
        ratio = (parts["i_sub"].mean() / parts["i_ee"].mean()).item()
        assert ratio == pytest.approx(1.0, abs=0.08), f"rate {rate}: E[I_sub] / E[I_EE] = {ratio:.3f}"
        assert abs(current.mean().item()) < 0.15, f"rate {rate}"
        expected = expected_depthwise_std(x.reshape(64, -1))
        assert current.std().item() == pytest.approx(expected, rel=0.15), f"rate {rate}"


def test_strided_layer_balanced_after_ei_init(depthwise_init):
    x = spike_batch(4, 16, 32, 16, 16, rate=0.2, seed=2)
    layer = depthwise_init.EIDepthwiseConv2d(32, 3, stride=2, padding=1, ei_ratio=2)
    ei_init_(layer, x, seed=0)
    with torch.no_grad():
        parts = layer.components(x)
        current = layer(x)
    assert current.shape == (4, 16, 32, 8, 8)
    ratio = (parts["i_sub"].mean() / parts["i_ee"].mean()).item()
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert abs(current.mean().item()) < 0.15
    assert 0.8 <= current.std().item() <= 1.3


def test_seed_reproduces_weights(depthwise_init):
    x = spike_batch(16, 8, 6, 6, rate=0.3, seed=3)
    first = ei_init_(depthwise_init.EIDepthwiseConv2d(8, 3), x, seed=7)
    again = ei_init_(depthwise_init.EIDepthwiseConv2d(8, 3), x, seed=7)
    other = ei_init_(depthwise_init.EIDepthwiseConv2d(8, 3), x, seed=8)
    assert torch.equal(first.weight_ee, again.weight_ee)
    assert torch.equal(first.weight_ie, again.weight_ie)
    assert not torch.equal(first.weight_ee, other.weight_ee)


def test_init_rejects_silent_input(depthwise_init):
    layer = depthwise_init.EIDepthwiseConv2d(8, 3)
    with pytest.raises(ValueError, match="all zeros"):
        layer.init_from_statistics_(InputStatistics(mean=0.0, var=0.0, mean_sq=0.0))


def test_dale_projection_keeps_signs(depthwise_init):
    x = spike_batch(8, 8, 6, 6, rate=0.3, seed=4)
    layer = ei_init_(depthwise_init.EIDepthwiseConv2d(8, 3, padding=1), x, seed=0)
    optimizer = torch.optim.SGD(layer.parameters(), lr=10.0)
    attach_dale_projection(optimizer, layer)
    layer(x).pow(2).sum().backward()
    optimizer.step()
    assert dale_violations(layer) == {}


class DepthwiseStack(nn.Module):
    """EIConv2d(1 -> 16) and four depthwise E-I layers, each followed by LIF neurons."""

    def __init__(self, layer_class):
        super().__init__()
        self.layers = nn.ModuleList([EIConv2d(1, 16, 3, padding=1)] + [layer_class(16, 3, padding=1) for _ in range(4)])
        self.lif = LIF()
        self.record = []

    def forward(self, x):
        self.record = []
        for layer in self.layers:
            current = layer(x)
            x = self.lif(current)
            self.record.append((current, x))
        return x


@pytest.mark.data
def test_depthwise_stack_stays_active_on_mnist(depthwise_init, require_mnist):
    net = DepthwiseStack(depthwise_init.EIDepthwiseConv2d)
    train_set, _ = require_mnist()
    images = torch.stack([train_set[i][0] for i in range(64)])
    inputs = images.expand(4, -1, -1, -1, -1)
    ei_init_(net, inputs, seed=0)
    with torch.no_grad():
        net(inputs)
    for depth, (current, spikes) in enumerate(net.record[1:], start=2):
        assert abs(current.mean().item()) <= 0.3, f"layer {depth} mean {current.mean():.3f}"
        assert 0.5 <= current.std().item() <= 3.0, f"layer {depth} std {current.std():.3f}"
        assert 0.02 <= spikes.mean().item() <= 0.5, f"layer {depth} rate {spikes.mean():.3f}"
