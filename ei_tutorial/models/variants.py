"""The built-in neuron model and the three built-in variants, registered on import.

- ``"ei"``: :class:`~ei_tutorial.circuit.EILinear` and :class:`~ei_tutorial.circuit.EIConv2d`
  with a readout ``EILinear(..., readout=True)``; no normalization. The trainer
  initialises them with :func:`ei_tutorial.ei_init_`. ``layer_kwargs`` go to the E-I
  layers (``ei_ratio``, ``inhibition_scale``, ``subtractive``, ...).
- ``"bn"``: ``nn.Linear`` or ``nn.Conv2d`` without bias, then batch normalization whose
  statistics run over ``T * B`` (``BatchNorm1d`` / ``BatchNorm2d`` on the time-folded
  tensor); an ``nn.Linear`` readout. ``layer_kwargs``: ``momentum`` and ``eps`` of the
  batch normalization.
- ``"plain"``: ``nn.Linear`` or ``nn.Conv2d`` with bias and PyTorch's default
  initialisation, no normalization; an ``nn.Linear`` readout. No ``layer_kwargs``.

The convolutions of ``"bn"`` and ``"plain"`` are :class:`~ei_tutorial.taps.Conv2d`:
``nn.Conv2d`` that computes convolutions over one pixel and 1x1 convolutions as matrix
products, as the fused E-I path does.
"""

from __future__ import annotations

import logging

from torch import nn

from ei_tutorial.models.layers import TimeDistributed
from ei_tutorial.models.registry import register_neuron, register_variant
from ei_tutorial.taps import Conv2d

logger = logging.getLogger(__name__)


def _reject_unknown(variant: str, layer_kwargs: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(layer_kwargs) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"layer_kwargs {unknown} are not accepted by variant {variant!r} "
            f"(accepted: {accepted}); remove them or choose another variant"
        )


# --- "ei": E-I circuit layers ---------------------------------------------------------


def readout_ei_ratio(num_outputs: int, ei_ratio: int) -> int:
    """Return the E:I ratio for a readout of ``num_outputs`` E neurons.

    The requested ratio often does not divide the number of classes (10 classes, ratio
    4), so the readout keeps ``n_I = num_outputs // ei_ratio`` inhibitory neurons when
    that divides ``num_outputs``, and otherwise the largest smaller count that does
    (at least 1). For 10 classes and ratio 4 that is 2 I neurons, a ratio of 5.

    Args:
        num_outputs: Number of readout units (classes).
        ei_ratio: Requested ratio of E to I neurons.

    Returns:
        A ratio that divides ``num_outputs``.
    """
    n_i = max(1, num_outputs // ei_ratio)
    while num_outputs % n_i:
        n_i -= 1
    return num_outputs // n_i


def ei_linear_block(in_features: int, out_features: int, **layer_kwargs) -> nn.Module:
    """Return ``EILinear(in_features, out_features, **layer_kwargs)``."""
    from ei_tutorial.circuit import EILinear

    return EILinear(in_features, out_features, **layer_kwargs)


def ei_conv_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, **layer_kwargs
) -> nn.Module:
    """Return ``EIConv2d(...)``, which folds time into the batch itself."""
    from ei_tutorial.circuit import EIConv2d

    return EIConv2d(in_channels, out_channels, kernel_size, stride, padding, **layer_kwargs)


def ei_readout(in_features: int, num_classes: int, **layer_kwargs) -> nn.Module:
    """Return ``EILinear(..., readout=True)`` with an E:I ratio that divides ``num_classes``.

    The readout's gains ``g_E`` and ``g_I`` are frozen (``requires_grad=False``)
    because its output does not depend on them.
    """
    from ei_tutorial.circuit import EILinear

    kwargs = dict(layer_kwargs)
    requested = kwargs.pop("ei_ratio", 4)
    ratio = readout_ei_ratio(num_classes, requested)
    if ratio != requested:
        logger.debug("readout of %d classes uses ei_ratio %d instead of %d", num_classes, ratio, requested)
    layer = EILinear(in_features, num_classes, ei_ratio=ratio, readout=True, **kwargs)
    # A readout does not divide, so g_E and g_I never reach its output. Freezing them keeps
    # them out of the optimizer and lets DistributedDataParallel expect a gradient for
    # every trainable parameter.
    for name in ("gain_e", "gain_i"):
        getattr(layer, name).requires_grad_(False)
    return layer


