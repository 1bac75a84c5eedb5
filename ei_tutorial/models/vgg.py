"""Spiking VGG networks with average pooling and a single readout layer."""

from __future__ import annotations

import logging
from typing import Sequence, Union

from torch import Tensor, nn

from ei_tutorial.models.layers import Flatten, LayerFactory, TimeDistributed, check_image_input, check_time_first

logger = logging.getLogger(__name__)

POOL = "pool"

#: Layer lists: an int is a 3x3 convolution with that many output channels (padding 1),
#: ``"pool"`` a 2x2 average pooling with stride 2. VGG-11, 16 and 19 follow Simonyan and
#: Zisserman (2015), configurations A, D and E; VGG-8 is the five-convolution network of
#: Liu, Ding and Yu (arXiv:2509.23253). Each is followed by one readout layer.
VGG_LAYERS: dict[str, tuple[Union[int, str], ...]] = {
    "vgg8": (64, POOL, 128, POOL, 256, POOL, 512, POOL, 512, POOL),
    "vgg11": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "vgg16": (
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL,
    ),
    "vgg19": (
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL,
        512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL,
    ),
}


def conv_widths(arch: str) -> tuple[int, ...]:
    """Return the output channels of each convolution of a VGG architecture, input side first."""
    return tuple(entry for entry in VGG_LAYERS[arch] if entry != POOL)


class SpikingVGG(nn.Module):
    """VGG feature extractor of spiking convolutions and average pooling, then one readout.

    A pooling layer that would shrink the feature map below 1x1 is left out (on 28x28
    MNIST, VGG-8's fifth pooling), so every VGG accepts images of 2x2 pixels and up.

    Args:
        arch: A key of :data:`VGG_LAYERS`.
        in_channels: Input channels ``C``.
        image_size: Input height and width ``H = W``.
        num_classes: Readout units.
        factory: Builds the layers (variant and neuron model).
        widths: Output channels of each convolution, replacing the standard ones; must
            have one entry per convolution. None keeps the standard channels.

    Shape:
        - Input: ``[T, B, C, H, W]``.
        - Output: logits ``[B, num_classes]``, the readout's output averaged over ``T``.

    Raises:
        ValueError: If ``arch`` is unknown or ``widths`` has the wrong length.
    """

    def __init__(
        self,
        arch: str,
        in_channels: int,
        image_size: int,
        num_classes: int,
        factory: LayerFactory,
        widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if arch not in VGG_LAYERS:
            raise ValueError(f"unknown VGG {arch!r}; expected one of {', '.join(VGG_LAYERS)}")
        channels = list(conv_widths(arch) if widths is None else widths)
        if len(channels) != len(conv_widths(arch)):
            raise ValueError(
                f"{arch} has {len(conv_widths(arch))} convolutions, but widths has "
                f"{len(channels)} entries ({list(channels)}); give one width per convolution"
            )
        self.arch = arch
        self.in_channels = in_channels
        self.image_size = image_size
        self.num_classes = num_classes
        self.widths = tuple(channels)

        layers: list[nn.Module] = []
        size, previous, remaining = image_size, in_channels, iter(channels)
        for entry in VGG_LAYERS[arch]:
            if entry == POOL:
                if size // 2 < 1:
                    logger.debug("%s: skipping a pooling layer at %dx%d", arch, size, size)
                    continue
                layers.append(TimeDistributed(nn.AvgPool2d(2, 2)))
                size //= 2
            else:
                width = next(remaining)
                layers.append(factory.conv(previous, width, 3, 1, 1))
                previous = width
        self.features = nn.Sequential(*layers)
        self.flatten = Flatten()
        self.feature_size = size
        self.readout = factory.readout(previous * size * size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_time_first(x, 5, "SpikingVGG")
        check_image_input(x, self.in_channels, self.image_size, "SpikingVGG")
        return self.readout(self.flatten(self.features(x))).mean(0)

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch!r}, in_channels={self.in_channels}, image_size={self.image_size}, "
            f"num_classes={self.num_classes}, widths={list(self.widths)}"
        )
