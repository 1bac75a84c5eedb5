"""One entry point that builds every architecture in every registered variant."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from ei_tutorial.models.layers import LayerFactory
from ei_tutorial.models.mlp import SpikingMLP
from ei_tutorial.models.registry import get_neuron_factory, get_variant
from ei_tutorial.models.resnet import SEWResNet18
from ei_tutorial.models.vgg import VGG_LAYERS, SpikingVGG

ARCHITECTURES = ("mlp", *VGG_LAYERS, "resnet18")

#: Hidden widths of ``"mlp"`` when ``widths`` is not given.
DEFAULT_MLP_WIDTHS = (500, 300)


def available_architectures() -> tuple[str, ...]:
    """Return the architecture names accepted by :func:`build_model`."""
    return ARCHITECTURES


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def build_model(
    arch: str,
    variant: str = "ei",
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    widths: Optional[Sequence[int]] = None,
    neuron: str = "lif",
    neuron_kwargs: Optional[dict] = None,
    layer_kwargs: Optional[dict] = None,
) -> nn.Module:
    """Build a spiking network from an architecture name, a variant and a neuron model.

    Every model takes time-first input and returns logits, the time average of its
    readout layer's output. The E-I variant still needs :func:`ei_tutorial.ei_init_` on
    a batch of training data before training (:func:`ei_tutorial.training.train` does it).
    The shipped configs (``ei_tutorial/configs``) train it with SGD and a linear
    learning-rate warm-up (their ``lr`` and ``warmup_epochs`` keys). Without the warm-up,
    in a short test of a full-width E-I VGG-8 on MNIST (SGD, momentum 0.9, batch 32), a
    learning rate of 0.002 lowered the loss within 60 steps where 0.005 and 0.02 did not.

    Args:
        arch: ``"mlp"``, ``"vgg8"``, ``"vgg11"``, ``"vgg16"``, ``"vgg19"`` or
            ``"resnet18"`` (SEW ResNet-18).
        variant: A registered variant: ``"ei"`` (E-I circuit layers, no normalization),
            ``"bn"`` (batch normalization over ``T * B``), ``"plain"`` (neither), or one
            added with :func:`~ei_tutorial.models.register_variant`.
        num_classes: Readout units.
        in_channels: Input image channels ``C``.
        image_size: Input height and width in pixels.
        widths: Hidden widths of the MLP (default ``(500, 300)``); output channels of
            each VGG convolution; channels of the four ResNet stages. None keeps the
            architecture's standard widths.
        neuron: A registered neuron model (``"lif"`` or one added with
            :func:`~ei_tutorial.models.register_neuron`).
        neuron_kwargs: Keyword arguments for every neuron, e.g. ``{"tau_mem": 2.0}``.
        layer_kwargs: Keyword arguments for every synaptic layer and the readout, e.g.
            ``{"ei_ratio": 4}`` for the E-I variant.

    Shape:
        - Input: ``[T, B, C, H, W]``; the MLP also takes ``[T, B, C * H * W]``.
        - Output: ``[B, num_classes]``.

    Returns:
        The model, with the layers' own initialisation.

    Raises:
        ValueError: On an unknown architecture, variant or neuron name (the message
            lists the valid ones), a non-positive size, or widths of the wrong length.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
        _check_positive_int(name, value)
    if widths is not None:
        widths = tuple(widths)
        for width in widths:
            _check_positive_int("every entry of widths", width)

    chosen = get_variant(variant)
    factory = LayerFactory(
        chosen.linear_block,
        chosen.conv_block,
        chosen.readout,
        get_neuron_factory(neuron),
        neuron_kwargs or {},
        layer_kwargs or {},
    )
    if arch == "mlp":
        hidden = DEFAULT_MLP_WIDTHS if widths is None else widths
        return SpikingMLP(in_channels * image_size * image_size, hidden, num_classes, factory)
    if arch == "resnet18":
        return SEWResNet18(in_channels, num_classes, factory, widths)
    return SpikingVGG(arch, in_channels, image_size, num_classes, factory, widths)
