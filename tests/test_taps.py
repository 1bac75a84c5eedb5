"""Tests for convolutions over a single pixel (ei_tutorial.taps)."""

import pytest
import torch
from torch import nn

from ei_tutorial.models import build_model
from ei_tutorial import EIConv2d
from ei_tutorial.taps import Conv2d, embed_tap, pointwise_input, pointwise_input_backward, single_tap


@pytest.mark.parametrize(
    "input_size, kernel, stride, padding, expected",
    [
        ((1, 1), 3, 1, 1, (1, 1)),  # 3x3 "same" convolution on one pixel: the centre tap
        ((1, 1), 3, 2, 1, (1, 1)),  # stride 2 still gives one output pixel
        ((1, 1), 5, 1, 2, (2, 2)),
        ((1, 1), (3, 5), 1, (1, 2), (1, 2)),
        ((1, 1), 1, 1, 0, (0, 0)),  # a 1x1 convolution is its only tap
        ((1, 1), 3, 1, 0, None),  # kernel larger than the padded input: no output
        ((1, 1), 3, 1, 2, None),  # padding 2 gives a 3x3 output, seen through three taps
        ((1, 1), 3, 1, 3, None),  # padding beyond the kernel: the tap lies outside it
        ((2, 2), 3, 1, 1, None),
        ((1, 2), 3, 1, 1, None),
        ((1, 1), 3, 1, "same", None),
    ],
)
def test_single_tap_cases(input_size, kernel, stride, padding, expected):
    assert single_tap(input_size, kernel, stride, padding) == expected


def test_single_tap_rejects_dilation():
    assert single_tap((1, 1), 3, 1, 1, dilation=2) is None


def test_embed_tap_gradient_and_layout():
    like = torch.empty(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
    grad = torch.arange(12.0).view(4, 3)
    full = embed_tap(grad, like, (1, 2))
    assert full.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(full[:, :, 1, 2], grad)
    assert float(full.abs().sum()) == float(grad.sum())


def compare_with_nn_conv2d(x, *args, bias):
    """Run nn.Conv2d and Conv2d with equal parameters on ``x`` (float64) and assert equal outputs and gradients.

    Returns Conv2d's gradients: of ``x``, then of each parameter.
    """
    reference = nn.Conv2d(*args, bias=bias).double()
    conv = Conv2d(*args, bias=bias).double()
    conv.load_state_dict(reference.state_dict())
    x_ref, x_conv = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, out_conv = reference(x_ref), conv(x_conv)
    assert out_conv.shape == out_ref.shape
    torch.testing.assert_close(out_conv, out_ref, rtol=1e-12, atol=1e-12)
    weight = torch.randn(out_ref.shape, dtype=torch.float64)
    grads_ref = torch.autograd.grad((out_ref * weight).sum(), [x_ref, *reference.parameters()])
    grads_conv = torch.autograd.grad((out_conv * weight).sum(), [x_conv, *conv.parameters()])
    for ref, grad in zip(grads_ref, grads_conv):
        torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-12)
    return grads_conv


@pytest.mark.parametrize("kernel, stride, padding, bias", [(3, 1, 1, True), (3, 2, 1, False), (5, 1, 2, True)])
def test_conv2d_one_pixel_matches_reference(kernel, stride, padding, bias):
    torch.manual_seed(0)
    x = torch.randn(6, 7, 1, 1, dtype=torch.float64)
    grads_tap = compare_with_nn_conv2d(x, 7, 5, kernel, stride, padding, bias=bias)
    # Only the tap at the padding offset meets the input, so only it gets a gradient.
    grad_weight = grads_tap[1]
    others = grad_weight.clone()
    others[:, :, padding, padding] = 0.0
    assert float(others.abs().max()) == 0.0
    assert float(grad_weight[:, :, padding, padding].abs().min()) > 0.0


@pytest.mark.parametrize("shape, groups", [((2, 4, 3, 3), 1), ((2, 4, 1, 1), 2)])
def test_conv2d_falls_back_to_nn_conv2d(shape, groups):
    torch.manual_seed(1)
    reference = nn.Conv2d(4, 6, 3, 1, 1, groups=groups)
    conv = Conv2d(4, 6, 3, 1, 1, groups=groups)
    conv.load_state_dict(reference.state_dict())
    x = torch.randn(shape)
    torch.testing.assert_close(conv(x), reference(x), rtol=0, atol=0)


def test_conv2d_wrong_channels_error():
    conv = Conv2d(4, 6, 3, 1, 1)
    with pytest.raises(RuntimeError, match="expected input.*to have 4 channels, but got 3"):
        conv(torch.randn(2, 3, 1, 1))


def test_conv2d_keeps_nn_conv2d_state_dict():
    conv = Conv2d(4, 6, 3, padding=1)
    assert isinstance(conv, nn.Conv2d)
    assert set(conv.state_dict()) == set(nn.Conv2d(4, 6, 3, padding=1).state_dict())


@pytest.mark.parametrize("variant", ["bn", "plain"])
def test_vgg_baselines_use_taps_conv2d(variant):
    model = build_model("vgg8", variant, in_channels=1, image_size=28)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, Conv2d) for m in convs)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 0), (2, 1), ((1, 2), (1, 0))])
def test_pointwise_input_matches_convolution(stride, padding):
    # A 1x1 kernel of ones on one channel returns the pixels it reads.
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float64).view(2, 1, 5, 6)
    ones = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(x, ones, stride=stride, padding=padding)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    torch.testing.assert_close(pointwise_input(x, pair(stride), pair(padding)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("stride, padding", [(2, 0), (2, 1), (3, 1)])
def test_pointwise_input_backward_matches_autograd(stride, padding):
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    pixels = pointwise_input(x, (stride, stride), (padding, padding))
    grad = torch.randn(pixels.shape, dtype=torch.float64)
    (expected,) = torch.autograd.grad(pixels, x, grad)
    result = pointwise_input_backward(grad, x, (stride, stride), (padding, padding))
    assert result.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(result, expected, rtol=0, atol=0)


@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (2, 0, False), (2, 1, True)])
def test_conv2d_pointwise_matches_reference(stride, padding, bias):
    torch.manual_seed(2)
    x = torch.rand(4, 3, 6, 7, dtype=torch.float64)
    grads = compare_with_nn_conv2d(x, 3, 5, 1, stride, padding, bias=bias)
    assert grads[0].shape == x.shape


def _convolution_ops(step):
    with torch.profiler.profile() as prof:
        step()
    return [event.key for event in prof.key_averages() if "convolution" in event.key]


def test_pointwise_kernels_skip_onednn():
    # Under valgrind on an AVX2 CPU (PyTorch 2.14.1), oneDNN's weight gradient of a strided
    # channels-last 1x1 convolution with 2 input channels wrote past its buffer.
    layer = EIConv2d(2, 8, 1, stride=2)
    conv = Conv2d(2, 8, 1, stride=2).to(memory_format=torch.channels_last)
    x = torch.rand(2, 2, 6, 6).contiguous(memory_format=torch.channels_last)
    assert _convolution_ops(lambda: layer(x.requires_grad_()).pow(2).mean().backward()) == []
    assert _convolution_ops(lambda: conv(x).sum().backward()) == []
