"""Public tests of assignment 2, divisive inhibition with a learnable offset (a2_divisive_offset)."""

import math

import pytest
import torch

from ei_tutorial import EIConv2d, EILinear, InputStatistics, attach_dale_projection, dale_violations, ei_init_
from ei_tutorial.data import direct_encode
from ei_tutorial.models import build_model
from ei_tutorial.training import train

STATS = InputStatistics(mean=0.25, var=0.1875, mean_sq=0.25)


def copy_ei_parameters(source, target):
    """Copy the E-I parameters of ``source`` into ``target`` (the offset is left alone)."""
    with torch.no_grad():
        for name in ("weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i", "bias"):
            getattr(target, name).copy_(getattr(source, name))


def spike_batch(*shape, rate=0.2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator) < rate).float()


# -- part 1: DivisiveOffset ----------------------------------------------------------------


def test_init_sets_offset_and_ei_parameters(divisive_offset):
    layer = divisive_offset.OffsetEILinear(40, 16, offset_init=0.25)
    layer.init_from_statistics_(STATS, torch.Generator().manual_seed(0))
    assert layer.offset.shape == (16,)
    assert torch.all(layer.offset == 0.25)
    assert torch.all(layer.weight_ei == 1 / 4)
    assert torch.all(layer.gain_e == 1.0)
    torch.testing.assert_close(layer.gain_i, torch.full((4,), STATS.inhibitory_gain(40)))


def test_ei_init_resets_offset(divisive_offset):
    layer = divisive_offset.OffsetEILinear(30, 8, ei_ratio=2, offset_init=0.5)
    with torch.no_grad():
        layer.offset.fill_(3.0)
    ei_init_(layer, spike_batch(64, 30), seed=0)
    assert torch.all(layer.offset == 0.5)


def test_offset_is_sign_constrained(divisive_offset):
    layer = divisive_offset.OffsetEILinear(10, 8)
    names = [name for name, _ in layer.constrained_parameters()]
    assert "offset" in names
    for name in ("weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i"):
        assert name in names
    assert "bias" not in names


def test_dale_projection_clamps_offset(divisive_offset):
    layer = divisive_offset.OffsetEILinear(10, 8)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    attach_dale_projection(optimizer, layer)
    with torch.no_grad():
        layer.offset.fill_(-1.0)
    assert "offset" in dale_violations(layer)
    layer(spike_batch(4, 10)).sum().backward()
    optimizer.step()
    assert dale_violations(layer) == {}
    assert torch.all(layer.offset >= 0)


def test_negative_offset_init_rejected(divisive_offset):
    with pytest.raises(ValueError, match="offset_init"):
        divisive_offset.OffsetEILinear(10, 8, offset_init=-0.1)


# -- part 2: divide_with_offset -------------------------------------------------------------


def test_divide_with_offset_by_hand(divisive_offset):
    num = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    i_div = torch.tensor([[1.0, 3.0], [0.0, 1.0]])
    offset = torch.tensor([1.0, 0.0])
    gain = torch.tensor([2.0, 1.0])
    bias = torch.tensor([0.1, -0.1])
    out = divisive_offset.divide_with_offset(num, i_div, offset, gain, bias, (1,))
    # Row 0: 2 * 1 / (1 + 1) + 0.1 = 1.1 and -2 / 3 - 0.1.  Row 1: 2 * 0.5 / (0 + 1) + 0.1 = 1.1 and 3 - 0.1.
    expected = torch.tensor([[1.1, -2.0 / 3.0 - 0.1], [1.1, 2.9]])
    torch.testing.assert_close(out, expected)


def test_divide_with_zero_offset_stabilises_zeros(divisive_offset):
    num = torch.tensor([[1.0, 2.0, 3.0]])
    i_div = torch.tensor([[0.0, 0.5, 2.0]])
    out = divisive_offset.divide_with_offset(num, i_div, torch.zeros(3), torch.ones(3), torch.zeros(3), (1,))
    # E-I Prop replaces the zero by the sample's smallest non-zero divisor, 0.5.
    torch.testing.assert_close(out, torch.tensor([[2.0, 4.0, 1.5]]))


# -- part 3: OffsetEILinear.forward -----------------------------------------------------------


def test_linear_with_offset_matches_eps_division(divisive_offset):
    torch.manual_seed(0)
    x = spike_batch(32, 50, rate=0.3, seed=1)
    for scale in (1.0, 2.0):
        reference = EILinear(50, 24, ei_ratio=4, inhibition_scale=scale, stabilise=False, eps=0.3)
        ei_init_(reference, x, seed=0)
        layer = divisive_offset.OffsetEILinear(50, 24, ei_ratio=4, inhibition_scale=scale)
        copy_ei_parameters(reference, layer)
        with torch.no_grad():
            layer.offset.fill_(0.3)
        torch.testing.assert_close(layer(x), reference(x), msg=f"inhibition_scale={scale}")


def test_linear_with_zero_offset_matches_library(divisive_offset):
    # A sparse input leaves some samples with I_div = 0, where E-I Prop must step in.
    x = spike_batch(4, 3, 20, rate=0.05, seed=2)
    reference = EILinear(20, 8, ei_ratio=2)
    layer = divisive_offset.OffsetEILinear(20, 8, ei_ratio=2)
    copy_ei_parameters(reference, layer)
    out = layer(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference(x))


