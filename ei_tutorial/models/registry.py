"""Named neuron models and layer variants that :func:`~ei_tutorial.models.build_model` can use.

A model is built from two choices: the neuron that turns currents into spikes, and the
variant that supplies the synaptic layers producing those currents. Both are looked up by
name here, so a new neuron model or a new kind of inhibition plugs into the builder and
the trainer with one registration call and no edit to library code::

    from ei_tutorial.models import register_neuron, build_model

    register_neuron("my_lif", lambda **kwargs: MyLIF(**kwargs))
    model = build_model("mlp", "ei", neuron="my_lif", widths=[100])

Three variants are built in: ``"ei"`` (E-I circuit layers, normalization-free), ``"bn"``
(convolution or linear layer followed by batch normalization over ``T * B``) and
``"plain"`` (convolution or linear layer without normalization). One neuron is built
in: ``"lif"``, :class:`ei_tutorial.LIF`.

Registrations last for the Python process. Names are case-sensitive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch import nn

logger = logging.getLogger(__name__)

NeuronFactory = Callable[..., nn.Module]
"""``factory(**neuron_kwargs) -> nn.Module`` building one population of spiking neurons."""

LinearBlockFactory = Callable[..., nn.Module]
ConvBlockFactory = Callable[..., nn.Module]
ReadoutFactory = Callable[..., nn.Module]
Initializer = Callable[[nn.Module, Any], Any]


@dataclass(frozen=True)
class Variant:
    """The synaptic layers of one model variant.

    Every factory returns a module that maps time-first inputs to time-first currents
    and keeps no state between calls. The builder follows each hidden layer with a
    neuron, and averages the readout's output over time to get the logits.

    Attributes:
        name: Registered name.
        linear_block: ``linear_block(in_features, out_features, **layer_kwargs)``
            returning a module that maps ``[T, B, in_features]`` to currents
            ``[T, B, out_features]``.
        conv_block: ``conv_block(in_channels, out_channels, kernel_size, stride,
            padding, **layer_kwargs)`` returning a module that maps
            ``[T, B, C, H, W]`` to currents ``[T, B, out_channels, H', W']`` with
            ``H'`` and ``W'`` as for ``nn.Conv2d``.
        readout: ``readout(in_features, num_classes, **layer_kwargs)`` returning a
            module that maps ``[T, B, in_features]`` to ``[T, B, num_classes]``.
        initializer: Optional ``initializer(model, batch)`` that the trainer calls
            once on a batch of training inputs ``[T, B, ...]`` before the first step,
            for example :func:`ei_tutorial.ei_init_`. None keeps the layers'
            own initialisation.
        description: One line for listings and error messages.
    """

    name: str
    linear_block: LinearBlockFactory
    conv_block: ConvBlockFactory
    readout: ReadoutFactory
    initializer: Optional[Initializer] = None
    description: str = ""


_NEURONS: dict[str, NeuronFactory] = {}
_VARIANTS: dict[str, Variant] = {}


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{kind} name must be a non-empty string, got {name!r}")
    return name


def register_neuron(name: str, factory: NeuronFactory, *, overwrite: bool = False) -> None:
    """Register a neuron model under ``name`` for :func:`~ei_tutorial.models.build_model`.

    Args:
        name: Name to pass as ``build_model(..., neuron=name)`` or ``neuron: name`` in a
            training config.
        factory: ``factory(**neuron_kwargs) -> nn.Module``. The builder calls it once per
            spiking layer with the ``neuron_kwargs`` given to ``build_model``. The module
            must map currents ``[T, B, ...]`` to spikes of the same shape and dtype,
            start every call from its resting state (no state kept between calls), and
            emit non-negative values, because E-I layers reject negative inputs.
        overwrite: Replace an existing registration of ``name``.

    Raises:
        ValueError: If ``name`` is empty or already registered and ``overwrite`` is False.
        TypeError: If ``factory`` is not callable.
    """
    _check_name("neuron", name)
    if not callable(factory):
        raise TypeError(f"neuron factory for {name!r} must be callable, got {type(factory).__name__}")
    if name in _NEURONS and not overwrite:
        raise ValueError(
            f"neuron {name!r} is already registered; pass overwrite=True to replace it "
            f"or choose another name (registered: {', '.join(available_neurons())})"
        )
    _NEURONS[name] = factory
    logger.debug("registered neuron %r", name)


def register_variant(
    name: str,
    *,
    linear_block: LinearBlockFactory,
    conv_block: ConvBlockFactory,
    readout: ReadoutFactory,
    initializer: Optional[Initializer] = None,
    description: str = "",
    overwrite: bool = False,
) -> Variant:
    """Register a layer variant under ``name`` for :func:`~ei_tutorial.models.build_model`.

    Args:
        name: Name to pass as ``build_model(arch, name)`` or ``variant: name`` in a
            training config.
        linear_block: ``linear_block(in_features, out_features, **layer_kwargs)``
            returning a module from ``[T, B, in_features]`` to currents
            ``[T, B, out_features]``. Used by the MLP's hidden layers.
        conv_block: ``conv_block(in_channels, out_channels, kernel_size, stride, padding,
            **layer_kwargs)`` returning a module from ``[T, B, C, H, W]`` to currents
            ``[T, B, out_channels, H', W']``. Used by VGG and ResNet, including the
            ResNet shortcut's downsampling.
        readout: ``readout(in_features, num_classes, **layer_kwargs)`` returning a module
            from ``[T, B, in_features]`` to ``[T, B, num_classes]``; the logits are its
            time average.
        initializer: Optional ``initializer(model, batch)``, called by the trainer once on
            a training batch ``[T, B, ...]`` before the first optimizer step.
        description: One line shown by listings.
        overwrite: Replace an existing registration of ``name``.

    Returns:
        The registered :class:`Variant`.

    Raises:
        ValueError: If ``name`` is empty or already registered and ``overwrite`` is False.
        TypeError: If a factory or the initializer is not callable.
    """
    _check_name("variant", name)
    for label, factory in (("linear_block", linear_block), ("conv_block", conv_block), ("readout", readout)):
        if not callable(factory):
            raise TypeError(f"{label} of variant {name!r} must be callable, got {type(factory).__name__}")
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer of variant {name!r} must be callable or None")
    if name in _VARIANTS and not overwrite:
        raise ValueError(
            f"variant {name!r} is already registered; pass overwrite=True to replace it "
            f"or choose another name (registered: {', '.join(available_variants())})"
        )
    variant = Variant(name, linear_block, conv_block, readout, initializer, description)
    _VARIANTS[name] = variant
    logger.debug("registered variant %r", name)
    return variant


def unregister_neuron(name: str) -> None:
    """Remove a registered neuron model.

    Raises:
        ValueError: If ``name`` is not registered.
    """
    get_neuron_factory(name)
    del _NEURONS[name]


def unregister_variant(name: str) -> None:
    """Remove a registered variant.

    Raises:
        ValueError: If ``name`` is not registered.
    """
    get_variant(name)
    del _VARIANTS[name]


def available_neurons() -> tuple[str, ...]:
    """Return the registered neuron names, sorted."""
    return tuple(sorted(_NEURONS))


def available_variants() -> tuple[str, ...]:
    """Return the registered variant names, sorted."""
    return tuple(sorted(_VARIANTS))


def get_neuron_factory(name: str) -> NeuronFactory:
    """Return the factory registered as neuron ``name``.

    Raises:
        ValueError: If ``name`` is not registered; the message lists the registered names.
    """
    if name not in _NEURONS:
        raise ValueError(
            f"unknown neuron {name!r}; expected one of {', '.join(available_neurons())}, "
            "or register one with ei_tutorial.models.register_neuron"
        )
    return _NEURONS[name]


def get_variant(name: str) -> Variant:
    """Return the variant registered as ``name``.

    Raises:
        ValueError: If ``name`` is not registered; the message lists the registered names.
    """
    if name not in _VARIANTS:
        raise ValueError(
            f"unknown variant {name!r}; expected one of {', '.join(available_variants())}, "
            "or register one with ei_tutorial.models.register_variant"
        )
    return _VARIANTS[name]
