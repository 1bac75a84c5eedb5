"""Spiking multilayer perceptron of any depth and widths."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ei_tutorial.models.layers import LayerFactory, check_time_first


class SpikingMLP(nn.Module):
    """Fully connected spiking network: hidden layers with neurons, then a readout.

    ``len(widths) + 1`` synaptic layers in all: one per hidden width and the readout.

    Args:
        in_features: Input features ``F`` per time step.
        widths: Hidden layer widths, input side first; may be empty (readout only).
        num_classes: Readout units.
        factory: Builds the layers (variant and neuron model).

    Shape:
        - Input: ``[T, B, F]``, or images ``[T, B, C, H, W]`` that are flattened to
          ``[T, B, C * H * W]``.
        - Output: logits ``[B, num_classes]``, the readout's output averaged over ``T``.

    Raises:
        ValueError: In ``forward``, on an input without a time dimension or with the
            wrong number of features.
    """

    def __init__(self, in_features: int, widths: Sequence[int], num_classes: int, factory: LayerFactory) -> None:
        super().__init__()
        self.in_features = in_features
        self.widths = tuple(widths)
        self.num_classes = num_classes
        layers = []
        previous = in_features
        for width in self.widths:
            layers.append(factory.linear(previous, width))
            previous = width
        self.hidden = nn.Sequential(*layers)
        self.readout = factory.readout(previous, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_time_first(x, 3, "SpikingMLP")
        x = x.flatten(2) if x.dim() > 3 else x
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"SpikingMLP expects {self.in_features} features per step, got input of shape "
                f"{tuple(x.shape)} after flattening; build the model with the dataset's "
                "in_channels and image_size"
            )
        return self.readout(self.hidden(x)).mean(0)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, widths={list(self.widths)}, num_classes={self.num_classes}"
