"""Tests for inputs repeated over time, computed once (ei_tutorial.repeats and its callers)."""

import copy

import pytest
import torch
from torch import nn

from ei_tutorial import LIF, EIConv2d, EILinear
from ei_tutorial.data import direct_encode
from ei_tutorial.models import build_model
from ei_tutorial.models.layers import TimeDistributed
from ei_tutorial.repeats import repeat_first_dim, repeats_first_dim


def test_repeats_first_dim_cases():
    images = torch.rand(3, 2, 5)
    assert repeats_first_dim(direct_encode(images, 4))
    assert not repeats_first_dim(direct_encode(images, 4).contiguous())
    assert not repeats_first_dim(direct_encode(images, 1))
    assert not repeats_first_dim(torch.zeros(5).expand(4, 5)[0])
    assert not repeats_first_dim("not a tensor")


def test_repeat_first_dim_is_a_view():
    out = torch.arange(6.0).view(1, 2, 3)
    repeated = repeat_first_dim(out, 4)
    assert repeated.shape == (4, 2, 3)
    assert repeated.stride(0) == 0
    assert repeated.data_ptr() == out.data_ptr()


LAYERS = {
    "linear_fused": (lambda: EILinear(12, 8, ei_ratio=4), (5, 12)),
    "linear_reference": (lambda: EILinear(12, 8, ei_ratio=4, fused=False), (5, 12)),
    "conv_fused": (lambda: EIConv2d(2, 8, 3, padding=1, ei_ratio=4), (5, 2, 6, 6)),
    "conv_reference": (lambda: EIConv2d(2, 8, 3, padding=1, ei_ratio=4, fused=False), (5, 2, 6, 6)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_ei_layer_repeated_input_matches_copies(name):
    make, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = make().double()
    twin = copy.deepcopy(layer)
    images = torch.rand(shape, dtype=torch.float64)
    images[0] = 0.0  # a silent sample exercises the stabilisation
    out = layer(direct_encode(images, 3))
    out_copies = twin(direct_encode(images, 3).contiguous())
    assert out.stride(0) == 0
    # The fused path picks its order by the number of rows, so the rounding may differ.
    torch.testing.assert_close(out, out_copies, rtol=1e-12, atol=1e-14)
    weight = torch.randn(out.shape, dtype=torch.float64)
    (out * weight).sum().backward()
    (out_copies * weight).sum().backward()
    for (param_name, p), q in zip(layer.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14, msg=param_name)


def test_ei_layer_repeated_input_gradient():
    torch.manual_seed(1)
    layer = EIConv2d(2, 8, 3, padding=1, ei_ratio=4).double()
    images = torch.rand(4, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    copies = images.detach().clone().requires_grad_()
    layer(direct_encode(images, 3)).pow(2).sum().backward()
    copy.deepcopy(layer)(direct_encode(copies, 3).contiguous()).pow(2).sum().backward()
    torch.testing.assert_close(images.grad, copies.grad, rtol=1e-12, atol=1e-14)


def test_batch_norm_repeated_input_matches_copies():
    torch.manual_seed(2)
    conv_bn = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    block = TimeDistributed(conv_bn, once_for_repeats=True).double()
    twin = copy.deepcopy(block)
    twin.once_for_repeats = False
    images = torch.rand(6, 2, 5, 5, dtype=torch.float64)
    steps = 3
    out = block(direct_encode(images, steps))
    out_copies = twin(direct_encode(images, steps))
    assert out.stride(0) == 0
    torch.testing.assert_close(out, out_copies, rtol=1e-12, atol=1e-12)
    out.pow(3).sum().backward()
    out_copies.pow(3).sum().backward()
    for p, q in zip(block.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)
    bn, bn_copies = block.module[1], twin.module[1]
    torch.testing.assert_close(bn.running_mean, bn_copies.running_mean, rtol=1e-12, atol=1e-14)
    # The unbiased running variance counts n = B*H*W samples instead of T*n: with the
    # default momentum 0.1 from var 1, running_var = 0.9 + 0.1 * var_biased * n / (n - 1).
    n = 6 * 5 * 5
    var_biased = (bn_copies.running_var - 0.9) / 0.1 * (steps * n - 1) / (steps * n)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var_biased * n / (n - 1), rtol=1e-12, atol=1e-14)


def test_time_distributed_default_keeps_every_step():
    # Dropout draws a mask per sample, so a repeated input must not be computed once.
    torch.manual_seed(3)
    block = TimeDistributed(nn.Dropout(0.5))
    out = block(direct_encode(torch.ones(2, 50), 4))
    assert out.stride(0) != 0
    assert not torch.equal(out[0], out[1])


def test_lif_repeated_current_keeps_layout():
    torch.manual_seed(4)
    step = (torch.rand(3, 4, 5, 5) * 3).contiguous(memory_format=torch.channels_last)
    current = direct_encode(step, 4)
    spikes, v = LIF().trace(current)
    spikes_copies, v_copies = LIF().trace(current.contiguous())
    assert spikes[0].is_contiguous(memory_format=torch.channels_last)
    assert spikes[3].is_contiguous(memory_format=torch.channels_last)
    assert spikes.stride(0) == step.numel()
    torch.testing.assert_close(spikes, spikes_copies, rtol=0, atol=0)
    torch.testing.assert_close(v, v_copies, rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["ei", "bn", "plain"])
def test_vgg_direct_encoding_matches_copies(variant):
    torch.manual_seed(5)
    model = build_model("vgg8", variant, in_channels=1, image_size=28).double()
    twin = copy.deepcopy(model)
    images = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    logits = model(direct_encode(images, 3))
    logits_copies = twin(direct_encode(images, 3).contiguous())
    torch.testing.assert_close(logits, logits_copies, rtol=1e-12, atol=1e-12)
    logits.sum().backward()
    logits_copies.sum().backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_batch_norm_mlp_one_repeated_sample():
    # Batch norm in training needs more than one value per channel, so a batch of one
    # sample runs over all time steps.
    torch.manual_seed(6)
    model = build_model("mlp", "bn", widths=(32, 16)).train()
    twin = copy.deepcopy(model)
    images = torch.rand(1, 1, 28, 28)
    logits = model(direct_encode(images, 4))
    torch.testing.assert_close(logits, twin(direct_encode(images, 4).contiguous()))


@pytest.mark.parametrize(
    "layer, images, expected",
    [
        (EILinear(10, 8), torch.rand(3, 12), r"got shape \(4, 3, 12\)"),
        (EIConv2d(2, 8, 3), torch.rand(3, 5, 6, 6), r"got shape \(4, 3, 5, 6, 6\)"),
    ],
)
def test_repeated_input_error_names_full_shape(layer, images, expected):
    with pytest.raises(ValueError, match=expected):
        layer(direct_encode(images, 4))
