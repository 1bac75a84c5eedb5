"""Tests for the LIF neuron against hand-computed traces and the surrogate formula."""

import math

import pytest
import torch

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