def _ei_initializer(model: nn.Module, batch) -> nn.Module:
    from ei_tutorial.ei_init import ei_init_

    return ei_init_(model, batch)


# --- "bn": batch normalization over T * B ---------------------------------------------

_BN_KWARGS = ("momentum", "eps")


def bn_linear_block(in_features: int, out_features: int, **layer_kwargs) -> nn.Module:
    """Return a bias-free ``nn.Linear`` and ``nn.BatchNorm1d`` applied to ``[T * B, F]``."""
    _reject_unknown("bn", layer_kwargs, _BN_KWARGS)
    return TimeDistributed(
        nn.Sequential(nn.Linear(in_features, out_features, bias=False), nn.BatchNorm1d(out_features, **layer_kwargs)),
        once_for_repeats=True,
    )


def bn_conv_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, **layer_kwargs
) -> nn.Module:
    """Return a bias-free :class:`~ei_tutorial.taps.Conv2d` and ``nn.BatchNorm2d`` applied to ``[T * B, C, H, W]``."""
    _reject_unknown("bn", layer_kwargs, _BN_KWARGS)
    conv = Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
    return TimeDistributed(nn.Sequential(conv, nn.BatchNorm2d(out_channels, **layer_kwargs)), once_for_repeats=True)


def bn_readout(in_features: int, num_classes: int, **layer_kwargs) -> nn.Module:
    """Return ``nn.Linear(in_features, num_classes)``; the readout has no normalization."""
    _reject_unknown("bn", layer_kwargs, _BN_KWARGS)
    return nn.Linear(in_features, num_classes)


# --- "plain": no normalization -----------------------------------------------------------


def plain_linear_block(in_features: int, out_features: int, **layer_kwargs) -> nn.Module:
    """Return ``nn.Linear(in_features, out_features)``, which acts on the last dimension."""
    _reject_unknown("plain", layer_kwargs, ())
    return nn.Linear(in_features, out_features)


def plain_conv_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, **layer_kwargs
) -> nn.Module:
    """Return :class:`~ei_tutorial.taps.Conv2d` (``nn.Conv2d`` with bias) applied to ``[T * B, C, H, W]``."""
    _reject_unknown("plain", layer_kwargs, ())
    return TimeDistributed(Conv2d(in_channels, out_channels, kernel_size, stride, padding), once_for_repeats=True)


def plain_readout(in_features: int, num_classes: int, **layer_kwargs) -> nn.Module:
    """Return ``nn.Linear(in_features, num_classes)``."""
    _reject_unknown("plain", layer_kwargs, ())
    return nn.Linear(in_features, num_classes)


def lif_neuron(**neuron_kwargs) -> nn.Module:
    """Return ``ei_tutorial.LIF(**neuron_kwargs)``."""
    from ei_tutorial.neurons import LIF

    return LIF(**neuron_kwargs)


def register_builtins() -> None:
    """Register ``"lif"`` and the ``"ei"``, ``"bn"`` and ``"plain"`` variants, replacing earlier entries."""
    register_neuron("lif", lif_neuron, overwrite=True)
    register_variant(
        "ei",
        linear_block=ei_linear_block,
        conv_block=ei_conv_block,
        readout=ei_readout,
        initializer=_ei_initializer,
        description="E-I circuit layers, normalization-free (EILinear / EIConv2d)",
        overwrite=True,
    )
    register_variant(
        "bn",
        linear_block=bn_linear_block,
        conv_block=bn_conv_block,
        readout=bn_readout,
        description="linear / conv layer + batch normalization over T*B",
        overwrite=True,
    )
    register_variant(
        "plain",
        linear_block=plain_linear_block,
        conv_block=plain_conv_block,
        readout=plain_readout,
        description="linear / conv layer without normalization",
        overwrite=True,
    )


register_builtins()
