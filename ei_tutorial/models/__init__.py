"""Spiking network architectures (MLP, VGG, SEW ResNet-18) in E-I, batch-norm and plain variants.

:func:`build_model` is the entry point. :func:`register_neuron` and
:func:`register_variant` add neuron models and layer variants without editing the
library; :func:`record_activity` measures firing rates and currents.
"""

from ei_tutorial.models import variants as _variants  # noqa: F401  (registers the built-ins)
from ei_tutorial.models.builder import available_architectures, build_model
from ei_tutorial.models.layers import LayerFactory, SpikingLayer, TimeDistributed
from ei_tutorial.models.mlp import SpikingMLP
from ei_tutorial.models.probes import ActivityRecorder, record_activity, spiking_layers
from ei_tutorial.models.registry import (
    Variant,
    available_neurons,
    available_variants,
    get_neuron_factory,
    get_variant,
    register_neuron,
    register_variant,
    unregister_neuron,
    unregister_variant,
)
from ei_tutorial.models.resnet import SEWBasicBlock, SEWResNet18
from ei_tutorial.models.vgg import VGG_LAYERS, SpikingVGG

__all__ = [
    "ActivityRecorder",
    "LayerFactory",
    "SEWBasicBlock",
    "SEWResNet18",
    "SpikingLayer",
    "SpikingMLP",
    "SpikingVGG",
    "TimeDistributed",
    "VGG_LAYERS",
    "Variant",
    "available_architectures",
    "available_neurons",
    "available_variants",
    "build_model",
    "get_neuron_factory",
    "get_variant",
    "record_activity",
    "register_neuron",
    "register_variant",
    "spiking_layers",
    "unregister_neuron",
    "unregister_variant",
]
