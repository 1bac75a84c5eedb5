"""Tests for keeping Dale's law with an optimizer step hook."""

import pytest
import torch
from torch import nn

from ei_tutorial import EIConv2d, EILinear, attach_dale_projection, clamp_nonnegative_, dale_violations


def make_model():
    return nn.Sequential(EIConv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), EILinear(8 * 4 * 4, 4, readout=True))


def push_negative(model, optimizer, steps):
    torch.manual_seed(0)
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(torch.rand(8, 1, 6, 6))
        # Pulling every output towards -5 drives excitatory weights and biases below zero.
        (out + 5.0).pow(2).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.Adam])
def test_projection_keeps_parameters_nonnegative(opt_cls):
    model = make_model()
    optimizer = opt_cls(model.parameters(), lr=0.5)
    attach_dale_projection(optimizer, model)
    push_negative(model, optimizer, steps=20)
    assert dale_violations(model) == {}
    for name, p in model.named_parameters():
        if not name.endswith("bias"):
            assert float(p.detach().min()) >= 0.0, name


def test_violations_reported_by_name_without_projection():
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    push_negative(model, optimizer, steps=3)
    report = dale_violations(model)
    assert report, "the loss should have pushed some weights below zero"
    for name, (count, minimum) in report.items():
        assert name.split(".")[-1] in {"weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i"}
        assert count > 0
        assert minimum < 0


def test_bias_is_left_unconstrained():
    model = make_model()
    with torch.no_grad():
        model[3].bias.fill_(-1.0)
        model[0].weight_ee.fill_(-1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    attach_dale_projection(optimizer, model)
    optimizer.step()
    assert model[3].bias.detach().tolist() == [-1.0] * 4
    assert float(model[0].weight_ee.detach().min()) == 0.0


def test_handle_remove_detaches_projection():
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    attach_dale_projection(optimizer, model).remove()
    push_negative(model, optimizer, steps=3)
    assert dale_violations(model)


def test_clamp_counts_parameters():
    model = make_model()
    with torch.no_grad():
        model[0].weight_ee.fill_(-1.0)
    assert clamp_nonnegative_(model) == 10
    assert float(model[0].weight_ee.detach().min()) == 0.0


def test_attach_rejects_model_without_ei_layers():
    model = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="no sign-constrained parameters"):
        attach_dale_projection(torch.optim.SGD(model.parameters(), lr=0.1), model)


def test_nan_entries_count_as_violations():
    model = make_model()
    with torch.no_grad():
        model[0].gain_i[0] = float("nan")
    report = dale_violations(model)
    assert list(report) == ["0.gain_i"]
    assert report["0.gain_i"][0] == 1
