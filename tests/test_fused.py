"""Tests for the fused E-I layer function against the plain PyTorch reference path."""

import pytest
import torch

from ei_tutorial import EIConv2d, EILinear
from ei_tutorial.fused import ORDERS, EICircuitFunction, choose_order, ei_circuit, order_costs
from ei_tutorial.fused_ops import stacked_view


def randomise_(layer, seed=0, dtype=torch.float32):
    """Give every parameter distinct positive values (bias of either sign)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=dtype) + 0.1)
            if name == "bias":
                p.sub_(0.6)
    return layer


def spikes(shape, rate=0.3, seed=1, dtype=torch.float32):
    """Bernoulli spikes whose first sample is silent and second half-silent."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) < rate).to(dtype)
    x[0] = 0.0
    x[1, ..., : shape[-1] // 2] = 0.0
    return x


LAYERS = {
    "linear": (lambda **k: EILinear(12, 8, ei_ratio=4, **k), (6, 12), None),
    "linear_3d": (lambda **k: EILinear(10, 6, ei_ratio=3, **k), (4, 3, 10), None),
    "conv": (lambda **k: EIConv2d(3, 8, 3, padding=1, ei_ratio=4, **k), (4, 3, 7, 6), ((1, 1), (1, 1))),
    "conv_strided": (lambda **k: EIConv2d(2, 4, 3, stride=2, ei_ratio=2, **k), (3, 2, 9, 8), ((2, 2), (0, 0))),
    # One input pixel: the drive is the product with the centre tap of each kernel.
    "conv_one_pixel": (lambda **k: EIConv2d(6, 8, 3, padding=1, ei_ratio=4, **k), (5, 6, 1, 1), ((1, 1), (1, 1))),
    # A 1x1 kernel: the drive is a product over the pixels that stride and padding select.
    "conv_pointwise": (
        lambda **k: EIConv2d(3, 8, 1, stride=2, padding=1, ei_ratio=4, **k), (4, 3, 6, 5), ((2, 2), (1, 1))
    ),
}


def reference_and_fused(name, order, dtype=torch.float32, x=None):
    """Run the reference layer and EICircuitFunction on the same input; return outputs and gradients."""
    make, shape, conv = LAYERS[name]
    layer = randomise_(make(fused=False, scale_ei_grad=False).to(dtype), dtype=dtype)
    x = spikes(shape, dtype=dtype) if x is None else x
    x_ref = x.clone().requires_grad_()
    x_fused = x.clone().requires_grad_()
    out_ref = layer(x_ref)
    weight = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    grads_ref = torch.autograd.grad((out_ref * weight).sum(), [x_ref, *layer.parameters()])
    params = {n: p.detach().clone().requires_grad_() for n, p in layer.named_parameters()}
    out_fused = ei_circuit(
        x_fused, params["weight_ee"], params["weight_ie"], params["weight_ei"], params["gain_i"],
        params["gain_e"], params["bias"], conv=conv, order=order,
    )
    names = [n for n, _ in layer.named_parameters()]
    grads_fused = torch.autograd.grad((out_fused * weight).sum(), [x_fused, *[params[n] for n in names]])
    return out_ref, out_fused, dict(zip(["x", *names], grads_ref)), dict(zip(["x", *names], grads_fused))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_fused_matches_reference(name, order):
    out_ref, out_fused, grads_ref, grads_fused = reference_and_fused(name, order)
    assert out_fused.shape == out_ref.shape
    torch.testing.assert_close(out_fused, out_ref, rtol=1e-5, atol=1e-5)
    for key, grad in grads_ref.items():
        torch.testing.assert_close(grads_fused[key], grad, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ["linear", "conv", "conv_one_pixel", "conv_pointwise"])
def test_fused_matches_reference_float64(name, order):
    out_ref, out_fused, grads_ref, grads_fused = reference_and_fused(name, order, dtype=torch.float64)
    torch.testing.assert_close(out_fused, out_ref, rtol=1e-12, atol=1e-12)
    for key, grad in grads_ref.items():
        torch.testing.assert_close(grads_fused[key], grad, rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("order", ORDERS)
def test_fused_matches_reference_with_negative_divisor(order):
    # Without Dale's law the divisor can be negative, and then so is the smallest non-zero
    # value of a sample. The fused path must still agree with the reference.
    make, shape, conv = LAYERS["conv"]
    layer = randomise_(make(fused=False, scale_ei_grad=False))
    with torch.no_grad():
        layer.gain_i[0] = -2.0
    x = spikes(shape)
    out_ref = layer(x)
    out_fused = ei_circuit(
        x, layer.weight_ee, layer.weight_ie, layer.weight_ei, layer.gain_i, layer.gain_e, layer.bias,
        conv=conv, order=order,
    )
    assert bool((out_ref.detach() < 0).any())
    # Mixed signs let the divisor cancel to near zero, where rounding differences grow.
    torch.testing.assert_close(out_fused, out_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ["linear", "conv"])
def test_zero_gains_match_reference(name, order):
    # Dale's projection clamps negative gains to exactly zero. The partial and folded
    # orders fold g_E into the drive's weights, so their g_E gradient comes from there.
    make, shape, conv = LAYERS[name]
    reference = randomise_(make(fused=False, scale_ei_grad=False))
    with torch.no_grad():
        reference.gain_e[::3] = 0.0
        reference.gain_i[0] = 0.0
    names = ["weight_ee", "weight_ie", "weight_ei", "gain_i", "gain_e", "bias"]
    leaves = [getattr(reference, n) for n in names]
    params = [p.detach().clone().requires_grad_() for p in leaves]
    x = spikes(shape)
    out_ref = reference(x)
    out_fused = ei_circuit(x, *params, conv=conv, order=order)
    torch.testing.assert_close(out_fused, out_ref)
    weight = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(3))
    grads_ref = torch.autograd.grad((out_ref * weight).sum(), leaves)
    grads_fused = torch.autograd.grad((out_fused * weight).sum(), params)
    for name_, ref, fused in zip(names, grads_ref, grads_fused):
        torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5, msg=name_)
    assert bool((grads_ref[4][::3] != 0).any())


