"""Tests for EILinear and EIConv2d against the circuit equations computed independently."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ei_tutorial import EIConv2d, EILinear


def randomise_(layer, seed=0):
    """Give every parameter distinct positive values (bias of either sign)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.1)
            if name == "bias":
                p.sub_(0.6)
    return layer


def params_np(layer):
    return {n: p.detach().double().numpy() for n, p in layer.named_parameters()}


def linear_reference(x, p, readout=False, subtractive=True, divisive=True, scale=1.0):
    """The E-I equations with explicit matrices, in float64 numpy."""
    i_ee = x @ p["weight_ee"].T
    r_i = x @ p["weight_ie"].T
    w_ei = scale * p["weight_ei"]
    i_sub = r_i @ w_ei.T if subtractive else 0.0
    if readout:
        return i_ee - i_sub + p["bias"]
    if not divisive:
        return p["gain_e"] * (i_ee - i_sub) + p["bias"]
    i_div = (r_i * p["gain_i"]) @ w_ei.T
    return p["gain_e"] * (i_ee - i_sub) / i_div + p["bias"]


def conv_np(x, w, stride, padding):
    """Direct 2-D cross-correlation with explicit loops (independent of F.conv2d)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return out


def conv_reference(x, p, stride, padding):
    i_ee = conv_np(x, p["weight_ee"], stride, padding)
    r_i = conv_np(x, p["weight_ie"], stride, padding)
    mix = lambda r: np.einsum("ek,nkhw->nehw", p["weight_ei"], r)
    i_sub = mix(r_i)
    i_div = mix(r_i * p["gain_i"][None, :, None, None])
    col = lambda v: v[None, :, None, None]
    return col(p["gain_e"]) * (i_ee - i_sub) / i_div + col(p["bias"])


@pytest.mark.parametrize("fused", [True, False])
def test_linear_matches_equations(fused):
    layer = randomise_(EILinear(7, 8, ei_ratio=4, fused=fused))
    x = torch.rand(3, 5, 7)
    expected = linear_reference(x.double().numpy(), params_np(layer))
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{"readout": True}, {"subtractive": False}, {"divisive": False}, {"inhibition_scale": 0.3}]
)
def test_linear_switches_match_equations(kwargs):
    layer = randomise_(EILinear(6, 4, ei_ratio=2, **kwargs))
    x = torch.rand(10, 6)
    ref_kwargs = {"scale": kwargs.pop("inhibition_scale", 1.0), **kwargs}
    expected = linear_reference(x.double().numpy(), params_np(layer), **ref_kwargs)
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), (1, 2)])
def test_conv_matches_equations(stride, padding):
    layer = randomise_(EIConv2d(3, 8, 3, stride=stride, padding=padding, ei_ratio=4))
    x = torch.rand(2, 3, 7, 6)
    expected = conv_reference(x.double().numpy(), params_np(layer), stride, padding)
    out = layer(x).detach().numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_conv_time_first_equals_folded():
    layer = randomise_(EIConv2d(2, 4, 3, padding=1, ei_ratio=2))
    x = torch.rand(3, 4, 2, 5, 5)
    out = layer(x)
    assert out.shape == (3, 4, 4, 5, 5)
    torch.testing.assert_close(out.flatten(0, 1), layer(x.flatten(0, 1)))


def test_linear_parameter_shapes_and_names():
    layer = EILinear(10, 12, ei_ratio=3)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {
        "weight_ei": (12, 4), "gain_e": (12,), "gain_i": (4,), "bias": (12,),
        "weight_ee": (12, 10), "weight_ie": (4, 10),
    }
    assert (layer.n_e, layer.n_i, layer.fan_in) == (12, 4, 10)


def test_conv_parameter_shapes_and_fan_in():
    layer = EIConv2d(3, 16, (3, 5), ei_ratio=4)
    assert tuple(layer.weight_ee.shape) == (16, 3, 3, 5)
    assert tuple(layer.weight_ie.shape) == (4, 3, 3, 5)
    assert tuple(layer.weight_ei.shape) == (16, 4)
    assert layer.fan_in == 45


def test_default_parameters_obey_dale():
    layer = EIConv2d(3, 8, 3)
    for name, p in layer.constrained_parameters():
        assert bool((p >= 0).all()), name


def test_no_bias_option():
    layer = EILinear(5, 4, bias=False)
    assert layer.bias is None
    assert layer(torch.rand(2, 5)).shape == (2, 4)


def test_extra_repr_lists_arguments():
    text = repr(EILinear(5, 8, ei_ratio=2, readout=True, inhibition_scale=0.5))
    assert "in_features=5" in text
    assert "readout=True" in text
    assert "inhibition_scale=0.5" in text


@pytest.mark.parametrize("n_e,ratio", [(10, 4), (6, 4)])
def test_ratio_must_divide_e_count(n_e, ratio):
    with pytest.raises(ValueError, match=f"ei_ratio={ratio} does not divide.*{n_e}"):
        EILinear(3, n_e, ei_ratio=ratio)


def test_linear_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\[\.\.\., 5\].*\(2, 6\)"):
        EILinear(5, 4)(torch.rand(2, 6))


def test_conv_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"got shape \(3, 8, 8\)"):
        EIConv2d(3, 4, 3)(torch.rand(3, 8, 8))


def test_conv_rejects_wrong_channels():
    with pytest.raises(ValueError, match="2, H, W"):
        EIConv2d(2, 4, 3)(torch.rand(1, 3, 8, 8))


def test_rejects_negative_input():
    with pytest.raises(ValueError, match="negative input value.*normalise"):
        EILinear(3, 4)(torch.tensor([[0.1, -0.5, 0.2]]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_rejects_non_finite_input(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        EILinear(3, 4)(torch.tensor([[0.1, bad, 0.2]]))


def test_rejects_integer_input():
    with pytest.raises(TypeError, match="float"):
        EILinear(3, 4)(torch.ones(2, 3, dtype=torch.long))


def test_autocast_bfloat16_on_cpu_is_finite():
    layer = EIConv2d(3, 8, 3, padding=1)
    x = (torch.rand(4, 3, 8, 8) > 0.7).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert torch.isfinite(layer.weight_ee.grad).all()


# E-I Prop rescales the gradient of W_EI on purpose, so gradcheck runs without it.
def test_gradcheck_linear_float64():
    layer = randomise_(EILinear(4, 4, ei_ratio=2, scale_ei_grad=False).double())
    x = (torch.rand(3, 4, dtype=torch.float64) + 0.1).requires_grad_()
    params = tuple(layer.parameters())
    assert torch.autograd.gradcheck(lambda x, *ps: layer(x), (x, *params))


def test_gradcheck_conv_float64():
    layer = randomise_(EIConv2d(2, 4, 2, ei_ratio=2, padding=1, scale_ei_grad=False).double())
    x = (torch.rand(1, 2, 3, 3, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, *ps: layer(x), (x, *tuple(layer.parameters())))



# --- EILayer.currents: intermediate currents against plain torch operations -------------


def assert_currents_equal(currents, i_ee, r_i, i_sub, i_div, current):
    torch.testing.assert_close(currents.i_ee, i_ee)
    torch.testing.assert_close(currents.r_i, r_i)
    torch.testing.assert_close(currents.i_sub, i_sub)
    torch.testing.assert_close(currents.i_div, i_div)
    torch.testing.assert_close(currents.current, current)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("scale", [1.0, 0.4])
def test_linear_currents_match_torch_ops(fused, scale):
    layer = randomise_(EILinear(7, 8, ei_ratio=4, inhibition_scale=scale, fused=fused))
    x = torch.rand(3, 5, 7)
    currents = layer.currents(x)

    p = {name: param.detach() for name, param in layer.named_parameters()}
    i_ee = x @ p["weight_ee"].T
    r_i = x @ p["weight_ie"].T
    w_ei = scale * p["weight_ei"]
    i_sub = r_i @ w_ei.T
    i_div = (r_i * p["gain_i"]) @ w_ei.T
    assert (i_div > 0).all()  # no zero divisor, so the formula needs no stabilisation
    current = p["gain_e"] * (i_ee - i_sub) / i_div + p["bias"]

    assert currents.r_i.shape == (3, 5, 2)
    assert_currents_equal(currents, i_ee, r_i, i_sub, i_div, current)
    torch.testing.assert_close(currents.current, layer(x))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("time_first", [False, True])
def test_conv_currents_match_torch_ops(fused, time_first):
    scale = 0.6
    layer = randomise_(EIConv2d(3, 8, 3, stride=2, padding=1, ei_ratio=4, inhibition_scale=scale, fused=fused))
    x = torch.rand(2, 4, 3, 7, 6) if time_first else torch.rand(4, 3, 7, 6)
    currents = layer.currents(x)

    p = {name: param.detach() for name, param in layer.named_parameters()}
    folded = x.flatten(0, 1) if time_first else x
    i_ee = F.conv2d(folded, p["weight_ee"], stride=2, padding=1)
    r_i = F.conv2d(folded, p["weight_ie"], stride=2, padding=1)
    w_ei = scale * p["weight_ei"]
    i_sub = torch.einsum("ek,nkhw->nehw", w_ei, r_i)
    i_div = torch.einsum("ek,nkhw->nehw", w_ei, r_i * p["gain_i"][:, None, None])
    assert (i_div > 0).all()  # no zero divisor, so the formula needs no stabilisation
    per_channel = lambda v: v[:, None, None]
    current = per_channel(p["gain_e"]) * (i_ee - i_sub) / i_div + per_channel(p["bias"])
    if time_first:
        i_ee, r_i, i_sub, i_div, current = (t.unflatten(0, (2, 4)) for t in (i_ee, r_i, i_sub, i_div, current))

    leading = (2, 4) if time_first else (4,)
    assert currents.i_ee.shape == (*leading, 8, 4, 3)
    assert currents.r_i.shape == (*leading, 2, 4, 3)
    assert_currents_equal(currents, i_ee, r_i, i_sub, i_div, current)
    torch.testing.assert_close(currents.current, layer(x))


def test_currents_keep_ei_gradient_scaling():
    # currents() mixes with the weight that forward() uses, s * W_EI with its gradient
    # divided by the fan-in.
    layer = randomise_(EILinear(6, 4, ei_ratio=2, inhibition_scale=0.5))
    x = torch.rand(10, 6)
    layer.currents(x).i_sub.sum().backward()
    r_i = x @ layer.weight_ie.detach().T
    expected = (0.5 / 6) * r_i.sum(dim=0).expand(4, 2)
    torch.testing.assert_close(layer.weight_ei.grad, expected)


@pytest.mark.parametrize(
    "layer,x",
    [
        (EILinear(5, 4), torch.rand(2, 6)),
        (EIConv2d(3, 4, 3), torch.rand(3, 8, 8)),
        (EIConv2d(2, 4, 3), torch.rand(1, 3, 8, 8)),
        (EIConv2d(2, 4, 3), torch.rand(2, 1, 3, 8, 8)),
    ],
    ids=["linear-width", "conv-rank", "conv-channels", "conv-time-first-channels"],
)
def test_currents_reject_wrong_shape_like_forward(layer, x):
    with pytest.raises(ValueError) as from_forward:
        layer(x)
    with pytest.raises(ValueError) as from_currents:
        layer.currents(x)
    assert str(from_currents.value) == str(from_forward.value)
    assert f"got shape {tuple(x.shape)}" in str(from_currents.value)


def test_currents_reject_negative_input():
    with pytest.raises(ValueError, match="negative input value"):
        EILinear(3, 4).currents(torch.tensor([[0.1, -0.5, 0.2]]))
