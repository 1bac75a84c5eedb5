"""Tests for E-I Init: the formulas, the balance it produces on MNIST, and its errors."""

import math

import pytest
import torch
from torch import nn

from ei_tutorial import LIF, EIConv2d, EILinear, InputStatistics, ei_init_


def test_statistics_match_hand_computation():
    # Features: column 0 = [0, 1], column 1 = [1, 1].
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    stats = InputStatistics.from_features(x)
    assert stats.mean == pytest.approx(0.75)
    assert stats.mean_sq == pytest.approx(0.75)
    # Per-feature variances over the batch are 0.25 and 0; their average is 0.125.
    assert stats.var == pytest.approx(0.125)


def test_parameters_follow_formulas():
    torch.manual_seed(0)
    x = (torch.rand(512, 400) < 0.3).float()
    layer = EILinear(400, 256, ei_ratio=4)
    ei_init_(layer, x)
    m, v, sq = x.mean().item(), x.var(0, unbiased=False).mean().item(), (x**2).mean().item()
    d = 400
    lam = math.sqrt(v / (d * (sq + v)))
    g_i = math.sqrt(sq + v) / (math.sqrt(d) * m)
    # Exponential samples: mean = scale = standard deviation.
    for w in (layer.weight_ee, layer.weight_ie):
        assert w.mean().item() == pytest.approx(lam, rel=0.03)
        assert w.std().item() == pytest.approx(lam, rel=0.05)
        assert w.min().item() >= 0.0
    assert torch.all(layer.weight_ei == 1 / 64)
    torch.testing.assert_close(layer.weight_ei.sum(1), torch.ones(256))
    torch.testing.assert_close(layer.gain_i, torch.full((64,), g_i))
    assert torch.all(layer.gain_e == 1.0)
    assert torch.all(layer.bias == 0.0)


def expected_current_std(features):
    """Standard deviation of the E-I current for independent inputs.

    With weights of mean and standard deviation lambda, ``I_EE - I_sub`` has variance
    ``d lambda^2 E[x^2]`` and ``I_div`` is about ``g_I lambda d E[x] = sqrt(Var[x])``;
    the E-I Init values of lambda and g_I turn their ratio into this expression.
    """
    sq = (features**2).mean().item()
    var = features.var(0, unbiased=False).mean().item()
    return math.sqrt(sq / (sq + var))


def test_single_layer_current_is_standardised():
    torch.manual_seed(0)
    x = (torch.rand(2048, 300) < 0.2).float()
    layer = ei_init_(EILinear(300, 400), x, seed=1)
    with torch.no_grad():
        current = layer(x)
    assert abs(current.mean().item()) < 0.1
    assert current.std().item() == pytest.approx(expected_current_std(x), rel=0.05)


def test_conv_layer_uses_kernel_fan_in():
    torch.manual_seed(0)
    x = (torch.rand(64, 8, 10, 10) < 0.25).float()
    layer = EIConv2d(8, 64, 3)
    ei_init_(layer, x, seed=0)
    features = x.reshape(64, -1)
    m, v = features.mean().item(), features.var(0, unbiased=False).mean().item()
    sq = (features**2).mean().item()
    expected = math.sqrt(sq + v) / (math.sqrt(72) * m)
    torch.testing.assert_close(layer.gain_i, torch.full((16,), expected))
    with torch.no_grad():
        current = layer(x)
    assert abs(current.mean().item()) < 0.2
    assert current.std().item() == pytest.approx(expected_current_std(features), rel=0.15)


def test_seed_reproduces_weights():
    x = torch.rand(32, 20)
    a = ei_init_(EILinear(20, 8), x, seed=7)
    b = ei_init_(EILinear(20, 8), x, seed=7)
    c = ei_init_(EILinear(20, 8), x, seed=8)
    assert torch.equal(a.weight_ee, b.weight_ee)
    assert not torch.equal(a.weight_ee, c.weight_ee)


def test_generator_reproduces_weights():
    x = torch.rand(32, 20)
    a = ei_init_(EILinear(20, 8), x, generator=torch.Generator().manual_seed(3))
    b = ei_init_(EILinear(20, 8), x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.weight_ie, b.weight_ie)


class DeepEINet(nn.Module):
    """EILinear + LIF layers recording each layer's current and spikes."""

    def __init__(self, depth=10, width=256, in_features=784):
        super().__init__()
        dims = [in_features] + [width] * depth
        self.layers = nn.ModuleList(EILinear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.lif = LIF()
        self.record = []

    def forward(self, x):
        self.record = []
        for layer in self.layers:
            current = layer(x)
            x = self.lif(current)
            self.record.append((current, x))
        return x


@pytest.fixture(scope="module")
def mnist_images(mnist_data_root):
    from ei_tutorial.data import load_datasets

    train, heldout = load_datasets("mnist")
    first = torch.stack([train[i][0] for i in range(256)]).flatten(1)
    fresh = torch.stack([heldout[i][0] for i in range(256)]).flatten(1)
    return first, fresh


def test_deep_network_balanced_after_init_on_mnist(mnist_images):
    first, fresh = mnist_images
    T = 4
    net = DeepEINet()
    ei_init_(net, first.expand(T, -1, -1), seed=0)
    for batch in (first, fresh):
        with torch.no_grad():
            net(batch.expand(T, -1, -1))
        for depth, (current, spikes) in enumerate(net.record, start=1):
            assert abs(current.mean().item()) <= 0.2, f"layer {depth} mean {current.mean():.3f}"
            assert 0.6 <= current.std().item() <= 1.4, f"layer {depth} std {current.std():.3f}"
            assert 0.02 <= spikes.mean().item() <= 0.5, f"layer {depth} rate {spikes.mean():.3f}"


def test_plain_network_falls_silent_on_mnist(mnist_images):
    """The same depth without inhibition and with PyTorch's default init goes silent."""
    first, _ = mnist_images
    torch.manual_seed(0)
    dims = [784] + [256] * 10
    layers = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
    lif = LIF()
    x = first.expand(4, -1, -1)
    rates = []
    with torch.no_grad():
        for layer in layers:
            x = lif(layer(x))
            rates.append(x.mean().item())
    assert max(rates[1:]) < 0.01


def test_negative_input_names_layer():
    net = nn.Sequential(EILinear(4, 4), EILinear(4, 4))
    with pytest.raises(ValueError, match=r"layer '1'.*negative.*normalise"):
        ei_init_(net, torch.rand(8, 4))


def test_all_zero_input_names_layer_and_statistic():
    net = nn.Sequential(nn.Identity(), EILinear(4, 4))
    with pytest.raises(ValueError, match=r"layer '1'.*all zeros \(E\[x\] = 0"):
        ei_init_(net, torch.zeros(8, 4))


def test_constant_input_rejected():
    with pytest.raises(ValueError, match=r"Var\[x\]"):
        ei_init_(EILinear(4, 4), torch.ones(8, 4))


def test_model_without_ei_layers_rejected():
    with pytest.raises(ValueError, match="no E-I layer"):
        ei_init_(nn.Linear(3, 3), torch.rand(2, 3))


def test_unused_layer_warns():
    class Partial(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = EILinear(4, 4)
            self.unused = EILinear(4, 4)

        def forward(self, x):
            return self.used(x)

    with pytest.warns(UserWarning, match="unused"):
        ei_init_(Partial(), torch.rand(8, 4))