@pytest.mark.parametrize("order", ORDERS)
def test_all_zero_sample_gives_bias_and_no_gradient(order):
    make, shape, conv = LAYERS["conv"]
    layer = randomise_(make())
    x = spikes(shape).requires_grad_()
    out = ei_circuit(
        x, layer.weight_ee, layer.weight_ie, layer.weight_ei, layer.gain_i, layer.gain_e, layer.bias,
        conv=conv, order=order,
    )
    out.pow(2).sum().backward()
    expected = layer.bias.detach().view(-1, 1, 1).expand_as(out[0])
    torch.testing.assert_close(out[0], expected)
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ["linear", "conv_strided", "conv_one_pixel", "conv_pointwise"])
def test_gradcheck_float64(name, order):
    make, shape, conv = LAYERS[name]
    layer = randomise_(make().double(), dtype=torch.float64)
    # Strictly positive inputs keep the divisor away from zero, where the function is smooth.
    x = (torch.rand(shape, dtype=torch.float64) + 0.1).requires_grad_()
    params = tuple(p.detach().clone().requires_grad_() for p in
                   (layer.weight_ee, layer.weight_ie, layer.weight_ei, layer.gain_i, layer.gain_e, layer.bias))

    def apply(x, *params):
        return EICircuitFunction.apply(x, *params, conv, order, None)[0]

    assert torch.autograd.gradcheck(apply, (x, *params))


def test_without_bias_matches_reference():
    layer = randomise_(EIConv2d(3, 8, 3, padding=1, bias=False, fused=False))
    x = spikes((4, 3, 6, 6))
    fused = EIConv2d(3, 8, 3, padding=1, bias=False)
    fused.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fused(x), layer(x), rtol=1e-5, atol=1e-5)


def test_layers_take_fused_path_by_default():
    x = spikes((4, 3, 6, 6))
    assert type(EIConv2d(3, 8, 3)(x).grad_fn).__name__ == "EICircuitFunctionBackward"
    assert type(EILinear(6, 8)(x[:, 0, 0]).grad_fn).__name__ == "EICircuitFunctionBackward"


@pytest.mark.parametrize(
    "kwargs", [{"fused": False}, {"stabilise": False}, {"straight_through": False}, {"subtractive": False},
               {"divisive": False}, {"readout": True}]
)
def test_other_configurations_take_reference_path(kwargs):
    out = EILinear(6, 8, **kwargs)(spikes((4, 6)))
    assert type(out.grad_fn).__name__ != "EICircuitFunctionBackward"


def test_conv_output_channels_last():
    layer = randomise_(EIConv2d(3, 8, 3, padding=1))
    x = spikes((4, 3, 6, 6))
    out_nchw = layer(x)
    out_nhwc = layer(x.contiguous(memory_format=torch.channels_last))
    assert out_nchw.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out_nchw, out_nhwc)


