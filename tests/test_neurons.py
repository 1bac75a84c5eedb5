"""Tests for the LIF neuron against hand-computed traces and the surrogate formula."""

import math

import pytest
import torch
from snntorch import surrogate

from ei_tutorial import LIF, lif_multistep, lif_step, make_spike_fn


def sigmoid_surrogate_derivative(x: float, slope: float) -> float:
    s = 1.0 / (1.0 + math.exp(-slope * x))
    return slope * s * (1.0 - s)


def test_lif_trace_matches_hand_computation():
    # tau_mem = 2 gives a leak factor of 0.5:
    # h0 = 1.5 -> spike, v0 = 0.5;  h1 = 0.25 + 0.4 = 0.65 -> no spike, v1 = 0.65;
    # h2 = 0.325 + 0.8 = 1.125 -> spike, v2 = 0.125;  h3 = 0.0625 -> no spike.
    current = torch.tensor([1.5, 0.4, 0.8, 0.0]).view(4, 1, 1)
    spikes, v = LIF(tau_mem=2.0, v_th=1.0).trace(current)
    assert spikes.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(v.flatten(), torch.tensor([0.5, 0.65, 0.125, 0.0625]))


def test_lif_trace_other_constants():
    # tau_mem = 4 (leak 0.75), v_th = 0.5: h0 = 0.3, h1 = 0.225 + 0.3 = 0.525 -> spike,
    # v1 = 0.025, h2 = 0.01875 + 0.3 = 0.31875.
    current = torch.full((3, 1), 0.3)
    spikes, v = LIF(tau_mem=4.0, v_th=0.5).trace(current)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(v.flatten(), torch.tensor([0.3, 0.025, 0.31875]))


def test_lif_spike_at_exact_threshold_is_zero():
    spikes = LIF(v_th=1.0)(torch.ones(1, 1))
    assert spikes.item() == 0.0


def test_lif_initial_state_is_used():
    current = torch.zeros(1, 2)
    v0 = torch.tensor([2.5, 0.5])
    spikes, v = LIF(tau_mem=2.0).trace(current, v0)
    # h = 0.5 * v0 = [1.25, 0.25]: the first neuron spikes and resets to 0.25.
    assert spikes[0].tolist() == [1.0, 0.0]
    torch.testing.assert_close(v[0], torch.tensor([0.25, 0.25]))


def test_lif_keeps_no_state_between_calls():
    lif = LIF()
    current = torch.rand(5, 3, 4) * 2
    first = lif(current)
    second = lif(current)
    assert torch.equal(first, second)


def test_lif_step_matches_multistep():
    current = torch.rand(6, 2, 3) * 2
    v = torch.zeros(2, 3)
    steps = []
    for t in range(6):
        z, v = lif_step(current[t], v, tau_mem=3.0, v_th=0.8)
        steps.append(z)
    spikes, _, v_last = lif_multistep(current, tau_mem=3.0, v_th=0.8)
    assert torch.equal(torch.stack(steps), spikes)
    torch.testing.assert_close(v_last, v)


def test_sigmoid_surrogate_gradient_matches_formula():
    x = torch.tensor([1.3, 0.9, 1.0, 2.0], requires_grad=True)
    z = LIF(tau_mem=2.0, v_th=1.0, slope=4.0)(x.view(1, 4))
    z.sum().backward()
    expected = [sigmoid_surrogate_derivative(v - 1.0, 4.0) for v in x.tolist()]
    torch.testing.assert_close(x.grad, torch.tensor(expected))


def test_reset_detached_by_default():
    # v1 = 0.5 * (i0 - z0) + i1 - z1 with z detached: dv1/di0 = 0.5 exactly.
    current = torch.tensor([[1.3], [0.2]], requires_grad=True)
    _, v = LIF(tau_mem=2.0).trace(current)
    v[1].sum().backward()
    assert current.grad[0].item() == pytest.approx(0.5)


def test_reset_kept_in_graph_on_request():
    # With the reset in the graph, dv1/di0 = 0.5 * (1 - dz0/dh0) - dz1/dh1 * dh1/di0.
    i0, i1 = 1.3, 0.2
    current = torch.tensor([[i0], [i1]], requires_grad=True)
    _, v = LIF(tau_mem=2.0, detach_reset=False).trace(current)
    v[1].sum().backward()
    dz0 = sigmoid_surrogate_derivative(i0 - 1.0, 4.0)
    h1 = 0.5 * (i0 - 1.0) + i1
    dz1 = sigmoid_surrogate_derivative(h1 - 1.0, 4.0)
    dh1 = 0.5 * (1 - dz0)
    assert current.grad[0].item() == pytest.approx(dh1 - dz1 * dh1, rel=1e-5)


@pytest.mark.parametrize("name", ["atan", "fast_sigmoid", "triangular", "straight_through"])
def test_other_surrogates_give_gradients(name):
    x = torch.tensor([[0.9, 1.1]], requires_grad=True)
    LIF(surrogate=name)(x).sum().backward()
    assert torch.all(x.grad != 0)


def test_custom_spike_function_is_used():
    calls = []

    def spike_fn(x):
        calls.append(x.shape)
        return (x > 0).float()

    LIF(surrogate=spike_fn)(torch.rand(3, 2))
    assert len(calls) == 3


