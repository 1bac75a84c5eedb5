"""Batch-norm spiking networks written the way snnTorch users write them, for the benchmark.

Each layer is called once per time step on ``[B, ...]``. A layer is a bias-free
``nn.Conv2d`` or ``nn.Linear``, then its own ``nn.BatchNorm2d`` or ``nn.BatchNorm1d``
(statistics over the B samples of that step), then an ``snntorch.Leaky`` neuron whose
membrane potential is carried from step to step. Average pooling follows where the
architecture has it. The readout is an ``nn.Linear`` whose output is averaged over
time, as in :func:`ei_tutorial.models.build_model`. The layer sizes are those of
``build_model(arch, "bn")``; the neuron matches :class:`ei_tutorial.LIF` with its
defaults (leak 0.5, threshold 1, sigmoid surrogate with slope 4, reset by subtraction).
"""

from __future__ import annotations

from typing import Sequence

import snntorch as snn
import torch
from snntorch import surrogate
from torch import Tensor, nn

from ei_tutorial.models.builder import DEFAULT_MLP_WIDTHS
from ei_tutorial.models.vgg import POOL, VGG_LAYERS


def _leaky() -> snn.Leaky:
    return snn.Leaky(beta=0.5, threshold=1.0, spike_grad=surrogate.sigmoid(slope=4.0))


class SnnTorchVGG(nn.Module):
    """VGG of convolution, batch norm and ``snntorch.Leaky`` blocks, stepped over time.

    Pooling layers that would shrink the map below 1x1 are left out, as in
    :class:`ei_tutorial.models.SpikingVGG`.

    Shape:
        - Input: ``[T, B, C, H, W]``.
        - Output: logits ``[B, num_classes]``.
    """

    def __init__(self, arch: str, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        size, previous = image_size, in_channels
        for entry in VGG_LAYERS[arch]:
            if entry == POOL:
                if size // 2 >= 1:
                    self.blocks.append(nn.AvgPool2d(2, 2))
                    size //= 2
                continue
            conv = nn.Conv2d(previous, entry, 3, 1, 1, bias=False)
            self.blocks.append(nn.ModuleDict({"conv": conv, "bn": nn.BatchNorm2d(entry), "lif": _leaky()}))
            previous = entry
        self.readout = nn.Linear(previous * size * size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # init_leaky() zeroes each neuron's stored potential, as the snnTorch tutorials do at
        # the start of every forward pass.
        potentials = {index: block["lif"].init_leaky() for index, block in enumerate(self.blocks)
                      if isinstance(block, nn.ModuleDict)}
        logits = []
        for t in range(x.shape[0]):
            h = x[t]
            for index, block in enumerate(self.blocks):
                if isinstance(block, nn.AvgPool2d):
                    h = block(h)
                    continue
                current = block["bn"](block["conv"](h))
                h, potentials[index] = block["lif"](current, potentials[index])
            logits.append(self.readout(h.flatten(1)))
        return torch.stack(logits).mean(0)


class SnnTorchMLP(nn.Module):
    """MLP of linear, batch norm and ``snntorch.Leaky`` blocks, stepped over time.

    Shape:
        - Input: ``[T, B, C, H, W]`` or ``[T, B, F]``.
        - Output: logits ``[B, num_classes]``.
    """

    def __init__(self, in_features: int, widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        previous = in_features
        for width in widths:
            linear = nn.Linear(previous, width, bias=False)
            self.blocks.append(nn.ModuleDict({"linear": linear, "bn": nn.BatchNorm1d(width), "lif": _leaky()}))
            previous = width
        self.readout = nn.Linear(previous, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2)
        potentials = {index: block["lif"].init_leaky() for index, block in enumerate(self.blocks)}
        logits = []
        for t in range(x.shape[0]):
            h = x[t]
            for index, block in enumerate(self.blocks):
                current = block["bn"](block["linear"](h))
                h, potentials[index] = block["lif"](current, potentials[index])
            logits.append(self.readout(h))
        return torch.stack(logits).mean(0)


def build_snntorch_model(arch: str, in_channels: int, image_size: int, num_classes: int = 10) -> nn.Module:
    """Build the snnTorch-style batch-norm network for ``"mlp"`` or a VGG name.

    Raises:
        ValueError: For an architecture without an snnTorch-style counterpart.
    """
    if arch == "mlp":
        return SnnTorchMLP(in_channels * image_size * image_size, DEFAULT_MLP_WIDTHS, num_classes)
    if arch in VGG_LAYERS:
        return SnnTorchVGG(arch, in_channels, image_size, num_classes)
    raise ValueError(f"no snnTorch-style baseline for architecture {arch!r}; use 'mlp' or one of {list(VGG_LAYERS)}")