@pytest.mark.parametrize("order", ORDERS)
def test_autocast_bfloat16_close_to_reference(order):
    make, shape, conv = LAYERS["conv"]
    reference = randomise_(make(fused=False, scale_ei_grad=False))
    params = [p.detach().clone().requires_grad_() for p in
              (reference.weight_ee, reference.weight_ie, reference.weight_ei, reference.gain_i,
               reference.gain_e, reference.bias)]
    x = spikes(shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_ref = reference(x)
        out_fused = ei_circuit(x, *params, conv=conv, order=order)
    assert out_fused.dtype == torch.float32
    # Both run the convolution in bfloat16 (about 3 significant digits).
    torch.testing.assert_close(out_fused, out_ref, rtol=0.05, atol=0.05 * out_ref.abs().max().item())
    out_fused.sum().backward()
    for p in params:
        assert p.grad.dtype == torch.float32
        assert torch.isfinite(p.grad).all()


def test_order_costs_count_multiply_adds():
    # First MNIST convolution at B = 32, T = 4: 128 * 28 * 28 = 100352 rows, d = 9, no
    # input gradient, so the drive runs twice (forward, weight gradient).
    # mixed:   2*100352*80*9 + 6*100352*64*16      = 144506880 + 616562688
    # partial: 2*100352*80*9 + 3*100352*64*16 + 3*9*64*16 = 144506880 + 308281344 + 27648
    # folded:  2*100352*128*9 + 6*9*64*16          = 231211008 + 55296
    costs = order_costs(64, 16, 9, 100352, input_grad=False)
    assert costs == {"mixed": 761069568, "partial": 452815872, "folded": 231266304}
    assert choose_order(64, 16, 9, 100352, input_grad=False) == "folded"


def test_choose_order_per_layer_size():
    # Second VGG convolution at B = 32, T = 4: 25088 rows, d = 64 * 9 = 576, n_E n_I = 4096.
    # mixed 3*25088*160*576 + 6*25088*4096 = 7552892928 exceeds
    # partial 3*25088*160*576 + 3*25088*4096 + 3*576*4096 = 7251689472.
    assert order_costs(128, 32, 576, 25088)["partial"] == 7251689472
    assert choose_order(128, 32, 576, 25088) == "partial"
    # Fourth VGG convolution: 1152 rows < d = 2304, so the mixes stay on the rows.
    assert choose_order(512, 128, 2304, 1152) == "mixed"
    # Inference on one sample: no backward pass, one row.
    assert choose_order(500, 125, 784, 1, input_grad=False, backward=False) == "mixed"


@pytest.mark.parametrize(
    "layer, shape, expected",
    [(EIConv2d(1, 64, 3, padding=1, ei_ratio=4), (4, 1, 8, 8), "folded"),
     (EIConv2d(6, 8, 3, padding=1, ei_ratio=4), (16, 6, 12, 12), "partial"),
     (EILinear(200, 8, ei_ratio=4), (4, 200), "mixed")],
)
def test_layer_uses_cheapest_order(layer, shape, expected):
    x = spikes(shape).requires_grad_(expected != "folded")
    rows = shape[0] * shape[2] * shape[3] if len(shape) == 4 else shape[0]
    assert choose_order(layer.n_e, layer.n_i, layer.fan_in, rows, x.requires_grad) == expected
    out = layer(x)
    assert out.grad_fn.order == expected


def test_unknown_order_is_rejected():
    make, shape, conv = LAYERS["linear"]
    layer = make()
    with pytest.raises(ValueError, match="order must be None or one of"):
        ei_circuit(spikes(shape), layer.weight_ee, layer.weight_ie, layer.weight_ei, layer.gain_i,
                   layer.gain_e, layer.bias, order="folding")


def test_conv_kernels_share_one_storage():
    layer = EIConv2d(3, 8, 3)
    stacked = stacked_view(layer.weight_ee, layer.weight_ie)
    assert stacked is not None
    assert torch.equal(stacked, torch.cat([layer.weight_ee, layer.weight_ie]))
    assert stacked_view(layer.weight_ie, layer.weight_ee) is None


@pytest.mark.parametrize("convert", [lambda m: m.double(), lambda m: m.to(memory_format=torch.contiguous_format)],
                         ids=["double", "contiguous_format"])
def test_conversion_keeps_shared_kernels(convert):
    layer = randomise_(EIConv2d(3, 8, 3))
    before = torch.cat([layer.weight_ee, layer.weight_ie]).double()
    layer = convert(layer)
    assert stacked_view(layer.weight_ee, layer.weight_ie) is not None
    assert torch.equal(torch.cat([layer.weight_ee, layer.weight_ie]).double(), before)


def test_shared_and_copied_kernels_agree():
    layer = randomise_(EIConv2d(3, 8, 3, padding=1))
    x = spikes((4, 3, 6, 6))
    args = (layer.weight_ei, layer.gain_i, layer.gain_e, layer.bias, ((1, 1), (1, 1)), "mixed")
    shared = EICircuitFunction.apply(x, layer.weight_ee, layer.weight_ie, *args,
                                     stacked_view(layer.weight_ee, layer.weight_ie))[0]
    copied = EICircuitFunction.apply(x, layer.weight_ee, layer.weight_ie, *args, None)[0]
    assert torch.equal(shared, copied)
