"""Property-based tests: E-I layers stay finite and Dale's law holds, whatever the input."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ei_tutorial import EIConv2d, EILinear, attach_dale_projection, dale_violations

SETTINGS = settings(max_examples=40, deadline=None)


def sparse_input(shape, density, zero_samples, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) < density).float() * torch.rand(shape, generator=g) * 2
    x[:zero_samples] = 0.0
    return x.requires_grad_()


def assert_finite_forward_backward(layer, x):
    out = layer(x)
    assert torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


@SETTINGS
@given(
    batch=st.integers(1, 6),
    in_features=st.integers(1, 24),
    n_i=st.integers(1, 4),
    ratio=st.sampled_from([1, 2, 4]),
    density=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
    zero_samples=st.integers(0, 6),
    fused=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_finite_for_any_sparsity(batch, in_features, n_i, ratio, density, zero_samples, fused, seed):
    torch.manual_seed(seed)
    layer = EILinear(in_features, n_i * ratio, ei_ratio=ratio, fused=fused)
    x = sparse_input((batch, 3, in_features), density, zero_samples, seed)
    assert_finite_forward_backward(layer, x)


@SETTINGS
@given(
    batch=st.integers(1, 4),
    channels=st.integers(1, 3),
    size=st.integers(3, 7),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    density=st.sampled_from([0.0, 0.02, 0.2, 1.0]),
    zero_samples=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_conv_finite_for_any_sparsity(batch, channels, size, kernel, stride, padding, density, zero_samples, seed):
    torch.manual_seed(seed)
    layer = EIConv2d(channels, 8, kernel, stride=stride, padding=padding)
    x = sparse_input((batch, channels, size, size), density, zero_samples, seed)
    assert_finite_forward_backward(layer, x)


@settings(max_examples=15, deadline=None)
@given(
    steps=st.integers(1, 30),
    lr=st.sampled_from([0.01, 1.0, 100.0]),
    momentum=st.sampled_from([0.0, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_dale_holds_after_any_number_of_steps(steps, lr, momentum, seed):
    torch.manual_seed(seed)
    layer = EILinear(10, 8)
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr, momentum=momentum)
    attach_dale_projection(optimizer, layer)
    x = (torch.rand(16, 10) < 0.3).float()
    target = torch.randn(16, 8) * 3
    for _ in range(steps):
        optimizer.zero_grad()
        out = layer(x)
        loss = (out - target).pow(2).mean()
        if not torch.isfinite(loss):
            break
        loss.backward()
        optimizer.step()
    assert dale_violations(layer) == {}