def test_lif_preserves_dtype():
    out = LIF()(torch.rand(2, 3, dtype=torch.float64) * 2)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("kwargs", [{"tau_mem": 0.0}, {"tau_mem": -1.0}, {"v_th": 0.0}, {"v_th": float("nan")}])
def test_lif_rejects_bad_constants(kwargs):
    with pytest.raises(ValueError, match="tau_mem|v_th"):
        LIF(**kwargs)


def test_lif_rejects_unknown_surrogate():
    with pytest.raises(ValueError, match="sigmoid"):
        LIF(surrogate="relu")


def test_make_spike_fn_rejects_bad_slope():
    with pytest.raises(ValueError, match="slope"):
        make_spike_fn("sigmoid", 0.0)


def test_lif_rejects_missing_time_dimension():
    with pytest.raises(ValueError, match=r"\[T, B"):
        LIF()(torch.rand(5))


def test_lif_rejects_zero_time_steps():
    with pytest.raises(ValueError, match="T >= 1"):
        LIF()(torch.rand(0, 2))


def test_lif_rejects_non_tensor():
    with pytest.raises(TypeError, match="list"):
        LIF()([[1.0]])


@pytest.mark.parametrize("name", ["sigmoid", "atan", "fast_sigmoid", "triangular", "straight_through"])
@pytest.mark.parametrize("with_v0", [False, True])
def test_fused_lif_matches_reference(name, with_v0):
    spike_fn = make_spike_fn(name, 4.0)
    current = (torch.rand(5, 3, 4, 6, generator=torch.Generator().manual_seed(0)) * 2).requires_grad_()
    v0 = torch.rand(3, 4, 6).requires_grad_() if with_v0 else None
    outputs, grads = [], []
    for fused in (True, False):
        inputs = [current.detach().clone().requires_grad_()]
        if with_v0:
            inputs.append(v0.detach().clone().requires_grad_())
        spikes, _, v_last = lif_multistep(
            inputs[0], inputs[1] if with_v0 else None, tau_mem=3.0, v_th=0.8, spike_fn=spike_fn, fused=fused
        )
        weights = torch.linspace(-1.0, 1.0, spikes.numel()).view(spikes.shape)
        loss = (spikes * weights).sum() + (v_last * weights[0]).sum()
        outputs.append((spikes, v_last))
        grads.append(torch.autograd.grad(loss, inputs))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert torch.equal(outputs[0][1], outputs[1][1])
    # Same operations in the same order as the per-step reference: equal to the bit.
    for fused_grad, reference_grad in zip(*grads):
        assert torch.equal(fused_grad, reference_grad)


def test_fused_lif_trace_matches_reference():
    current = (torch.rand(4, 2, 5) * 2).requires_grad_()
    twin = current.detach().clone().requires_grad_()
    spikes, v = LIF(tau_mem=2.0).trace(current)
    spikes_ref, v_ref = LIF(tau_mem=2.0, fused=False).trace(twin)
    assert torch.equal(spikes, spikes_ref)
    assert torch.equal(v, v_ref)
    (spikes.sum() + v.pow(2).sum()).backward()
    (spikes_ref.sum() + v_ref.pow(2).sum()).backward()
    torch.testing.assert_close(current.grad, twin.grad)


def test_fused_lif_broadcasts_v0():
    current = torch.rand(3, 2, 4) * 2
    v0 = torch.tensor([0.5, 1.5, 0.0, 2.0], requires_grad=True)
    v0_twin = v0.detach().clone().requires_grad_()
    spikes, _, _ = lif_multistep(current, v0)
    spikes_ref, _, _ = lif_multistep(current, v0_twin, fused=False)
    assert torch.equal(spikes, spikes_ref)
    spikes.sum().backward()
    spikes_ref.sum().backward()
    torch.testing.assert_close(v0.grad, v0_twin.grad)


def test_fused_lif_used_only_where_it_matches():
    current = torch.rand(3, 2, 4, requires_grad=True)
    assert type(LIF()(current).grad_fn).__name__ == "LIFMultistepFunctionBackward"
    assert type(LIF(detach_reset=False)(current).grad_fn).__name__ != "LIFMultistepFunctionBackward"
    # A callable passed by the user may keep state or not act element by element.
    assert type(LIF(surrogate=surrogate.sigmoid(slope=4.0))(current).grad_fn).__name__ != "LIFMultistepFunctionBackward"
    assert type(LIF(fused=False)(current).grad_fn).__name__ != "LIFMultistepFunctionBackward"


def test_fused_lif_float64_gradient_matches_reference():
    current = (torch.rand(6, 3, 2, dtype=torch.float64) * 2).requires_grad_()
    twin = current.detach().clone().requires_grad_()
    LIF(tau_mem=4.0, surrogate="atan", slope=2.0)(current).pow(2).sum().backward()
    LIF(tau_mem=4.0, surrogate="atan", slope=2.0, fused=False)(twin).pow(2).sum().backward()
    assert torch.equal(current.grad, twin.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_gradient_finite_far_below_threshold(dtype):
    # snnTorch's own formula overflows to inf / inf here.
    current = torch.tensor([[-30.0, -1e4, 0.5, 1.5]], dtype=dtype, requires_grad=True)
    LIF()(current).sum().backward()
    assert torch.isfinite(current.grad).all()
    assert current.grad[0, 0].item() == pytest.approx(0.0, abs=1e-30)
    assert current.grad[0, 2].item() == pytest.approx(sigmoid_surrogate_derivative(-0.5, 4.0))
