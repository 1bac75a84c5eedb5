"""Spike-element-wise (SEW) ResNet-18.

SEW ResNet (Fang et al., "Deep Residual Learning in Spiking Neural Networks", NeurIPS
2021) adds the shortcut to the block's output *spikes*, after the last spiking
nonlinearity, with the ADD connect function:

.. math::

    z_{out} = \\mathrm{SN}(\\mathrm{layer}_2(\\mathrm{SN}(\\mathrm{layer}_1(z_{in})))) + s(z_{in})

where :math:`\\mathrm{SN}` is a population of spiking neurons and :math:`s` is the
identity, or, when the block changes resolution or width, a 1x1 convolution with stride
followed by its own neurons (a conv block of the same variant). The sum of two spike
maps takes values in {0, 1, 2}; it stays non-negative, as E-I layers require.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ei_tutorial.models.layers import Flatten, LayerFactory, TimeDistributed, check_image_input, check_time_first

RESNET18_WIDTHS = (64, 128, 256, 512)
RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET18_STRIDES = (1, 2, 2, 2)


class SEWBasicBlock(nn.Module):
    """Two 3x3 spiking convolutions whose output spikes are added to the shortcut (ADD).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution and of the shortcut.
        factory: Builds the layers.

    Shape:
        - Input: spikes ``[T, B, in_channels, H, W]``.
        - Output: ``[T, B, out_channels, H', W']`` with ``H' = ceil(H / stride)``,
          values in {0, 1, 2}.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, factory: LayerFactory) -> None:
        super().__init__()
        self.conv1 = factory.conv(in_channels, out_channels, 3, stride, 1)
        self.conv2 = factory.conv(out_channels, out_channels, 3, 1, 1)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = factory.conv(in_channels, out_channels, 1, stride, 0)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class SEWResNet18(nn.Module):
    """SEW ResNet-18 for small images: 3x3 stem without max-pooling, four stages, one readout.

    Args:
        in_channels: Input channels ``C``.
        num_classes: Readout units.
        factory: Builds the layers (variant and neuron model).
        widths: Channels of the four stages (the stem uses the first). Default
            ``(64, 128, 256, 512)``.

    Shape:
        - Input: ``[T, B, C, H, W]``.
        - Output: logits ``[B, num_classes]``, the readout's output averaged over ``T``.

    Raises:
        ValueError: If ``widths`` does not have four entries.
    """

    def __init__(
        self, in_channels: int, num_classes: int, factory: LayerFactory, widths: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        widths = tuple(RESNET18_WIDTHS if widths is None else widths)
        if len(widths) != len(RESNET18_WIDTHS):
            raise ValueError(
                f"resnet18 has {len(RESNET18_WIDTHS)} stages, but widths has {len(widths)} "
                f"entries ({list(widths)}); give one width per stage"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.widths = widths
        self.stem = factory.conv(in_channels, widths[0], 3, 1, 1)
        stages = []
        previous = widths[0]
        for width, blocks, stride in zip(widths, RESNET18_BLOCKS, RESNET18_STRIDES):
            stage = [SEWBasicBlock(previous, width, stride, factory)]
            stage += [SEWBasicBlock(width, width, 1, factory) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.pool = TimeDistributed(nn.AdaptiveAvgPool2d(1))
        self.flatten = Flatten()
        self.readout = factory.readout(previous, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_time_first(x, 5, "SEWResNet18")
        check_image_input(x, self.in_channels, None, "SEWResNet18")
        features = self.pool(self.stages(self.stem(x)))
        return self.readout(self.flatten(features)).mean(0)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, widths={list(self.widths)}"
