"""Tests for E-I Prop: stabilised division, straight-through gradient, W_EI gradient scaling."""

import pytest
import torch

from ei_tutorial import EIConv2d, EILinear
from ei_tutorial.ei_prop import ei_combine_reference, ei_divide, scale_grad, smallest_nonzero


def test_smallest_nonzero_per_sample():
    i_div = torch.tensor([[0.0, 3.0, 0.5], [2.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    m = smallest_nonzero(i_div, (1,))
    assert m.flatten().tolist() == [0.5, 2.0, float("inf")]


def test_zero_divisor_replaced_by_sample_minimum():
    num = torch.tensor([[1.0, 2.0, 3.0]])
    i_div = torch.tensor([[0.0, 4.0, 0.5]])
    gain = torch.tensor([2.0, 1.0, 1.0])
    bias = torch.tensor([0.1, 0.2, 0.3])
    out = ei_divide(num, i_div, gain, bias, (1,))
    # The zero is replaced by 0.5: 2 * 1 / 0.5 + 0.1 = 4.1.
    torch.testing.assert_close(out, torch.tensor([[4.1, 0.7, 6.3]]))


def test_all_zero_sample_yields_bias():
    num = torch.tensor([[1.0, -2.0], [1.0, 1.0]])
    i_div = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    bias = torch.tensor([0.3, -0.4])
    out = ei_divide(num, i_div, torch.ones(2), bias, (1,))
    torch.testing.assert_close(out[0], bias)
    torch.testing.assert_close(out[1], torch.tensor([1.3, 0.1]))


def test_straight_through_gradient_formula():
    num = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    i_div = torch.tensor([[0.0, 4.0, 0.5]], requires_grad=True)
    gain = torch.tensor([2.0, 1.0, 1.0], requires_grad=True)
    bias = torch.zeros(3, requires_grad=True)
    ei_divide(num, i_div, gain, bias, (1,)).sum().backward()
    divisor = torch.tensor([0.5, 4.0, 0.5])
    # d/d i_div of g * n / D, taken at the stabilised D, passed through the replacement.
    torch.testing.assert_close(i_div.grad[0], -gain.detach() * num.detach()[0] / divisor**2)
    torch.testing.assert_close(num.grad[0], gain.detach() / divisor)
    torch.testing.assert_close(gain.grad, num.detach()[0] / divisor)
    torch.testing.assert_close(bias.grad, torch.ones(3))


def test_fused_matches_reference_with_zeros():
    torch.manual_seed(0)
    num = torch.randn(4, 3, 5, 5)
    i_div = torch.rand(4, 3, 5, 5) * (torch.rand(4, 3, 5, 5) > 0.5)
    i_div[2] = 0.0
    gain, bias = torch.rand(3, 1, 1) + 0.5, torch.randn(3, 1, 1)
    leaves = [t.clone().requires_grad_() for t in (num, i_div, gain, bias)]
    twins = [t.clone().requires_grad_() for t in (num, i_div, gain, bias)]
    out_fused = ei_divide(*leaves, (1, 2, 3))
    out_ref = ei_combine_reference(*twins, (1, 2, 3))
    torch.testing.assert_close(out_fused, out_ref)
    weight = torch.randn_like(out_ref)
    (out_fused * weight).sum().backward()
    (out_ref * weight).sum().backward()
    for fused, ref in zip(leaves, twins):
        torch.testing.assert_close(fused.grad, ref.grad)


def test_without_straight_through_replaced_entries_get_no_gradient():
    num = torch.tensor([[1.0, 2.0]])
    i_div = torch.tensor([[0.0, 0.5]], requires_grad=True)
    out = ei_combine_reference(num, i_div, torch.ones(2), torch.zeros(2), (1,), straight_through=False)
    out.sum().backward()
    # The replaced entry passes its gradient to the minimum (entry 1) instead.
    assert i_div.grad[0, 0].item() == 0.0
    assert i_div.grad[0, 1].item() == pytest.approx(-(1.0 + 2.0) / 0.25)


def test_epsilon_fallback_without_stabilisation():
    num = torch.tensor([[1.0, 2.0]])
    i_div = torch.tensor([[0.0, 0.5]])
    out = ei_combine_reference(num, i_div, torch.ones(2), torch.zeros(2), (1,), stabilise=False, eps=1e-3)
    torch.testing.assert_close(out, torch.tensor([[1000.0, 2.0 / 0.501]]))


def test_scale_grad_is_identity_forward_and_scales_backward():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_grad(x, 0.25)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([4.0, 8.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("make", [lambda **k: EILinear(12, 8, **k), lambda **k: EIConv2d(3, 8, 3, **k)])
def test_weight_ei_gradient_divided_by_fan_in(make):
    torch.manual_seed(1)
    scaled = make()
    plain = make(scale_ei_grad=False)
    plain.load_state_dict(scaled.state_dict())
    x = torch.rand(4, 12) if isinstance(scaled, EILinear) else torch.rand(4, 3, 6, 6)
    for layer in (scaled, plain):
        layer(x).pow(2).sum().backward()
    torch.testing.assert_close(scaled.weight_ei.grad, plain.weight_ei.grad / scaled.fan_in)
    torch.testing.assert_close(scaled.weight_ee.grad, plain.weight_ee.grad)


@pytest.mark.parametrize("fused", [True, False])
def test_all_zero_samples_stay_finite(fused):
    layer = EIConv2d(2, 8, 3, padding=1, fused=fused)
    x = (torch.rand(4, 2, 6, 6) > 0.9).float()
    x[0] = 0.0
    x[1, :, :3] = 0.0
    x.requires_grad_()
    out = layer(x)
    out.pow(2).sum().backward()
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], layer.bias.detach().view(-1, 1, 1).expand(8, 6, 6))
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(x.grad).all()


def test_linear_all_zero_input_gives_bias():
    layer = EILinear(5, 4)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    out = layer(torch.zeros(3, 5))
    torch.testing.assert_close(out, layer.bias.detach().expand(3, 4))