def test_linear_gradients_match_library(divisive_offset):
    x = spike_batch(16, 30, rate=0.3, seed=3)
    reference = EILinear(30, 12, ei_ratio=3, stabilise=False, eps=0.5)
    ei_init_(reference, x, seed=1)
    layer = divisive_offset.OffsetEILinear(30, 12, ei_ratio=3)
    copy_ei_parameters(reference, layer)
    with torch.no_grad():
        layer.offset.fill_(0.5)
    target = torch.randn(16, 12, generator=torch.Generator().manual_seed(4))
    ((layer(x) - target) ** 2).sum().backward()
    ((reference(x) - target) ** 2).sum().backward()
    for name in ("weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i", "bias"):
        torch.testing.assert_close(getattr(layer, name).grad, getattr(reference, name).grad, msg=name)


def test_offset_gradient_follows_formula(divisive_offset):
    # dI/dsigma = -g_E (I_EE - I_sub) / (I_div + sigma)^2 for each E neuron.
    x = spike_batch(1, 12, rate=0.5, seed=5)
    layer = divisive_offset.OffsetEILinear(12, 4, ei_ratio=2, offset_init=0.2)
    ei_init_(layer, spike_batch(32, 12, rate=0.5, seed=6), seed=0)
    layer(x).sum().backward()
    with torch.no_grad():
        r_i = x @ layer.weight_ie.T
        num = x @ layer.weight_ee.T - r_i @ layer.weight_ei.T
        i_div = (r_i * layer.gain_i) @ layer.weight_ei.T
        expected = -(layer.gain_e * num / (i_div + layer.offset) ** 2).sum(0)
    torch.testing.assert_close(layer.offset.grad, expected)


# -- part 4: OffsetEIConv2d.forward -------------------------------------------------------------


def test_conv_with_offset_matches_eps_division(divisive_offset):
    x = spike_batch(3, 2, 4, 9, 9, rate=0.3, seed=7)
    reference = EIConv2d(4, 16, 3, stride=2, padding=1, stabilise=False, eps=0.4)
    ei_init_(reference, x, seed=0)
    layer = divisive_offset.OffsetEIConv2d(4, 16, 3, stride=2, padding=1)
    copy_ei_parameters(reference, layer)
    with torch.no_grad():
        layer.offset.fill_(0.4)
    out = layer(x)
    assert out.shape == (3, 2, 16, 5, 5)
    torch.testing.assert_close(out, reference(x))
    torch.testing.assert_close(layer(x.flatten(0, 1)), reference(x.flatten(0, 1)))


def test_conv_with_zero_offset_matches_library(divisive_offset):
    x = spike_batch(6, 2, 7, 7, rate=0.03, seed=8)
    reference = EIConv2d(2, 8, 3, padding=1)
    layer = divisive_offset.OffsetEIConv2d(2, 8, 3, padding=1)
    copy_ei_parameters(reference, layer)
    out = layer(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, reference(x))


def test_conv_current_standardised_after_init(divisive_offset):
    x = spike_batch(64, 8, 10, 10, rate=0.25, seed=9)
    layer = divisive_offset.OffsetEIConv2d(8, 64, 3)
    ei_init_(layer, x, seed=0)
    with torch.no_grad():
        current = layer(x)
    features = x.reshape(64, -1)
    mean_sq = (features**2).mean().item()
    var = features.var(0, unbiased=False).mean().item()
    assert abs(current.mean().item()) < 0.2
    assert current.std().item() == pytest.approx(math.sqrt(mean_sq / (mean_sq + var)), rel=0.15)


# -- part 5: register_offset_variant ----------------------------------------------------------


def test_variant_builds_mlp_and_vgg(divisive_offset):
    name = divisive_offset.register_offset_variant("ei_offset_test")
    assert name == "ei_offset_test"
    mlp = build_model("mlp", name, widths=[32, 16], layer_kwargs={"offset_init": 0.1})
    hidden = [m for m in mlp.modules() if isinstance(m, divisive_offset.OffsetEILinear)]
    assert len(hidden) == 2
    assert all(torch.all(m.offset == 0.1) for m in hidden)
    assert isinstance(mlp.readout, EILinear) and mlp.readout.readout

    vgg = build_model("vgg8", name, widths=[8, 8, 16, 16, 16], image_size=28)
    convs = [m for m in vgg.modules() if isinstance(m, divisive_offset.OffsetEIConv2d)]
    assert len(convs) == 5
    images = direct_encode(spike_batch(8, 1, 28, 28, rate=0.3, seed=10), 2)
    ei_init_(vgg, images, seed=0)
    with torch.no_grad():
        logits = vgg(images)
    assert logits.shape == (8, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.data
def test_trainer_trains_offset_variant(divisive_offset, require_mnist, tmp_path):
    name = divisive_offset.register_offset_variant("ei_offset_train")
    require_mnist()
    result = train(
        {
            "name": "a2", "out_dir": str(tmp_path), "arch": "mlp", "variant": name, "widths": [64],
            "layer_kwargs": {"offset_init": 0.1},
            "epochs": 1, "batch_size": 64, "train_subset": 1024, "max_steps_per_epoch": 16,
            "heldout_subset": 500, "lr": 0.05, "warmup_epochs": 0, "progress": False, "seed": 0,
        }
    )
    layer = result.model.hidden[0].layer
    assert isinstance(layer, divisive_offset.OffsetEILinear)
    assert result.history[-1]["heldout_acc"] > 0.2, "16 SGD steps should beat chance (0.1) clearly"
    assert dale_violations(result.model) == {}
    assert not torch.all(layer.offset == 0.1), "training should move the offset"
