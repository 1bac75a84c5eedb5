"""Public tests of assignment 1, the adaptive-threshold LIF neuron (a1_adaptive_lif)."""

import math

import pytest
import torch

from ei_tutorial import LIF, ei_init_, lif_step
from ei_tutorial.data import direct_encode
from ei_tutorial.models import build_model, record_activity
from ei_tutorial.training import train


def reference_trace(currents, tau_mem, v_th, tau_adapt, beta):
    """The assignment's equations for one neuron, in plain Python floats."""
    v = a = 0.0
    rows = []
    for i in currents:
        h = (1 - 1 / tau_mem) * v + i
        theta = v_th + beta * a
        z = 1.0 if h > theta else 0.0
        v = h - theta * z
        a = (1 - 1 / tau_adapt) * a + z
        rows.append((z, v, a, theta))
    return rows


# -- part 1: adaptive_lif_step ---------------------------------------------------------


def test_step_matches_hand_computation(adaptive_lif):
    # i = 0.8, tau_mem = 2, v_th = 1, tau_adapt = 4, beta = 0.5:
    # t=0: h = 0.8 < 1, no spike.   t=1: h = 0.4 + 0.8 = 1.2 > 1, spike, v = 0.2, a = 1.
    # t=2: theta = 1.5, h = 0.1 + 0.8 = 0.9, no spike, a = 0.75.
    expected = [(0.0, 0.8, 0.0, 1.0), (1.0, 0.2, 1.0, 1.0), (0.0, 0.9, 0.75, 1.5)]
    v = torch.zeros(1)
    a = torch.zeros(1)
    for z_hand, v_hand, a_hand, theta_hand in expected:
        z, v, a, theta = adaptive_lif.adaptive_lif_step(
            torch.tensor([0.8]), v, a, tau_mem=2.0, v_th=1.0, tau_adapt=4.0, beta=0.5
        )
        assert z.item() == z_hand
        assert v.item() == pytest.approx(v_hand)
        assert a.item() == pytest.approx(a_hand)
        assert theta.item() == pytest.approx(theta_hand)


def test_step_follows_equations_over_many_steps(adaptive_lif):
    torch.manual_seed(0)
    currents = (torch.rand(40) * 1.5).tolist()
    expected = reference_trace(currents, tau_mem=3.0, v_th=0.8, tau_adapt=5.0, beta=0.7)
    v = torch.zeros((), dtype=torch.float64)
    a = torch.zeros((), dtype=torch.float64)
    for t, (i, (z_ref, v_ref, a_ref, theta_ref)) in enumerate(zip(currents, expected)):
        z, v, a, theta = adaptive_lif.adaptive_lif_step(
            torch.tensor(i, dtype=torch.float64), v, a, tau_mem=3.0, v_th=0.8, tau_adapt=5.0, beta=0.7
        )
        assert z.item() == z_ref, f"spike at step {t}"
        assert v.item() == pytest.approx(v_ref, abs=1e-9), f"v at step {t}"
        assert a.item() == pytest.approx(a_ref, abs=1e-9), f"a at step {t}"
        assert theta.item() == pytest.approx(theta_ref, abs=1e-9), f"theta at step {t}"


def test_step_without_adaptation_equals_lif_step(adaptive_lif):
    torch.manual_seed(1)
    i = torch.rand(8, 16) * 2
    v = torch.rand(8, 16)
    a = torch.rand(8, 16)
    z, v_new, _, theta = adaptive_lif.adaptive_lif_step(i, v, a, tau_mem=2.0, v_th=1.0, beta=0.0)
    z_lif, v_lif = lif_step(i, v, tau_mem=2.0, v_th=1.0)
    torch.testing.assert_close(z, z_lif)
    torch.testing.assert_close(v_new, v_lif)
    torch.testing.assert_close(theta, torch.ones_like(i))


# -- part 2: AdaptiveLIF.trace ------------------------------------------------------------


def test_trace_shapes_and_dtypes(adaptive_lif):
    neuron = adaptive_lif.AdaptiveLIF()
    for dtype in (torch.float32, torch.float64):
        current = torch.rand(5, 3, 7, dtype=dtype) * 2
        spikes, v, theta = neuron.trace(current)
        for name, out in (("spikes", spikes), ("v", v), ("theta", theta)):
            assert out.shape == current.shape, name
            assert out.dtype == dtype, name
        assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_trace_matches_reference(adaptive_lif):
    torch.manual_seed(2)
    currents = torch.rand(30, 1, dtype=torch.float64) * 1.2
    neuron = adaptive_lif.AdaptiveLIF(tau_mem=2.0, v_th=1.0, tau_adapt=6.0, beta=0.4)
    spikes, v, theta = neuron.trace(currents)
    expected = reference_trace(currents[:, 0].tolist(), 2.0, 1.0, 6.0, 0.4)
    assert spikes[:, 0].tolist() == [row[0] for row in expected]
    assert v[:, 0].tolist() == pytest.approx([row[1] for row in expected], abs=1e-9)
    assert theta[:, 0].tolist() == pytest.approx([row[3] for row in expected], abs=1e-9)


