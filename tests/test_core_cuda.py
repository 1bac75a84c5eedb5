"""The core checks repeated on a CUDA device; skipped where none exists."""

import pytest
import torch

from ei_tutorial import LIF, EIConv2d, EILinear, attach_dale_projection, dale_violations, ei_init_

pytestmark = pytest.mark.cuda


def make_pair(make):
    torch.manual_seed(0)
    cpu = make()
    gpu = make().cuda()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


@pytest.mark.parametrize("make", [lambda: EILinear(64, 32), lambda: EIConv2d(3, 16, 3, padding=1)])
def test_cuda_forward_backward_match_cpu(make):
    cpu, gpu = make_pair(make)
    x = torch.rand(2, 8, 64) if isinstance(cpu, EILinear) else torch.rand(2, 4, 3, 8, 8)
    x = (x > 0.6).float()
    out_cpu, out_gpu = cpu(x), gpu(x.cuda())
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-4)
    out_cpu.pow(2).sum().backward()
    out_gpu.pow(2).sum().backward()
    for (name, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_cuda_forward_has_no_host_sync():
    layer = EIConv2d(3, 16, 3, padding=1).cuda()
    lif = LIF()
    x = (torch.rand(4, 8, 3, 16, 16, device="cuda") > 0.5).float()
    layer(x)  # warm-up outside the check
    torch.cuda.set_sync_debug_mode("error")
    try:
        lif(layer(x))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_autocast_bfloat16_is_finite():
    layer = EIConv2d(3, 16, 3, padding=1).cuda()
    x = (torch.rand(16, 3, 16, 16, device="cuda") > 0.8).float()
    x[0] = 0.0
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name


def test_cuda_ei_init_and_dale():
    layer = EILinear(100, 64).cuda()
    x = (torch.rand(256, 100, device="cuda") < 0.2).float()
    ei_init_(layer, x, seed=0)
    current = layer(x)
    assert abs(current.mean().item()) < 0.15
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    attach_dale_projection(optimizer, layer)
    for _ in range(20):
        optimizer.zero_grad()
        (layer(x) + 5).pow(2).mean().backward()
        optimizer.step()
    assert dale_violations(layer) == {}