def test_threshold_decays_back_after_spike(adaptive_lif):
    # One strong pulse at t = 0 makes one spike; afterwards theta relaxes as
    # v_th + beta * (1 - 1/tau_adapt) ** (t - 1).
    current = torch.zeros(8, 1)
    current[0] = 2.0
    neuron = adaptive_lif.AdaptiveLIF(tau_mem=2.0, v_th=1.0, tau_adapt=4.0, beta=0.5)
    spikes, _, theta = neuron.trace(current)
    assert spikes[:, 0].tolist() == [1.0] + [0.0] * 7
    assert theta[0, 0].item() == pytest.approx(1.0)
    for t in range(1, 8):
        assert theta[t, 0].item() == pytest.approx(1.0 + 0.5 * 0.75 ** (t - 1)), f"theta at step {t}"


def test_forward_returns_trace_spikes_without_state(adaptive_lif):
    torch.manual_seed(3)
    neuron = adaptive_lif.AdaptiveLIF(beta=0.5)
    current = torch.rand(6, 4, 10) * 2
    first = neuron(current)
    second = neuron(current)
    spikes, _, _ = neuron.trace(current)
    torch.testing.assert_close(first, spikes)
    torch.testing.assert_close(second, first)


def test_adaptation_lowers_firing_rate(adaptive_lif):
    current = torch.full((60, 1), 0.6)
    without = adaptive_lif.AdaptiveLIF(beta=0.0)(current).mean().item()
    with_adaptation = adaptive_lif.AdaptiveLIF(beta=1.0, tau_adapt=10.0)(current).mean().item()
    assert without == pytest.approx(LIF()(current).mean().item())
    assert with_adaptation < without


def test_surrogate_gradient_reaches_input(adaptive_lif):
    torch.manual_seed(4)
    current = (torch.rand(4, 8, 12) * 2).requires_grad_()
    adaptive_lif.AdaptiveLIF(beta=0.3)(current).sum().backward()
    assert current.grad is not None
    assert torch.isfinite(current.grad).all()
    assert current.grad.abs().sum().item() > 0


def test_trace_rejects_input_without_time_axis(adaptive_lif):
    neuron = adaptive_lif.AdaptiveLIF()
    with pytest.raises(ValueError, match=r"\[T, B"):
        neuron.trace(torch.rand(10))


# -- part 3: register_adaptive_lif -------------------------------------------------------


def test_registered_neuron_builds_ei_model(adaptive_lif):
    name = adaptive_lif.register_adaptive_lif("adaptive_lif_test")
    assert name == "adaptive_lif_test"
    model = build_model("mlp", "ei", neuron=name, widths=[32, 16], neuron_kwargs={"beta": 0.3, "tau_adapt": 3.0})
    neurons = [m for m in model.modules() if isinstance(m, adaptive_lif.AdaptiveLIF)]
    assert len(neurons) == 2
    assert all(n.beta == 0.3 and n.tau_adapt == 3.0 for n in neurons)

    torch.manual_seed(5)
    images = torch.rand(64, 1, 28, 28)
    inputs = direct_encode(images, 4)
    ei_init_(model, inputs, seed=0)
    with torch.no_grad(), record_activity(model) as activity:
        logits = model(inputs)
    assert logits.shape == (64, 10)
    assert torch.isfinite(logits).all()
    for layer, rate in activity.firing_rates().items():
        assert 0.0 < rate < 1.0, f"{layer} firing rate {rate}"


@pytest.mark.data
def test_trainer_trains_with_adaptive_neuron(adaptive_lif, require_mnist, tmp_path):
    name = adaptive_lif.register_adaptive_lif("adaptive_lif_train")
    require_mnist()
    result = train(
        {
            "name": "a1", "out_dir": str(tmp_path), "arch": "mlp", "variant": "ei", "widths": [64],
            "neuron": name, "neuron_kwargs": {"beta": 0.2},
            "epochs": 1, "batch_size": 64, "train_subset": 1024, "max_steps_per_epoch": 16,
            "heldout_subset": 500, "lr": 0.05, "warmup_epochs": 0, "progress": False, "seed": 0,
        }
    )
    assert result.status == "completed"
    assert isinstance(result.model.hidden[0].neuron, adaptive_lif.AdaptiveLIF)
    record = result.history[-1]
    assert math.isfinite(record["train_loss"])
    assert record["heldout_acc"] > 0.2, "16 SGD steps should beat chance (0.1) clearly"
    assert 0.0 < record["firing_rate"]["hidden.0"] < 1.0
